import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.ts';
import { ModelHost } from '../inference/model-host.ts';

declare module 'fastify' {
  interface FastifyInstance {
    models: ModelHost;
  }
}

/** Loads the configured model into a worker-thread pool before the server accepts requests. */
export default fp(
  async function inference(app: FastifyInstance, opts: { config: Config }) {
    const host = await ModelHost.start(opts.config, app.log);
    app.decorate('models', host);
    app.addHook('onClose', async () => {
      await host.close();
    });
  },
  { name: 'psa-inference' },
);

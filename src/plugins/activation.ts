import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.ts';
import { ModelActivation } from '../inference/activation.ts';
import { ModelEvents } from '../inference/model-events.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Activation and recalibration reloads, on this replica and (with Redis) every other. */
    activation: ModelActivation;
  }
}

/** Model activation across replicas: the host's switches, announced and followed over Redis when REDIS_URL is set. */
export default fp(
  async function activation(app: FastifyInstance, opts: { config: Config }) {
    const { config } = opts;
    const events = app.redis ? new ModelEvents(app.redis, config.REDIS_URL, config.REDIS_PREFIX, app.log) : null;
    const activation = new ModelActivation(app.models, events, app.log);
    app.decorate('activation', activation);
    // A replica that starts after an activation serves the activated model, not PSA_MODEL.
    app.addHook('onReady', () => activation.restore());
    app.addHook('onClose', async () => events?.close());
  },
  { name: 'psa-activation', dependencies: ['psa-inference', 'psa-redis'] },
);

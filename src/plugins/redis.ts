import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { apiRedis } from '../redis.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The API's Redis connection (it fails fast while Redis is down); null when REDIS_URL is empty. */
    redis: Redis | null;
  }
}

/** The one Redis connection the training queue and model events share; inference never waits for it. */
export default fp(
  async function redis(app: FastifyInstance, opts: { config: Config }) {
    if (!opts.config.REDIS_URL) {
      app.decorate('redis', null);
      return;
    }
    const connection = apiRedis(opts.config.REDIS_URL);
    connection.on('error', (err) => app.log.warn({ err: err.message }, 'redis connection error'));
    app.decorate('redis', connection);
    // Registered before the plugins that use it, so its onClose runs after theirs.
    app.addHook('onClose', async () => connection.disconnect());
  },
  { name: 'psa-redis' },
);

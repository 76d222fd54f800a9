import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { TrainingQueue } from '../training/queue.ts';

export interface Training {
  queue: TrainingQueue;
  redis: Redis;
  /** Throws PSA_QUEUE_UNAVAILABLE unless Redis is connected (the API never waits for Redis). */
  ensureAvailable(): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** null when REDIS_URL is empty: training routes then answer 503. */
    training: Training | null;
  }
}

/** The producer side of the training queue, on the API's Redis connection. */
export default fp(
  async function training(app: FastifyInstance, opts: { config: Config }) {
    const { config } = opts;
    const redis = app.redis;
    if (!redis) {
      app.decorate('training', null);
      return;
    }
    const queue = new TrainingQueue(redis, config.REDIS_PREFIX, config.JOB_ATTEMPTS);
    queue.queue.on('error', (err) => app.log.warn({ err: err.message }, 'training queue error'));
    app.decorate('training', {
      queue,
      redis,
      ensureAvailable() {
        if (redis.status !== 'ready') {
          throw new ApiError(HttpErrorCodes.QUEUE_UNAVAILABLE, 'the training queue (Redis) is unreachable; moderation and chat still work; retry later', { redis: redis.status }, { 'retry-after': '5' });
        }
      },
    });
    app.addHook('onClose', async () => {
      await queue.close().catch(() => {});
    });
  },
  { name: 'psa-training', dependencies: ['psa-redis'] },
);

import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { IngestSlots } from '../http/ingest-slots.ts';
import { DatasetStore } from '../datasets/store.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { apiRedis, keys, workerRedis } from '../redis.ts';
import { TrainingQueue } from '../training/queue.ts';

export interface Training {
  queue: TrainingQueue;
  redis: Redis;
  /** Throws PSA_QUEUE_UNAVAILABLE unless Redis is connected (the API never waits for Redis). */
  ensureAvailable(): void;
  /** Tells every replica (this one included) to switch models. */
  announceActivation(id: string): Promise<boolean>;
  /** Tells the other replicas serving `id` to load it afresh (its temperature.json changed). */
  announceReload(id: string): Promise<boolean>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** null when REDIS_URL is empty: training routes then answer 503. */
    training: Training | null;
    datasets: DatasetStore;
    ingestSlots: IngestSlots;
  }
}

/**
 * Redis-backed parts of the API: the training queue (producer) and model-activation events, so
 * every replica hot-swaps. Inference never depends on Redis.
 */
export default fp(
  async function training(app: FastifyInstance, opts: { config: Config }) {
    const { config } = opts;
    const store = new DatasetStore(config.DATA_DIR, {
      maxBytes: config.MAX_DATASET_BYTES,
      maxFiles: config.MAX_DATASET_FILES,
      maxFileBytes: Math.min(config.MAX_DATASET_BYTES, 1024 ** 3),
      maxImagePixels: config.MAX_IMAGE_PIXELS,
      maxLineBytes: config.MAX_DATASET_LINE_BYTES,
      maxExpansion: config.MAX_ARCHIVE_EXPANSION,
      minFreeBytes: config.MIN_FREE_DISK_BYTES,
    });
    app.decorate('datasets', store);
    app.decorate('ingestSlots', new IngestSlots(config.MAX_CONCURRENT_INGESTS, config.MAX_CONCURRENT_INGESTS_PER_KEY));
    // Scratch left by an ingest whose process died (a crash, kill -9) is removed now and every minute.
    const sweep = async () => {
      const removed = await store.scratch.sweep().catch((err: Error) => {
        app.log.warn({ err: err.message }, 'cannot clean DATA_DIR/tmp');
        return [];
      });
      if (removed.length) app.log.warn({ removed: removed.length }, 'removed stale upload scratch from DATA_DIR/tmp');
    };
    await sweep();
    const sweeper = setInterval(() => void sweep(), 60_000).unref();
    app.addHook('onClose', async () => clearInterval(sweeper));
    if (!config.REDIS_URL) {
      app.decorate('training', null);
      return;
    }
    const k = keys(config.REDIS_PREFIX);
    const origin = randomUUID();
    const redis = apiRedis(config.REDIS_URL);
    redis.on('error', (err) => app.log.warn({ err: err.message }, 'redis connection error'));
    const subscriber = workerRedis(config.REDIS_URL);
    subscriber.on('error', (err) => app.log.warn({ err: err.message }, 'redis subscriber error'));
    const queue = new TrainingQueue(redis, config.REDIS_PREFIX, config.JOB_ATTEMPTS);
    queue.queue.on('error', (err) => app.log.warn({ err: err.message }, 'training queue error'));

    const activateFromEvent = async (id: string) => {
      if (id === app.models.activeId) return;
      try {
        await app.models.activate(id);
      } catch (err) {
        app.log.error({ err, model: id }, 'could not activate the model another replica activated');
      }
    };
    subscriber.on('message', (channel, message) => {
      if (channel !== k.activatedChannel) return;
      const event = JSON.parse(message) as { id: string; origin: string; reload?: boolean };
      if (event.origin === origin) return;
      if (!event.reload) void activateFromEvent(event.id);
      else if (event.id === app.models.activeId) app.models.reload().catch((err: unknown) => app.log.error({ err, model: event.id }, 'could not reload the model another replica recalibrated'));
    });
    void subscriber.subscribe(k.activatedChannel).catch((err: Error) => app.log.warn({ err: err.message }, 'cannot subscribe to model events'));

    const value: Training = {
      queue,
      redis,
      ensureAvailable() {
        if (redis.status !== 'ready') {
          throw new ApiError(HttpErrorCodes.QUEUE_UNAVAILABLE, 'the training queue (Redis) is unreachable; moderation and chat still work; retry later', { redis: redis.status }, { 'retry-after': '5' });
        }
      },
      async announceActivation(id: string) {
        if (redis.status !== 'ready') return false;
        await redis.set(k.activeModel, id);
        await redis.publish(k.activatedChannel, JSON.stringify({ id, origin }));
        return true;
      },
      async announceReload(id: string) {
        if (redis.status !== 'ready') return false;
        await redis.publish(k.activatedChannel, JSON.stringify({ id, origin, reload: true }));
        return true;
      },
    };
    app.decorate('training', value);

    // A replica that starts after an activation serves the activated model, not PSA_MODEL.
    app.addHook('onReady', async () => {
      // Waits briefly for Redis (not `once`, which rejects on the 'error' events of a down Redis).
      if (redis.status !== 'ready') await new Promise((r) => { redis.once('ready', r); setTimeout(r, 2000).unref(); });
      const id = await redis.get(k.activeModel).catch(() => null);
      if (id && id !== app.models.activeId) {
        app.log.info({ model: id }, 'serving the model activated in the cluster');
        await activateFromEvent(id);
      }
    });
    app.addHook('onClose', async () => {
      await queue.close().catch(() => {});
      redis.disconnect();
      subscriber.disconnect();
    });
  },
  { name: 'psa-training', dependencies: ['psa-inference'] },
);

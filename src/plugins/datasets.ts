import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.ts';
import { DatasetStore } from '../datasets/store.ts';
import { IngestSlots } from '../http/ingest-slots.ts';

declare module 'fastify' {
  interface FastifyInstance {
    datasets: DatasetStore;
    ingestSlots: IngestSlots;
  }
}

/** The dataset store under DATA_DIR and the ingest slots that bound concurrent uploads; no Redis needed. */
export default fp(
  async function datasets(app: FastifyInstance, opts: { config: Config }) {
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
  },
  { name: 'psa-datasets' },
);

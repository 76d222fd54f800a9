import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.ts';
import { RequestRetention } from '../feedback/retention.ts';
import { FeedbackStore } from '../feedback/store.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** null unless FEEDBACK_RETENTION is on: no request's inputs are kept. */
    retention: RequestRetention | null;
    feedback: FeedbackStore;
  }
}

/** Reviewed items (durable, under DATA_DIR/feedback) and, when enabled, the in-memory retention of recent requests. */
export default fp(
  async function feedback(app: FastifyInstance, opts: { config: Config }) {
    const { config } = opts;
    app.decorate('feedback', new FeedbackStore(config.DATA_DIR, app.datasets.scratch, { maxImagePixels: config.MAX_IMAGE_PIXELS, maxLineBytes: config.MAX_DATASET_LINE_BYTES, minFreeBytes: config.MIN_FREE_DISK_BYTES }));
    if (config.FEEDBACK_RETENTION !== 'on') {
      app.decorate('retention', null);
      return;
    }
    const retention = new RequestRetention({ maxBytes: config.FEEDBACK_RETENTION_MAX_BYTES, maxRequests: config.FEEDBACK_RETENTION_MAX_REQUESTS, ttlMs: config.FEEDBACK_RETENTION_TTL_S * 1000 });
    app.decorate('retention', retention);
    app.log.warn(
      { max_bytes: config.FEEDBACK_RETENTION_MAX_BYTES, max_requests: config.FEEDBACK_RETENTION_MAX_REQUESTS, ttl_s: config.FEEDBACK_RETENTION_TTL_S },
      'FEEDBACK_RETENTION is on: the images and prompts of recent requests are held in memory for review',
    );
    app.addHook('onClose', async () => retention.clear());
  },
  { name: 'psa-feedback', dependencies: ['psa-datasets'] },
);

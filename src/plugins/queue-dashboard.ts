import type { FastifyInstance } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';

export const DASHBOARD_PATH = '/admin/queues';

/**
 * Bull Board for the training queue at /admin/queues, admin scope only. Registered only when
 * training is configured (REDIS_URL); it lives in its own encapsulated context, so its routes
 * (admin scope, hidden from the OpenAPI document) touch nothing else.
 */
export default async function queueDashboard(app: FastifyInstance) {
  if (!app.training) return;
  const adapter = new FastifyAdapter();
  adapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({ queues: [new BullMQAdapter(app.training.queue.queue)], serverAdapter: adapter });
  await app.register(async (scoped) => {
    scoped.addHook('onRoute', (route) => {
      route.schema = { ...route.schema, hide: true };
      route.config = { ...route.config, scope: 'admin' };
    });
    await scoped.register(adapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}

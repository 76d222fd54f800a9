import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', { config: { scope: 'public' }, schema: { summary: 'Liveness: the process answers', tags: ['operations'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));
  app.get(
    '/readyz',
    {
      config: { scope: 'public', ownErrorShape: true },
      schema: {
        summary: 'Readiness: model loaded and inference pool alive',
        tags: ['operations'],
        response: {
          200: Type.Object({ status: Type.Literal('ready'), model: Type.String(), provider: Type.String(), workers: Type.Integer() }),
          503: Type.Object({ status: Type.Literal('not_ready'), reason: Type.String() }),
        },
      },
    },
    async (_request, reply) => {
      const pool = app.models.active;
      if (!pool.alive) return reply.code(503).send({ status: 'not_ready', reason: 'inference pool is not running' });
      return { status: 'ready' as const, model: pool.name, provider: pool.provider, workers: pool.workers.length };
    },
  );
};

export default healthRoutes;

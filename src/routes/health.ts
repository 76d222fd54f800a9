import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { withErrors } from '../http/schemas.ts';

export default async function healthRoutes(app: FastifyInstance) {
  app.get(
    '/healthz',
    { schema: { summary: 'Liveness: the process answers', tags: ['operations'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
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
}

export const ModelSummary = Type.Object({
  id: Type.String(),
  name: Type.String(),
  created_at: Type.String(),
  active: Type.Boolean(),
  provenance: Type.Record(Type.String(), Type.Unknown(), { description: 'Where the weights come from: status (untrained, exported, trained), data, config, metrics' }),
});

export async function modelRoutes(app: FastifyInstance) {
  app.get(
    '/v1/models',
    {
      preHandler: app.requireScope('infer'),
      schema: {
        summary: 'Model packages found, and the active one',
        tags: ['models'],
        response: withErrors({ 200: Type.Object({ active: Type.String(), models: Type.Array(ModelSummary) }) }, [401, 403, 500]),
      },
    },
    async () => {
      const models = await app.models.list();
      return {
        active: models.find((m) => m.active)?.id ?? '',
        models: models.map(({ dir: _dir, ...rest }) => rest),
      };
    },
  );
}

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { hidePathsDeep } from '../http/paths.ts';
import { withErrors } from '../http/schemas.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

export const ModelSummary = Type.Object({
  id: Type.String(),
  name: Type.String(),
  created_at: Type.String(),
  active: Type.Boolean(),
  provenance: Type.Record(Type.String(), Type.Unknown(), { description: 'Where the weights come from: status (untrained, exported, trained), data, config, metrics' }),
});

export default async function modelRoutes(app: FastifyInstance, opts: { config: Config }) {
  const roots = { DATA_DIR: opts.config.DATA_DIR, MODELS_DIR: opts.config.MODELS_DIR };
  app.get(
    '/v1/models',
    {
      config: { scope: 'infer' },
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
        models: models.map(({ dir: _dir, provenance, ...rest }) => ({ ...rest, provenance: hidePathsDeep(provenance, roots) as Record<string, unknown> })),
      };
    },
  );

  app.post(
    '/v1/models/:id/activate',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Serve this package; every replica switches (requests in flight finish on the old model)',
        tags: ['models'],
        params: IdParams,
        response: withErrors({ 200: Type.Object({ active: Type.String(), previous: Type.String(), changed: Type.Boolean(), propagated: Type.Boolean() }) }, [401, 403, 404, 422, 500]),
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const result = await app.models.activate(id);
      const propagated = app.training ? await app.training.announceActivation(id).catch(() => false) : false;
      return { active: result.id, previous: result.previous, changed: result.changed, propagated };
    },
  );
}

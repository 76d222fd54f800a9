import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { withErrors } from '../http/schemas.ts';
import type { PackageSummary } from '../inference/model-host.ts';
import { OPENAI_ROUTE, withOpenAIErrors } from '../openai/errors.ts';
import { ModelList, ModelObject } from '../openai/schemas.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

const modelObject = ({ dir: _dir, id, name, created_at, active, provenance }: PackageSummary) => ({
  id,
  object: 'model' as const,
  created: Math.floor((Date.parse(created_at) || 0) / 1000),
  owned_by: 'psa-guard',
  name,
  active,
  provenance,
});

export default async function modelRoutes(app: FastifyInstance) {
  app.get(
    '/v1/models',
    {
      preHandler: app.requireScope('infer'),
      config: OPENAI_ROUTE,
      schema: {
        summary: 'Model packages found, in OpenAI\'s list shape, with the active one, provenance and metrics',
        tags: ['models', 'openai'],
        response: withOpenAIErrors({ 200: ModelList }, [401, 403, 500]),
      },
    },
    async () => {
      const models = await app.models.list();
      return { object: 'list', data: models.map(modelObject), active: models.find((m) => m.active)?.id ?? '' };
    },
  );

  app.get(
    '/v1/models/:id',
    {
      preHandler: app.requireScope('infer'),
      config: OPENAI_ROUTE,
      schema: {
        summary: 'One model package: OpenAI\'s model object with provenance, metrics and whether it is active',
        tags: ['models', 'openai'],
        params: IdParams,
        response: withOpenAIErrors({ 200: ModelObject }, [401, 403, 404, 500]),
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const found = (await app.models.list()).find((m) => m.id === id || m.name === id);
      if (!found) throw apiError(HttpErrorCodes.MODEL_NOT_FOUND, `no model "${id}"; GET /v1/models lists them`, { field: 'id' });
      return modelObject(found);
    },
  );

  app.post(
    '/v1/models/:id/activate',
    {
      preHandler: app.requireScope('admin'),
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

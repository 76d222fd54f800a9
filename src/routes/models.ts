import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { hidePathsDeep } from '../http/paths.ts';
import { withErrors } from '../http/schemas.ts';
import type { PackageSummary } from '../inference/model-host.ts';
import { OPENAI_ROUTE, withOpenAIErrors } from '../openai/errors.ts';
import { ModelList, ModelObject } from '../openai/schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

/** OpenAI's model object with this service's fields; provenance shows paths relative to the store. */
const modelObject = ({ dir: _dir, id, name, created_at, active, provenance }: PackageSummary, roots: Record<string, string>) => ({
  id,
  object: 'model' as const,
  created: Math.floor((Date.parse(created_at) || 0) / 1000),
  owned_by: 'psa-guard',
  name,
  active,
  provenance: hidePathsDeep(provenance, roots) as Record<string, unknown>,
});

const modelRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const roots = { DATA_DIR: opts.config.DATA_DIR, MODELS_DIR: opts.config.MODELS_DIR };
  app.get(
    '/v1/models',
    {
      config: { ...OPENAI_ROUTE, scope: 'infer' },
      schema: {
        summary: "Model packages found, in OpenAI's list shape, with the active one, provenance and metrics",
        tags: ['models', 'openai'],
        response: withOpenAIErrors({ 200: ModelList }, [401, 403, 500]),
      },
    },
    async () => {
      const models = await app.models.list();
      return { object: 'list', data: models.map((m) => modelObject(m, roots)), active: models.find((m) => m.active)?.id ?? '' };
    },
  );

  app.get(
    '/v1/models/:id',
    {
      config: { ...OPENAI_ROUTE, scope: 'infer' },
      schema: {
        summary: "One model package: OpenAI's model object with provenance, metrics and whether it is active",
        tags: ['models', 'openai'],
        params: IdParams,
        response: withOpenAIErrors({ 200: ModelObject }, [401, 403, 404, 500]),
      },
    },
    async (request) => {
      const { id } = request.params;
      const found = (await app.models.list()).find((m) => m.id === id || m.name === id);
      if (!found) throw apiError(HttpErrorCodes.MODEL_NOT_FOUND, `no model "${id}"; GET /v1/models lists them`, { field: 'id' });
      return modelObject(found, roots);
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
    async (request) => app.activation.activate(request.params.id),
  );
};

export default modelRoutes;

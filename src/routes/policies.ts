import { Type } from '@sinclair/typebox';
import type { NamedPolicy } from '../calibration/policy-store.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { withErrors } from '../http/schemas.ts';
import { NamedPolicyView } from './calibrate-schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 80 }) });
const DefaultView = Type.Object({ default: Type.Union([Type.String(), Type.Null()], { description: 'The policy used when a request names none; null: the server policy (POLICY_FILE or built-in)' }) });

/** Named (calibrated) policies: list, read, delete, and the persisted default. */
const policyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const store = app.policies.store;
  const view = (p: NamedPolicy, def: string | null) => ({ name: p.name, created_at: p.created_at, default: p.name === def, model: p.model, policy: p.policy, calibration: p.calibration });
  const notFound = (name: string) => apiError(HttpErrorCodes.POLICY_NOT_FOUND, `no policy named ${JSON.stringify(name.slice(0, 80))}; GET /v1/policies lists them`, { policy: name.slice(0, 80) });

  app.get(
    '/v1/policies',
    {
      config: { scope: 'infer' },
      schema: {
        summary: 'Named (calibrated) policies and the default',
        tags: ['policies'],
        response: withErrors({ 200: Type.Object({ default: DefaultView.properties.default, policies: Type.Array(NamedPolicyView) }) }, [401, 403, 500]),
      },
    },
    async () => {
      const def = await store.getDefault();
      return { default: def, policies: (await store.list()).map((p) => view(p, def)) };
    },
  );

  app.get(
    '/v1/policies/:name',
    {
      config: { scope: 'infer' },
      schema: { summary: 'One named policy with the calibration report it came from', tags: ['policies'], params: NameParams, response: withErrors({ 200: NamedPolicyView }, [401, 403, 404, 500]) },
    },
    async (request) => {
      const { name } = request.params;
      const found = await store.get(name);
      if (!found) throw notFound(name);
      return view(found, await store.getDefault());
    },
  );

  app.put(
    '/v1/policies/default',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Make a named policy the default (persisted under DATA_DIR), or null for the server policy',
        tags: ['policies'],
        body: Type.Object({ policy: Type.Union([Type.String({ minLength: 1, maxLength: 80 }), Type.Null()]) }, { additionalProperties: false }),
        response: withErrors({ 200: DefaultView }, [400, 401, 403, 404, 500]),
      },
    },
    async (request) => {
      const { policy } = request.body;
      if (policy !== null && !(await store.get(policy))) throw notFound(policy);
      await store.setDefault(policy);
      request.log.info({ policy }, 'default policy set');
      return { default: policy };
    },
  );

  app.delete(
    '/v1/policies/:name',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Delete a named policy (not the default: set another first)',
        tags: ['policies'],
        params: NameParams,
        response: withErrors({ 200: Type.Object({ deleted: Type.String() }) }, [401, 403, 404, 409, 500]),
      },
    },
    async (request) => {
      const { name } = request.params;
      if ((await store.getDefault()) === name) throw apiError(HttpErrorCodes.POLICY_IN_USE, `${name} is the default policy; PUT /v1/policies/default another (or null) first`, { policy: name });
      if (!(await store.remove(name))) throw notFound(name);
      return { deleted: name };
    },
  );
};

export default policyRoutes;

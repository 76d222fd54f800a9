import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { withErrors } from '../http/schemas.ts';
import { ShadowBody, ShadowReportSchema } from '../shadow/schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

const shadowRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  const runOf = (id: string) => {
    const run = app.models.shadow;
    if (!run || run.candidateId !== id) throw app.models.noShadow(id);
    return run;
  };

  app.post(
    '/v1/models/:id/shadow',
    {
      config: { scope: 'admin' },
      // A POST without a body starts a run with the defaults.
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        summary: 'Start a shadow run: the package scores a share of live traffic beside the active model, after each answer is sent',
        description:
          'Starts the package in its own inference pool. A share of live items (/v1/moderate, /v1/moderations, pass 1 of /v1/chat and /v1/chat/completions) is scored again by it after the response has been sent, decided with the same policy and intervention, and compared; the answers clients get never change and never wait for it. Under load its work is shed first (counted). One run at a time (409 PSA_SHADOW_RUNNING); activating the candidate, or any other package, ends it. The run lives on the replica that received this request.',
        tags: ['models'],
        params: IdParams,
        body: ShadowBody,
        response: withErrors({ 201: ShadowReportSchema }, [400, 401, 403, 404, 409, 422, 500, 503]),
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const body = request.body;
      const run = await app.models.startShadow(id, { share: body.share ?? config.SHADOW_SHARE, maxItems: body.max_items ?? null, maxSeconds: body.max_seconds ?? null });
      reply.code(201);
      return run.report();
    },
  );

  app.get(
    '/v1/models/:id/shadow',
    {
      config: { scope: 'admin' },
      schema: {
        summary: "A shadow run's comparison so far: items compared and shed, agreement, flag rates, decision matrix, latencies",
        tags: ['models'],
        params: IdParams,
        response: withErrors({ 200: ShadowReportSchema }, [401, 403, 404, 500]),
      },
    },
    async (request) => runOf(request.params.id).report(),
  );

  app.delete(
    '/v1/models/:id/shadow',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Stop a shadow run and free its pool; answers its final report',
        tags: ['models'],
        params: IdParams,
        response: withErrors({ 200: ShadowReportSchema }, [401, 403, 404, 500]),
      },
    },
    async (request) => {
      const { id } = request.params;
      runOf(id);
      return (await app.models.stopShadow(id)).report();
    },
  );
};

export default shadowRoutes;

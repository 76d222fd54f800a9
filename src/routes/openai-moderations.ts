import { randomUUID } from 'node:crypto';
import type { Config } from '../config.ts';
import { moderate } from '../http/moderation.ts';
import { retainedModeration } from '../feedback/retained.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { OPENAI_ROUTE, withOpenAIErrors } from '../openai/errors.ts';
import { servedPool } from '../openai/inputs.ts';
import { moderationResult, readModerationsInput } from '../openai/moderations.ts';
import { ModerationsBody, ModerationsResponse } from '../openai/schemas.ts';
import { mirrorModeration } from '../shadow/mirror.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const openaiModerationRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  app.post(
    '/v1/moderations',
    {
      config: { ...OPENAI_ROUTE, scope: 'infer' },
      bodyLimit: inferenceBodyLimit(config),
      schema: {
        summary: 'OpenAI-compatible moderation (pass 1 only): categories are the risk types, with the full PSA result under psa',
        description:
          "The request and response of OpenAI's moderations endpoint. categories, category_scores and category_applied_input_types have one key per risk type of the taxonomy. category_scores[t] = P(type = t) x P(level >= the policy's flag.min_level). Extra body fields policy and intervene work as on /v1/moderate. Errors are {error: {message, type, param, code}}.",
        tags: ['openai'],
        body: ModerationsBody,
        response: withOpenAIErrors({ 200: ModerationsResponse }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const pool = await servedPool(app.models, config.MODELS_DIR, body.model);
      const { request: input, inputTypes } = await readModerationsInput(body, config);
      const outcome = await moderate(app, config, pool, input);
      mirrorModeration(app.models.shadow, reply, pool, input, outcome);
      app.retention?.keep(request.id, retainedModeration('moderations', input, outcome));
      return {
        id: `modr-${randomUUID()}`,
        model: outcome.model,
        results: outcome.items.map((item, i) => moderationResult(item, outcome.policy, inputTypes[i]!)),
      };
    },
  );
};

export default openaiModerationRoutes;

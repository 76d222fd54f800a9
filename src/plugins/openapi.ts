import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

/** OpenAPI 3 generated from the route schemas: /openapi.json and a browsable /docs (DOCS: any valid key, public, or off). */
export default fp(
  async function openapi(app: FastifyInstance, opts: { version: string; docs: 'key' | 'public' | 'off' }) {
    if (opts.docs === 'off') return;
    const scope = opts.docs === 'public' ? 'public' : 'key';
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'psa-guard',
          version: opts.version,
          description: 'Moderation with interpretable safety concepts (7 types x 4 levels) and a concept-conditioned vision-language model.',
        },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
        tags: [
          { name: 'inference', description: 'Moderation and chat' },
          { name: 'models', description: 'Model packages and activation' },
          { name: 'policies', description: 'Calibrated policies: thresholds chosen from labelled data, stored by name, one of them the default' },
          { name: 'openai', description: "OpenAI-compatible moderations, chat completions and models (official SDKs work with baseURL set to this server's /v1); errors in OpenAI's shape" },
          { name: 'training', description: 'Datasets and two-stage training jobs' },
          { name: 'feedback', description: "Reviewers' labels for served requests, their counts, and datasets made of them for retraining" },
          { name: 'operations', description: 'Health and readiness' },
        ],
      },
    });
    await app.register(async (ui) => {
      ui.addHook('onRoute', (route) => {
        route.config = { ...route.config, scope };
      });
      await ui.register(swaggerUi, { routePrefix: '/docs' });
    });
    app.get('/openapi.json', { config: { scope }, schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'psa-openapi' },
);

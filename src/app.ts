import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import underPressure from '@fastify/under-pressure';
import type { Config } from './config.ts';
import { ApiError, HttpErrorCodes } from './http/errors.ts';
import authPlugin from './plugins/auth.ts';
import errorHandler from './plugins/error-handler.ts';
import inferencePlugin from './plugins/inference.ts';
import metricsPlugin from './plugins/metrics.ts';
import openapiPlugin from './plugins/openapi.ts';
import policyPlugin from './plugins/policy.ts';
import queueDashboard from './plugins/queue-dashboard.ts';
import trainingPlugin from './plugins/training.ts';
import datasetRoutes from './routes/datasets.ts';
import trainRoutes from './routes/train.ts';
import chatRoutes from './routes/chat.ts';
import healthRoutes from './routes/health.ts';
import modelRoutes from './routes/models.ts';
import moderateRoutes from './routes/moderate.ts';
import playgroundRoutes from './routes/playground.ts';
import openaiChatRoutes from './routes/openai-chat-completions.ts';
import openaiModerationRoutes from './routes/openai-moderations.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
}

/** Builds the service; never listens (src/server.ts does). Tests build it the same way. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: config.LOG_LEVEL },
    requestIdHeader: 'x-request-id',
    // Loading a model package (workers, onnxruntime sessions) can take minutes for large models.
    pluginTimeout: 600_000,
    genReqId: () => randomUUID(),
    // base64 images are 4/3 of their bytes; leave room for several items and the JSON around them.
    bodyLimit: Math.ceil((config.MAX_IMAGE_BYTES * 4) / 3) * Math.min(config.MAX_ITEMS, 4) + 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  // Only JSON and multipart bodies are accepted; anything else is 415.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // Multipart bodies are read by the handlers; give the JSON-schema validation an empty object.
  app.addHook('preValidation', async (request) => {
    if (request.isMultipart()) request.body = {};
  });

  await app.register(errorHandler);
  await app.register(underPressure, {
    maxEventLoopDelay: config.EVENT_LOOP_MAX_DELAY_MS,
    retryAfter: 1,
    pressureHandler: () => {
      throw new ApiError(HttpErrorCodes.OVERLOADED, 'the server is overloaded; retry shortly', undefined, { 'retry-after': '1' });
    },
  });
  await app.register(multipart, {
    limits: { fileSize: config.MAX_IMAGE_BYTES, files: config.MAX_ITEMS, fields: 2 * config.MAX_ITEMS + 8, fieldSize: Math.max(config.MAX_PROMPT_CHARS * 4, 64 * 1024), parts: 3 * config.MAX_ITEMS + 8 },
  });
  await app.register(openapiPlugin, { version: VERSION });
  await app.register(authPlugin, { apiKeys: config.API_KEYS });
  await app.register(policyPlugin, { policyFile: config.POLICY_FILE });
  await app.register(inferencePlugin, { config });
  await app.register(trainingPlugin, { config });
  await app.register(metricsPlugin);

  await app.register(healthRoutes);
  await app.register(modelRoutes);
  await app.register(moderateRoutes, { config });
  await app.register(chatRoutes, { config });
  await app.register(openaiModerationRoutes, { config });
  await app.register(openaiChatRoutes, { config });
  await app.register(datasetRoutes, { config });
  await app.register(trainRoutes, { config });
  await app.register(queueDashboard);
  await app.register(playgroundRoutes, { config });
  return app;
}

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import underPressure from '@fastify/under-pressure';
import { splitList, type Config } from './config.ts';
import { multipartFieldBytes } from './http/body-limits.ts';
import { ApiError, HttpErrorCodes } from './http/errors.ts';
import { clientErrorHandler, clientRequestId, frameworkErrors } from './http/framework-errors.ts';
import { registerJsonParser } from './http/json-body.ts';
import { allowList } from './http/remote-image.ts';
import activationPlugin from './plugins/activation.ts';
import authPlugin from './plugins/auth.ts';
import datasetsPlugin from './plugins/datasets.ts';
import errorHandler from './plugins/error-handler.ts';
import feedbackPlugin from './plugins/feedback.ts';
import inferencePlugin from './plugins/inference.ts';
import metricsPlugin from './plugins/metrics.ts';
import openapiPlugin from './plugins/openapi.ts';
import policyPlugin from './plugins/policy.ts';
import namedPoliciesPlugin from './plugins/named-policies.ts';
import queueDashboard from './plugins/queue-dashboard.ts';
import redisPlugin from './plugins/redis.ts';
import trainingPlugin from './plugins/training.ts';
import datasetRoutes from './routes/datasets.ts';
import feedbackRoutes from './routes/feedback.ts';
import trainRoutes from './routes/train.ts';
import calibrateRoutes from './routes/calibrate.ts';
import policyRoutes from './routes/policies.ts';
import chatRoutes from './routes/chat.ts';
import healthRoutes from './routes/health.ts';
import modelRoutes from './routes/models.ts';
import moderateRoutes from './routes/moderate.ts';
import playgroundRoutes from './routes/playground.ts';
import shadowRoutes from './routes/shadow.ts';
import openaiChatRoutes from './routes/openai-chat-completions.ts';
import openaiModerationRoutes from './routes/openai-moderations.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
}

/** Header values never logged: keys, cookies, and anything named like a token or secret. */
export const REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key', 'x-auth-token', 'x-access-token'];
const REDACT_PATHS = ['req.headers', 'request.headers', 'headers', 'err.headers'].flatMap((base) => REDACTED_HEADERS.map((h) => `${base}["${h}"]`));

function withRedaction(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (typeof logger !== 'object' || logger === null) return logger;
  return { ...logger, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
}

/** Builds the service; never listens (src/server.ts does). Tests build it the same way. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: withRedaction(options.logger ?? { level: config.LOG_LEVEL }),
    // Request ids are ours: a client's x-request-id is kept apart (request.clientRequestId), checked and short.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    // Loading a model package (workers, onnxruntime sessions) can take minutes for large models.
    pluginTimeout: 600_000,
    // The default for every route; inference routes raise it for images (inferenceBodyLimit).
    bodyLimit: config.MAX_JSON_BODY_BYTES,
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    // Node checks request timeouts on this interval (30 s by default): a tenth of the timeout, 1-30 s.
    http: { headersTimeout: Math.min(config.HEADERS_TIMEOUT_MS, config.REQUEST_TIMEOUT_MS), connectionsCheckingInterval: Math.min(30_000, Math.max(1000, config.REQUEST_TIMEOUT_MS / 10)) },
    clientErrorHandler,
    frameworkErrors,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  app.server.maxConnections = config.MAX_CONNECTIONS;
  try {
    allowList(splitList(config.ALLOWED_IMAGE_NETWORKS));
  } catch (err) {
    throw new Error(`ALLOWED_IMAGE_NETWORKS: ${(err as Error).message}; write CIDRs such as 10.0.0.0/8,fd00::/8`);
  }

  // Only JSON and multipart bodies are accepted; anything else is 415.
  app.removeContentTypeParser('text/plain');
  registerJsonParser(app, config.MAX_JSON_DEPTH);
  app.decorateRequest('clientRequestId', undefined);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    const client = clientRequestId(request.headers['x-request-id']);
    if (client !== undefined) {
      request.clientRequestId = client;
      // Both: Fastify logs "request completed" through the reply's logger.
      request.log = request.log.child({ client_request_id: client });
      reply.log = request.log;
      reply.header('x-client-request-id', client);
    }
  });
  // Multipart bodies are read by the handlers; give the JSON-schema validation an empty object.
  app.addHook('preValidation', async (request) => {
    if (request.isMultipart()) request.body = {};
  });

  await app.register(errorHandler, { roots: { DATA_DIR: config.DATA_DIR, MODELS_DIR: config.MODELS_DIR } });
  await app.register(underPressure, {
    maxEventLoopDelay: config.EVENT_LOOP_MAX_DELAY_MS,
    retryAfter: 1,
    pressureHandler: () => {
      throw new ApiError(HttpErrorCodes.OVERLOADED, 'the server is overloaded; retry shortly', undefined, { 'retry-after': '1' });
    },
  });
  await app.register(multipart, {
    limits: { fileSize: config.MAX_IMAGE_BYTES, files: config.MAX_ITEMS, fields: 2 * config.MAX_ITEMS + 8, fieldSize: multipartFieldBytes(config), parts: 3 * config.MAX_ITEMS + 8 },
  });
  await app.register(authPlugin, { apiKeys: config.API_KEYS, allowedHosts: splitList(config.ALLOWED_HOSTS).map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')) });
  await app.register(openapiPlugin, { version: VERSION, docs: config.DOCS });
  await app.register(policyPlugin, { policyFile: config.POLICY_FILE });
  await app.register(namedPoliciesPlugin, { config });
  await app.register(inferencePlugin, { config });
  await app.register(redisPlugin, { config });
  await app.register(datasetsPlugin, { config });
  await app.register(trainingPlugin, { config });
  await app.register(activationPlugin, { config });
  await app.register(feedbackPlugin, { config });
  await app.register(metricsPlugin);

  await app.register(healthRoutes);
  await app.register(modelRoutes, { config });
  await app.register(shadowRoutes, { config });
  await app.register(moderateRoutes, { config });
  await app.register(chatRoutes, { config });
  await app.register(openaiModerationRoutes, { config });
  await app.register(openaiChatRoutes, { config });
  await app.register(datasetRoutes, { config });
  await app.register(trainRoutes, { config });
  await app.register(calibrateRoutes, { config });
  await app.register(policyRoutes);
  await app.register(feedbackRoutes, { config });
  await app.register(queueDashboard);
  await app.register(playgroundRoutes, { config });
  return app;
}

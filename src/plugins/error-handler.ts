import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { isDatasetError } from '../datasets/errors.ts';
import { InferenceNotReadyError, InferenceOverloadedError } from '../inference/errors.ts';
import { ModelNotFoundError } from '../packages/discovery.ts';
import { ShadowNotFoundError, ShadowRunningError } from '../shadow/errors.ts';
import { isPsaError, PsaErrorCodes } from '../psa/errors.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { DECISIONS } from '../policy/policy.ts';
import { ApiError, HttpErrorCodes, type ErrorCode } from '../http/errors.ts';
import { errorBody } from '../http/framework-errors.ts';
import { hidePaths } from '../http/paths.ts';
import { openaiErrorBody } from '../openai/errors.ts';

/** Fastify's own error codes, mapped onto ours so a client always sees a PSA_* code. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: HttpErrorCodes.MALFORMED_JSON,
  FST_ERR_CTP_EMPTY_JSON_BODY: HttpErrorCodes.MALFORMED_JSON,
  FST_ERR_CTP_BODY_TOO_LARGE: HttpErrorCodes.PAYLOAD_TOO_LARGE,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: HttpErrorCodes.UNSUPPORTED_MEDIA_TYPE,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: HttpErrorCodes.BAD_REQUEST,
  FST_REQ_FILE_TOO_LARGE: HttpErrorCodes.PAYLOAD_TOO_LARGE,
  FST_FILES_LIMIT: HttpErrorCodes.TOO_MANY_ITEMS,
  FST_PARTS_LIMIT: HttpErrorCodes.TOO_MANY_ITEMS,
  FST_FIELDS_LIMIT: HttpErrorCodes.TOO_MANY_ITEMS,
  FST_PROTO_VIOLATION: HttpErrorCodes.BAD_REQUEST,
  FST_INVALID_MULTIPART_CONTENT_TYPE: HttpErrorCodes.UNSUPPORTED_MEDIA_TYPE,
  FST_MP_PREMATURE_CLOSE: HttpErrorCodes.BAD_REQUEST,
  FST_ERR_VALIDATION: HttpErrorCodes.BAD_REQUEST,
};

/** Body fields whose schema failures have their own codes. */
const VALIDATION_CODES: Record<string, ErrorCode> = {
  policy: PsaErrorCodes.INVALID_LABEL,
  intervene: PsaErrorCodes.INVALID_LABEL,
  max_tokens: PsaErrorCodes.INVALID_GENERATION_OPTION,
  max_completion_tokens: PsaErrorCodes.INVALID_GENERATION_OPTION,
  n: PsaErrorCodes.INVALID_GENERATION_OPTION,
  stream_options: PsaErrorCodes.INVALID_GENERATION_OPTION,
  temperature: PsaErrorCodes.INVALID_GENERATION_OPTION,
  top_p: PsaErrorCodes.INVALID_GENERATION_OPTION,
  top_k: PsaErrorCodes.INVALID_GENERATION_OPTION,
  seed: PsaErrorCodes.INVALID_GENERATION_OPTION,
  stop: PsaErrorCodes.INVALID_GENERATION_OPTION,
};

function labelsHint(field: string): string {
  if (field !== 'policy' && field !== 'intervene') return '';
  return `; levels are ${LEVEL_LABELS.join(', ')}; types are ${TYPE_LABELS.join(', ')}; decisions are ${DECISIONS.join(', ')}`;
}

function toApiError(err: FastifyError | Error): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof InferenceOverloadedError) return new ApiError(HttpErrorCodes.OVERLOADED, err.message, err.details, { 'retry-after': String(err.retryAfterS) });
  if (err instanceof InferenceNotReadyError) return new ApiError(HttpErrorCodes.NOT_READY, err.message, undefined, { 'retry-after': String(err.retryAfterS) });
  if (err instanceof ModelNotFoundError) return new ApiError(HttpErrorCodes.MODEL_NOT_FOUND, err.message, err.details);
  if (err instanceof ShadowRunningError) return new ApiError(HttpErrorCodes.SHADOW_RUNNING, err.message, err.details);
  if (err instanceof ShadowNotFoundError) return new ApiError(HttpErrorCodes.SHADOW_NOT_FOUND, err.message, err.details);
  if (isDatasetError(err)) {
    return new ApiError(err.code, err.message, err.problems.length ? { problems: err.problems, total_problems: err.totalProblems } : undefined);
  }
  if (isPsaError(err)) return ApiError.from(err);
  const fastifyErr = err as FastifyError;
  if (fastifyErr.validation) {
    const first = fastifyErr.validation[0];
    // An unknown field is named, so the client knows which one to drop.
    const extra = first?.keyword === 'additionalProperties' ? String((first.params as { additionalProperty?: unknown }).additionalProperty ?? '') : '';
    const path = `${first?.instancePath ?? ''}${extra ? `/${extra}` : ''}`;
    const where = `${fastifyErr.validationContext ?? 'body'}${path}`;
    const field = path.split('/')[1] ?? '';
    const unknownTopLevel = extra !== '' && path.split('/').length === 2;
    const code = (unknownTopLevel ? undefined : VALIDATION_CODES[field]) ?? HttpErrorCodes.BAD_REQUEST;
    const allowed = first?.keyword === 'enum' || first?.keyword === 'const' || first?.keyword === 'anyOf' ? labelsHint(field) : '';
    const message = extra ? `${where} is not a field this route accepts; remove it` : `${where} ${first?.message ?? 'is invalid'}${allowed}`;
    return new ApiError(code, message, { path: where, rule: first?.keyword, ...(code === PsaErrorCodes.INVALID_GENERATION_OPTION && { field }) });
  }
  const mapped = fastifyErr.code ? FASTIFY_CODES[fastifyErr.code] : undefined;
  if (mapped) {
    const hints: Partial<Record<ErrorCode, string>> = {
      [HttpErrorCodes.MALFORMED_JSON]: 'the body is not valid JSON; send a JSON object',
      [HttpErrorCodes.UNSUPPORTED_MEDIA_TYPE]: 'send application/json or multipart/form-data',
      [HttpErrorCodes.PAYLOAD_TOO_LARGE]: 'the request body or a file is larger than this server accepts for this route; send a smaller image or body',
      [HttpErrorCodes.TOO_MANY_ITEMS]: 'too many files or fields in the form; send fewer images per request',
    };
    return new ApiError(mapped, `${hints[mapped] ?? fastifyErr.message} (${fastifyErr.message})`);
  }
  if (typeof fastifyErr.statusCode === 'number' && fastifyErr.statusCode >= 400 && fastifyErr.statusCode < 500) {
    return new ApiError(codeForStatus(fastifyErr.statusCode), fastifyErr.message.slice(0, 300));
  }
  return new ApiError(HttpErrorCodes.INTERNAL, 'internal error; the request id identifies it in the server log');
}

/** A code for an error another component answered in its own shape (a plugin, the router). */
function codeForStatus(status: number): ErrorCode {
  const byStatus: Record<number, ErrorCode> = {
    401: HttpErrorCodes.UNAUTHORIZED,
    403: HttpErrorCodes.FORBIDDEN,
    404: HttpErrorCodes.NOT_FOUND,
    408: HttpErrorCodes.REQUEST_TIMEOUT,
    413: HttpErrorCodes.PAYLOAD_TOO_LARGE,
    414: HttpErrorCodes.URI_TOO_LONG,
    415: HttpErrorCodes.UNSUPPORTED_MEDIA_TYPE,
    429: HttpErrorCodes.TOO_MANY_REQUESTS,
  };
  return byStatus[status] ?? (status >= 500 ? HttpErrorCodes.INTERNAL : HttpErrorCodes.BAD_REQUEST);
}

const isPsaShaped = (payload: string) => /^\{"error":\{"code":"PSA_/.test(payload);

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers errors in a documented shape of its own (readiness), left as it is. */
    ownErrorShape?: boolean;
  }
}

/**
 * One error handler: coded JSON errors, 5xx internals logged and hidden from clients. Bodies are
 * serialised here, not by the response schemas, so no error can fail to serialise; server paths
 * in messages are shown relative to DATA_DIR / MODELS_DIR.
 */
export default fp(
  async function errorHandler(app: FastifyInstance, opts: { roots?: Record<string, string> }) {
    const roots = opts.roots ?? {};
    app.setErrorHandler((err: FastifyError, request, reply) => {
      const apiErr = toApiError(err);
      // Never the request itself: its headers carry the API key.
      // A 503 with Retry-After is load shedding, expected under load: no stack for each refusal.
      if (apiErr.statusCode >= 500 && apiErr.headers?.['retry-after'] === undefined) request.log.error({ err }, 'request failed');
      else if (apiErr.statusCode >= 500) request.log.warn({ code: apiErr.code, message: apiErr.message.slice(0, 500), details: apiErr.details }, 'request shed');
      else request.log.info({ code: apiErr.code, message: apiErr.message.slice(0, 500) }, 'request rejected');
      if (apiErr.headers) reply.headers(apiErr.headers);
      const details = apiErr.details && (JSON.parse(hidePaths(JSON.stringify(apiErr.details), roots)) as Record<string, unknown>);
      const message = hidePaths(apiErr.message, roots);
      reply.code(apiErr.statusCode).type('application/json; charset=utf-8');
      if (request.routeOptions.config.errorFormat === 'openai') {
        // SDKs retry 429 and 5xx by default; say which of them are worth retrying.
        if (apiErr.statusCode >= 500 || apiErr.statusCode === 429) reply.header('x-should-retry', apiErr.headers?.['retry-after'] !== undefined ? 'true' : 'false');
        return reply.send(JSON.stringify(openaiErrorBody({ statusCode: apiErr.statusCode, code: apiErr.code, message, details })));
      }
      return reply.send(errorBody(apiErr.code, message, request.id, details));
    });
    app.setNotFoundHandler((request, reply) =>
      reply
        .code(404)
        .type('application/json; charset=utf-8')
        .send(errorBody(HttpErrorCodes.NOT_FOUND, `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}; see /openapi.json`, request.id)),
    );
    // Plugins with their own error replies (Bull Board, static files of /docs) answer in our shape too.
    app.addHook('onSend', async (request, reply, payload) => {
      if (reply.statusCode < 400 || request.routeOptions.config.ownErrorShape || request.routeOptions.config.errorFormat === 'openai') return payload;
      const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8', 0, 64) : null;
      if (text !== null && isPsaShaped(text)) return payload;
      if (text === null && payload !== null && payload !== undefined) return payload; // a stream: left alone
      const code = codeForStatus(reply.statusCode);
      reply.type('application/json; charset=utf-8');
      reply.removeHeader('content-length');
      return errorBody(code, `the request was refused (HTTP ${reply.statusCode})`, request.id);
    });
  },
  { name: 'psa-errors' },
);

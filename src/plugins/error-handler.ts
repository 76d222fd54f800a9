import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { isDatasetError } from '../datasets/errors.ts';
import { isPsaError, PsaErrorCodes } from '../psa/errors.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { DECISIONS } from '../policy/policy.ts';
import { ApiError, HttpErrorCodes, type ErrorCode } from '../http/errors.ts';
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
      [HttpErrorCodes.PAYLOAD_TOO_LARGE]: 'the request body or a file is larger than this server accepts; send a smaller image',
      [HttpErrorCodes.TOO_MANY_ITEMS]: 'too many files or fields in the form; send fewer images per request',
    };
    return new ApiError(mapped, `${hints[mapped] ?? fastifyErr.message} (${fastifyErr.message})`);
  }
  if (typeof fastifyErr.statusCode === 'number' && fastifyErr.statusCode >= 400 && fastifyErr.statusCode < 500) {
    return new ApiError(HttpErrorCodes.BAD_REQUEST, fastifyErr.message);
  }
  return new ApiError(HttpErrorCodes.INTERNAL, 'internal error; the request id identifies it in the server log');
}

/** One error handler: coded JSON errors, 5xx internals logged and hidden from clients. */
export default fp(
  async function errorHandler(app: FastifyInstance) {
    app.setErrorHandler((err: FastifyError, request, reply) => {
      const apiErr = toApiError(err);
      if (apiErr.statusCode >= 500) request.log.error({ err, request }, 'request failed');
      else request.log.info({ code: apiErr.code, message: apiErr.message }, 'request rejected');
      if (apiErr.headers) reply.headers(apiErr.headers);
      if (request.routeOptions.config.errorFormat === 'openai') {
        // SDKs retry 429 and 5xx by default; say which of them are worth retrying.
        if (apiErr.statusCode >= 500 || apiErr.statusCode === 429) reply.header('x-should-retry', apiErr.headers?.['retry-after'] !== undefined ? 'true' : 'false');
        return reply.code(apiErr.statusCode).send(openaiErrorBody(apiErr));
      }
      return reply.code(apiErr.statusCode).send({
        error: { code: apiErr.code, message: apiErr.message, ...(apiErr.details && { details: apiErr.details }) },
        request_id: request.id,
      });
    });
    app.setNotFoundHandler((request, reply) =>
      reply.code(404).send({
        error: { code: HttpErrorCodes.NOT_FOUND, message: `no route ${request.method} ${request.url.split('?')[0]}; see /openapi.json` },
        request_id: request.id,
      }),
    );
  },
  { name: 'psa-errors' },
);


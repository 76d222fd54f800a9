import { Type, type TSchema } from '@sinclair/typebox';
import type { ApiError } from '../http/errors.ts';

/** Route config flag: errors on this route are written in OpenAI's shape. */
export const OPENAI_ROUTE = { errorFormat: 'openai' } as const;

declare module 'fastify' {
  interface FastifyContextConfig {
    errorFormat?: 'openai';
  }
}

/** OpenAI's error types, by status (an unknown model is invalid_request_error there too); SDKs pick their error class from the status. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The request field an error is about, as OpenAI's `param` ("messages[0].content", "max_tokens"). */
function param(details: Record<string, unknown> | undefined): string | null {
  if (typeof details?.field === 'string') return details.field;
  if (typeof details?.path === 'string') {
    const parts = details.path
      .replace(/^body\/?/, '')
      .split('/')
      .filter(Boolean);
    if (parts.length === 0) return null;
    return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
  }
  return null;
}

/** `{error: {message, type, param, code}}` with the service's stable code as `code`. */
export function openaiErrorBody(err: Pick<ApiError, 'statusCode' | 'code' | 'message' | 'details'>) {
  return {
    error: {
      message: err.message,
      type: errorType(err.statusCode),
      param: param(err.details),
      code: err.code,
      ...(err.details && { details: err.details }),
    },
  };
}

export const OpenAIErrorSchema = Type.Object({
  error: Type.Object({
    message: Type.String({ description: 'What went wrong and what to change' }),
    type: Type.String({ description: 'invalid_request_error, authentication_error, permission_error, rate_limit_error, service_unavailable or server_error' }),
    param: Type.Union([Type.String(), Type.Null()], { description: 'The request field the error is about, or null' }),
    code: Type.String({ description: 'Stable error code, e.g. PSA_INVALID_IMAGE' }),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
});

/** Every error status an OpenAI-compatible route can answer, for the OpenAPI document. */
export function withOpenAIErrors(ok: Record<number, TSchema>, statuses: number[] = [400, 401, 403, 404, 413, 415, 500, 503]): Record<number, TSchema> {
  return { ...ok, ...Object.fromEntries(statuses.map((s) => [s, OpenAIErrorSchema])) };
}

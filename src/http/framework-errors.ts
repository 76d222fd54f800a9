import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_STATUS, HttpErrorCodes, type ErrorCode } from './errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's own x-request-id, when it sent a valid one; request.id is always the server's. */
    clientRequestId?: string;
  }
}

const CLIENT_ID = /^[A-Za-z0-9._:@/+=-]{1,64}$/;

/** A client's x-request-id, kept only when it is one short token (it goes into every log line). */
export function clientRequestId(header: string | string[] | undefined): string | undefined {
  return typeof header === 'string' && CLIENT_ID.test(header) ? header : undefined;
}

export const errorBody = (code: ErrorCode, message: string, requestId: string, details?: Record<string, unknown>) => JSON.stringify({ error: { code, message, ...(details && { details }) }, request_id: requestId });

/**
 * Errors Node's HTTP parser raises before Fastify has a request (a body slower than
 * REQUEST_TIMEOUT_MS, oversized headers, garbage): answered in the PSA_* shape, then disconnected.
 */
export function clientErrorHandler(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, message]: [ErrorCode, string] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [HttpErrorCodes.REQUEST_TIMEOUT, 'the request was not received in time (REQUEST_TIMEOUT_MS); send the body without pauses']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [HttpErrorCodes.HEADERS_TOO_LARGE, 'the request headers are too large']
        : [HttpErrorCodes.BAD_REQUEST, 'the request is not valid HTTP/1.1'];
  const status = ERROR_STATUS[code];
  const body = errorBody(code, message, randomUUID());
  this.log.info({ code, cause: err.code }, 'client error');
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Router errors (a path parameter over maxParamLength, a malformed URL) in the PSA_* shape. */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
  const code = tooLong ? HttpErrorCodes.URI_TOO_LONG : HttpErrorCodes.BAD_REQUEST;
  const message = tooLong ? 'a path parameter is too long; ids are at most 100 characters' : 'the URL is malformed (bad percent-encoding)';
  void reply
    .code(ERROR_STATUS[code])
    .header('content-type', 'application/json; charset=utf-8')
    .header('x-request-id', request.id)
    .send(errorBody(code, message, request.id));
}

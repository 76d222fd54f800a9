import type { FastifyInstance, FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import { ApiError, HttpErrorCodes } from './errors.ts';

/**
 * Deepest nesting of arrays and objects in `text`, scanning no further than one level past
 * `limit`. JSON.parse recurses, so a body of 10 million '[' costs a stack overflow or seconds of
 * event-loop time before any schema is consulted; this scan is linear and allocates nothing.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** The JSON body parser: nesting bounded, __proto__ and constructor.prototype refused (as Fastify's own). */
export function registerJsonParser(app: FastifyInstance, maxDepth: number): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request: FastifyRequest, body: string | Buffer, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(new ApiError(HttpErrorCodes.MALFORMED_JSON, 'the body is empty; send a JSON object'), undefined);
    if (jsonDepthExceeds(text, maxDepth)) {
      return done(new ApiError(HttpErrorCodes.MALFORMED_JSON, `the JSON body nests arrays and objects more than ${maxDepth} levels deep`, { max_depth: maxDepth }), undefined);
    }
    try {
      done(null, sjson.parse(text, { protoAction: 'error', constructorAction: 'error' }));
    } catch (err) {
      done(new ApiError(HttpErrorCodes.MALFORMED_JSON, `the body is not valid JSON; send a JSON object (${(err as Error).message.slice(0, 200)})`), undefined);
    }
  });
}

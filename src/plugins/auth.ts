import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';

export const SCOPES = ['infer', 'train', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

interface KeyEntry {
  digest: Buffer;
  scopes: Set<Scope>;
}

/** Parses API_KEYS ("KEY=infer+train,KEY2=admin"); a malformed entry stops the server at start. */
export function parseApiKeys(spec: string): KeyEntry[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry, i) => {
      const eq = entry.lastIndexOf('=');
      const key = eq > 0 ? entry.slice(0, eq) : '';
      const scopes = eq > 0 ? entry.slice(eq + 1).split('+').filter(Boolean) : [];
      if (key.length < 16) throw new Error(`API_KEYS entry ${i + 1}: a key must have at least 16 characters, written KEY=scope[+scope]`);
      const bad = scopes.filter((s) => !SCOPES.includes(s as Scope));
      if (scopes.length === 0 || bad.length) throw new Error(`API_KEYS entry ${i + 1}: scopes must be among ${SCOPES.join(', ')}${bad.length ? ` (got ${bad.join(', ')})` : ''}`);
      return { digest: digest(key), scopes: new Set(scopes as Scope[]) };
    });
}

// Comparing fixed-length digests keeps the comparison constant-time whatever the key lengths.
const digest = (key: string) => createHash('sha256').update(key).digest();

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler that requires a key with this scope (admin satisfies every scope). */
    requireScope(scope: Scope): preHandlerAsyncHookHandler;
    authEnabled: boolean;
  }
  interface FastifyRequest {
    scopes?: Set<Scope>;
  }
}

export default fp(
  async function auth(app: FastifyInstance, opts: { apiKeys: string }) {
    const keys = parseApiKeys(opts.apiKeys);
    app.decorate('authEnabled', keys.length > 0);
    app.decorateRequest('scopes', undefined);
    app.decorate('requireScope', (scope: Scope): preHandlerAsyncHookHandler => {
      return async function checkScope(request: FastifyRequest) {
        if (keys.length === 0) return;
        const header = request.headers.authorization ?? '';
        const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
        if (!match) {
          throw new ApiError(HttpErrorCodes.UNAUTHORIZED, 'send an API key as "Authorization: Bearer <key>"', undefined, { 'www-authenticate': 'Bearer' });
        }
        const presented = digest(match[1]!);
        let found: KeyEntry | undefined;
        for (const k of keys) if (timingSafeEqual(k.digest, presented)) found = k;
        if (!found) throw new ApiError(HttpErrorCodes.UNAUTHORIZED, 'the API key is not valid', undefined, { 'www-authenticate': 'Bearer error="invalid_token"' });
        if (!found.scopes.has(scope) && !found.scopes.has('admin')) {
          throw new ApiError(HttpErrorCodes.FORBIDDEN, `this API key lacks the "${scope}" scope`, { required: scope });
        }
        request.scopes = found.scopes;
      };
    });
  },
  { name: 'psa-auth' },
);

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { checkBrowserOrigin } from '../http/origin.ts';

export const SCOPES = ['infer', 'train', 'feedback', 'admin', 'metrics'] as const;
export type Scope = (typeof SCOPES)[number];
/**
 * What a route declares in `config.scope`: a key scope, 'key' (any valid key) or 'public' (no key,
 * e.g. liveness). A route that declares nothing needs a valid key: routes fail closed.
 */
export type RouteScope = Scope | 'key' | 'public';

interface KeyEntry {
  digest: Buffer;
  scopes: Set<Scope>;
  /** Stable id of the key, recorded as the owner of what it creates; never the key itself. */
  owner: string;
}

/** The caller, resolved in onRequest: which key (as its owner id) and what it may do. */
export interface Principal {
  owner: string;
  scopes: ReadonlySet<Scope>;
  admin: boolean;
}

/** Without keys every caller is the local operator. */
const LOCAL: Principal = { owner: 'local', scopes: new Set(SCOPES), admin: true };

// Comparing fixed-length digests keeps the comparison constant-time whatever the key lengths.
const digest = (key: string) => createHash('sha256').update(key).digest();
export const ownerId = (key: string) => `key-${createHash('sha256').update(`psa-owner:${key}`).digest('hex').slice(0, 16)}`;

/**
 * Parses API_KEYS ("KEY=infer+train,KEY2=admin"); a malformed entry, whitespace inside an entry or
 * a key listed twice stops the server at start (a repeated key would silently keep one scope set).
 */
export function parseApiKeys(spec: string): KeyEntry[] {
  const seen = new Map<string, number>();
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry, i) => {
      if (/\s/.test(entry)) throw new Error(`API_KEYS entry ${i + 1}: whitespace inside an entry; write KEY=scope[+scope] with no spaces`);
      const eq = entry.lastIndexOf('=');
      const key = eq > 0 ? entry.slice(0, eq) : '';
      const scopes =
        eq > 0
          ? entry
              .slice(eq + 1)
              .split('+')
              .filter(Boolean)
          : [];
      if (key.length < 16) throw new Error(`API_KEYS entry ${i + 1}: a key must have at least 16 characters, written KEY=scope[+scope]`);
      const bad = scopes.filter((s) => !SCOPES.includes(s as Scope));
      if (scopes.length === 0 || bad.length) throw new Error(`API_KEYS entry ${i + 1}: scopes must be among ${SCOPES.join(', ')}${bad.length ? ` (got ${bad.join(', ')})` : ''}`);
      const first = seen.get(key);
      if (first !== undefined) throw new Error(`API_KEYS entry ${i + 1}: the same key as entry ${first}; list each key once with all its scopes (KEY=infer+train)`);
      seen.set(key, i + 1);
      return { digest: digest(key), scopes: new Set(scopes as Scope[]), owner: ownerId(key) };
    });
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; enforced in onRequest, before the body is read. */
    scope?: RouteScope;
  }
  interface FastifyInstance {
    authEnabled: boolean;
  }
  interface FastifyRequest {
    principal: Principal;
  }
}

export interface AuthOptions {
  apiKeys: string;
  /** Host names accepted without keys (DNS-rebinding guard). */
  allowedHosts: string[];
}

const has = (p: Principal, scope: Scope) => p.admin || p.scopes.has(scope);

/**
 * Authentication and scopes in one onRequest hook, so nothing about an unauthorised request is
 * parsed, validated or buffered: its body is never read. Unknown routes end here too, as 404.
 */
export default fp(
  async function auth(app: FastifyInstance, opts: AuthOptions) {
    const keys = parseApiKeys(opts.apiKeys);
    const enabled = keys.length > 0;
    app.decorate('authEnabled', enabled);
    app.decorateRequest('principal', null as unknown as Principal);

    const authenticate = (request: FastifyRequest): Principal => {
      const header = request.headers.authorization ?? '';
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw new ApiError(HttpErrorCodes.UNAUTHORIZED, 'send an API key as "Authorization: Bearer <key>"', undefined, { 'www-authenticate': 'Bearer' });
      const presented = digest(match[1]!);
      let found: KeyEntry | undefined;
      for (const k of keys) if (timingSafeEqual(k.digest, presented)) found = k;
      if (!found) throw new ApiError(HttpErrorCodes.UNAUTHORIZED, 'the API key is not valid', undefined, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return { owner: found.owner, scopes: found.scopes, admin: found.scopes.has('admin') };
    };
    const forbidden = (scope: Scope) => new ApiError(HttpErrorCodes.FORBIDDEN, `this API key lacks the "${scope}" scope`, { required: scope });

    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        if (request.is404) throw new ApiError(HttpErrorCodes.NOT_FOUND, `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}; see /openapi.json`);
        const scope = request.routeOptions.config.scope;
        if (scope === 'public') return;
        if (!enabled) {
          checkBrowserOrigin(request, opts.allowedHosts);
          request.principal = LOCAL;
          return;
        }
        const principal = authenticate(request);
        if (scope !== undefined && scope !== 'key' && !has(principal, scope)) throw forbidden(scope);
        request.principal = principal;
      } catch (err) {
        // The body was not read; closing the connection spares reading and discarding it.
        if (request.headers['content-length'] !== '0' && (request.headers['content-length'] || request.headers['transfer-encoding'])) reply.header('connection', 'close');
        throw err;
      }
    });
  },
  { name: 'psa-auth' },
);

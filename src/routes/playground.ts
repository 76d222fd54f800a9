import { readFile } from 'node:fs/promises';
import type { Config } from '../config.ts';
import { playgroundEnabled } from '../listen-host.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

export const PLAYGROUND_PATH = '/playground';

const ASSETS_DIR = new URL('../playground/', import.meta.url);

/** Served files: URL path under /playground -> file name and content type. */
const ASSETS = {
  '': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/playground.css': { file: 'playground.css', type: 'text/css; charset=utf-8' },
  '/api.js': { file: 'api.js', type: 'text/javascript; charset=utf-8' },
  '/view.js': { file: 'view.js', type: 'text/javascript; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
} as const;

// Nothing but this origin's own files may run or load: a string that slipped into the page as
// markup could neither run a script nor fetch from elsewhere. Images may be blob: (previews).
export const PLAYGROUND_CSP = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': PLAYGROUND_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * The playground: a static page (src/playground/) that calls the public API with the key the
 * user types. The files are read once at start; the page itself needs no key.
 */
const playgroundRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  if (!playgroundEnabled(opts.config, app.authEnabled)) return;
  const files = await Promise.all(Object.entries(ASSETS).map(async ([path, a]) => ({ path, type: a.type, body: await readFile(new URL(a.file, ASSETS_DIR)) })));
  for (const f of files) {
    app.get(PLAYGROUND_PATH + f.path, { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) => reply.headers(SECURITY_HEADERS).type(f.type).send(f.body));
  }
  app.get('/', { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) => reply.redirect(PLAYGROUND_PATH, 302));
};

export default playgroundRoutes;

import t from 'tap';
import { loadConfig } from '../src/config.ts';
import { listenHost, playgroundEnabled } from '../src/listen-host.ts';
import { PLAYGROUND_CSP } from '../src/routes/playground.ts';
import { testApp } from './helpers/app.ts';

const KEYS = 'route-test-key-00001=infer';

t.test('PLAYGROUND=auto serves the page only where the server listens on loopback', async (t) => {
  const enabled = (env: Record<string, string>) => {
    const config = loadConfig(env);
    return playgroundEnabled(config, config.API_KEYS !== '');
  };
  t.equal(loadConfig({}).PLAYGROUND, 'auto');
  t.equal(enabled({}), true, 'no keys: the server is forced onto 127.0.0.1');
  t.equal(enabled({ API_KEYS: KEYS }), false, 'keys and HOST 0.0.0.0: reachable from elsewhere');
  t.equal(enabled({ API_KEYS: KEYS, HOST: '127.0.0.1' }), true);
  t.equal(enabled({ API_KEYS: KEYS, HOST: 'localhost' }), true);
  t.equal(enabled({ ALLOW_NO_AUTH: 'true' }), false, 'ALLOW_NO_AUTH listens on HOST (0.0.0.0)');
  t.equal(enabled({ API_KEYS: KEYS, PLAYGROUND: 'on' }), true);
  t.equal(enabled({ HOST: '127.0.0.1', PLAYGROUND: 'off' }), false);
  t.throws(() => loadConfig({ PLAYGROUND: 'yes' }), /PLAYGROUND/);
  t.same(listenHost(loadConfig({}), false), { host: '127.0.0.1', forced: true });
  t.same(listenHost(loadConfig({ API_KEYS: KEYS }), true), { host: '0.0.0.0', forced: false });
});

t.test('the page and its files: content types, a strict Content-Security-Policy, no key needed', async (t) => {
  const { app } = await testApp({ API_KEYS: KEYS, PLAYGROUND: 'on' });
  t.teardown(() => app.close());
  const root = await app.inject('/');
  t.equal(root.statusCode, 302);
  t.equal(root.headers.location, '/playground');
  const files: [string, RegExp][] = [
    ['/playground', /^text\/html; charset=utf-8$/],
    ['/playground/app.js', /^text\/javascript; charset=utf-8$/],
    ['/playground/api.js', /^text\/javascript; charset=utf-8$/],
    ['/playground/view.js', /^text\/javascript; charset=utf-8$/],
    ['/playground/playground.css', /^text\/css; charset=utf-8$/],
  ];
  for (const [url, type] of files) {
    const res = await app.inject(url);
    t.equal(res.statusCode, 200, `${url} without a key`);
    t.match(res.headers['content-type'], type, url);
    t.equal(res.headers['content-security-policy'], PLAYGROUND_CSP, `${url}: CSP`);
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    t.ok(res.body.length > 100);
  }
  t.match(PLAYGROUND_CSP, /script-src 'self'(;|$)/, 'no inline or remote scripts');
  t.notMatch(PLAYGROUND_CSP, /unsafe-inline|unsafe-eval|\*/);
  const html = (await app.inject('/playground')).body;
  t.notMatch(html, /<script>|style=|https?:\/\//, 'no inline script or style, nothing remote');
  for (const [url] of files) {
    const js = (await app.inject(url)).body;
    t.notMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, `${url} never parses strings as markup`);
  }
  t.equal((await app.inject('/v1/models')).statusCode, 401, 'the API behind it still wants a key');
  t.equal((await app.inject('/playground/other.js')).json().error.code, 'PSA_NOT_FOUND');
  const doc = (await app.inject({ url: '/openapi.json', headers: { authorization: 'Bearer route-test-key-00001' } })).json();
  t.notOk(
    Object.keys(doc.paths).some((p) => p.startsWith('/playground') || p === '/'),
    'the page stays out of the API document',
  );
});

t.test('PLAYGROUND=off: no page and no redirect', async (t) => {
  const { app } = await testApp({ PLAYGROUND: 'off' });
  t.teardown(() => app.close());
  for (const url of ['/', '/playground', '/playground/app.js']) {
    const res = await app.inject(url);
    t.equal(res.statusCode, 404, url);
    t.equal(res.json().error.code, 'PSA_NOT_FOUND');
  }
});

t.test("the page's model-list reader reads GET /v1/models (OpenAI's list shape with this service's fields)", async (t) => {
  // The page's own module, run here as the browser runs it (it touches no DOM when it loads).
  const page = (await import(String(new URL('../src/playground/api.js', import.meta.url)))) as { readModelList(body: unknown): unknown[] };
  const { app } = await testApp();
  t.teardown(() => app.close());
  const body = (await app.inject('/v1/models')).json();
  const fromService = page.readModelList(body) as { id: string; active: boolean; created: string; metrics: unknown }[];
  t.equal(fromService.length, body.data.length);
  t.match(
    fromService.find((m) => m.active),
    { id: body.active, name: 'psa-tiny', status: 'untrained' },
  );
  const metrics = { level_accuracy: 0.9, type_accuracy: 0.8, refusal_rate_on_safe: 0 };
  const withV2 = { ...body, data: [...body.data, { id: 'guard-v2', object: 'model', created: 1_700_000_000, owned_by: 'psa-guard', active: false, provenance: { status: 'trained' }, metrics }] };
  const v2 = (page.readModelList(withV2) as typeof fromService).at(-1)!;
  t.match(v2, { id: 'guard-v2', active: false, status: 'trained' });
  t.equal(v2.created, new Date(1_700_000_000_000).toISOString(), 'unix seconds read as a date');
  t.same(v2.metrics, metrics, 'metrics beside the OpenAI fields');
  t.same(page.readModelList({ error: { code: 'PSA_INTERNAL' } }), [], 'anything else lists nothing');
});

import t from 'tap';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { parseApiKeys } from '../src/plugins/auth.ts';
import { b64, multipartBody, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

// Regression tests of the HTTP edge: auth before bodies, body limits and depth, timeouts, logs,
// request ids, framework errors, multipart, remote images, no-auth Host/Origin checks.
const png = await gradientPng();
const INFER = 'infer-key-0123456789abcdef';
const TRAIN = 'train-key-0123456789abcdef';
const METRICS = 'metric-key-0123456789abcdef';
const KEYS = `${INFER}=infer,${TRAIN}=train,${METRICS}=metrics`;
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

async function listen(overrides: Record<string, string>, logger?: unknown) {
  const { app } = await testApp(overrides, logger);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as { port: number }).port };
}

async function healthLatency(port: number): Promise<number> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  await res.text();
  return performance.now() - started;
}

/** Streams `bytes` of a deeply nested JSON body without a key; resolves with the status and how long it took. */
function bigBody(port: number, path: string, bytes: number): Promise<{ status: number; ms: number; body: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': bytes } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, ms: performance.now() - started, body }));
    });
    req.on('error', () => undefined); // the server may close while we still write: expected
    const chunk = Buffer.alloc(1024 * 1024, '[');
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!req.write(chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
    setTimeout(() => reject(new Error('no answer within 60 s')), 60_000).unref();
  });
}

t.test('finding 2: an unauthenticated 54 MB nested body is refused unread; /healthz stays fast', async (t) => {
  const { app, port } = await listen({ API_KEYS: KEYS });
  t.teardown(() => app.close());
  const before = await healthLatency(port);
  const pending = bigBody(port, '/v1/moderate', 54 * 1024 * 1024);
  const during: number[] = [];
  for (let i = 0; i < 5; i++) during.push(await healthLatency(port));
  const res = await pending;
  t.equal(res.status, 401, 'refused for the missing key, not parsed');
  t.match(JSON.parse(res.body).error.code, 'PSA_UNAUTHORIZED');
  const unknown = await bigBody(port, '/v1/nothing-here', 20 * 1024 * 1024);
  t.equal(unknown.status, 404, 'an unknown route answers 404 without reading the body');
  const worst = Math.max(...during);
  t.comment(`/healthz: ${before.toFixed(1)} ms before, at most ${worst.toFixed(1)} ms during the body; 401 after ${res.ms.toFixed(0)} ms, 404 after ${unknown.ms.toFixed(0)} ms`);
  t.ok(worst < 2000, `/healthz answered within 2 s during the body (${worst.toFixed(0)} ms)`);
});

t.test('auth comes before validation; body limits per route; JSON depth bounded', async (t) => {
  const { app } = await testApp({ API_KEYS: KEYS });
  t.teardown(() => app.close());
  const bad = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { nonsense: 1 } });
  t.equal(bad.statusCode, 401, 'no key: 401, not the schema error');
  const wrongScope = await app.inject({ method: 'POST', url: '/v1/train', payload: { nonsense: 1 }, headers: auth(INFER) });
  t.equal(wrongScope.statusCode, 403, 'wrong scope: 403 before the body is looked at');
  const nested = '['.repeat(200) + ']'.repeat(200);
  const deep = await app.inject({ method: 'POST', url: '/v1/moderate', payload: `{"image": ${nested}}`, headers: { ...auth(INFER), 'content-type': 'application/json' } });
  t.equal(deep.statusCode, 400);
  t.equal(deep.json().error.code, 'PSA_MALFORMED_JSON');
  t.match(deep.json().error.message, /32 levels/);
  const big = await app.inject({ method: 'POST', url: '/v1/train', payload: { dataset: 'x'.repeat(200_000), output_name: 'x' }, headers: auth(TRAIN) });
  t.equal(big.statusCode, 413, 'a control route takes small bodies only');
  t.equal(big.json().error.code, 'PSA_PAYLOAD_TOO_LARGE');
  const image = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png) }, headers: auth(INFER) });
  t.equal(image.statusCode, 200, 'inference routes still take images');
  const unknown = await app.inject({ method: 'POST', url: '/v1/nope', payload: { a: 1 }, headers: auth(INFER) });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().error.code, 'PSA_NOT_FOUND');
});

t.test('finding 3: a body sent at a trickle gets 408 in the PSA shape and is disconnected', async (t) => {
  const { app, port } = await listen({ REQUEST_TIMEOUT_MS: '2000' });
  t.teardown(() => app.close());
  const started = performance.now();
  const answer = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d) => (got += d));
    socket.on('close', () => resolve(got));
    socket.on('error', () => undefined);
    socket.write(`POST /v1/moderate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);
    const drip = setInterval(() => socket.writable && socket.write(' '), 200);
    socket.on('close', () => clearInterval(drip));
  });
  const seconds = (performance.now() - started) / 1000;
  t.match(answer, /^HTTP\/1\.1 408/);
  t.match(answer, /"code":"PSA_REQUEST_TIMEOUT"/);
  t.comment(`disconnected after ${seconds.toFixed(1)} s (REQUEST_TIMEOUT_MS 2 s, checked every second)`);
  t.ok(seconds < 15, 'the connection was closed by the server');
});

t.test("finding 4: keys never reach the log; request ids are the server's", async (t) => {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const { app } = await testApp({ API_KEYS: KEYS, LOG_LEVEL: 'info' }, { level: 'info', stream });
  // A route that fails as an unexpected bug would, and one that logs its headers.
  app.get('/v1/fails', { config: { scope: 'infer' } }, async (request) => {
    request.log.info({ req: { headers: request.headers }, headers: request.headers }, 'headers');
    throw new Error('unexpected');
  });
  t.teardown(() => app.close());
  const res = await app.inject({ url: '/v1/fails', headers: { ...auth(INFER), 'x-api-key': 'secret-header-value-123', 'x-request-id': 'client-7' } });
  t.equal(res.statusCode, 500);
  t.equal(res.json().error.code, 'PSA_INTERNAL');
  const log = lines.join('');
  t.notMatch(log, INFER, 'the key is not in the log');
  t.notMatch(log, 'secret-header-value-123');
  t.match(log, /\[redacted\]/);
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the server made the request id');
  t.equal(res.json().request_id, res.headers['x-request-id']);
  t.equal(res.headers['x-client-request-id'], 'client-7');
  t.match(log, /"client_request_id":"client-7"/);
  t.ok(
    lines.some((l) => l.includes('"msg":"request completed"') && l.includes('"client_request_id":"client-7"')),
    "Fastify's own request log carries the client id",
  );
  const long = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'x'.repeat(15_000) } });
  t.notOk(long.headers['x-client-request-id'], 'a 15 KB client id is not kept');
  const ids = new Set(await Promise.all([1, 2, 3].map(async () => (await app.inject({ url: '/healthz', headers: { 'x-request-id': 'same' } })).headers['x-request-id'])));
  t.equal(ids.size, 3, 'a repeated client id does not repeat the server id');
});

t.test('operational endpoints: metrics need a scope, docs follow DOCS', async (t) => {
  const { app } = await testApp({ API_KEYS: KEYS });
  t.teardown(() => app.close());
  t.equal((await app.inject('/metrics')).statusCode, 401);
  t.equal((await app.inject({ url: '/metrics', headers: auth(INFER) })).statusCode, 403);
  t.equal((await app.inject({ url: '/metrics', headers: auth(METRICS) })).statusCode, 200);
  t.equal((await app.inject('/openapi.json')).statusCode, 401);
  t.equal((await app.inject({ url: '/openapi.json', headers: auth(INFER) })).statusCode, 200);
  t.equal((await app.inject('/docs')).statusCode, 401);
  t.equal((await app.inject('/readyz')).statusCode, 200);
  const { app: off } = await testApp({ API_KEYS: KEYS, DOCS: 'off' });
  t.teardown(() => off.close());
  t.equal((await off.inject({ url: '/openapi.json', headers: auth(INFER) })).statusCode, 404);
  const { app: open } = await testApp({ API_KEYS: KEYS, DOCS: 'public' });
  t.teardown(() => open.close());
  t.equal((await open.inject('/openapi.json')).statusCode, 200);
});

t.test('framework errors in the PSA shape; no absolute paths in /v1/models', async (t) => {
  const { app } = await testApp();
  t.teardown(() => app.close());
  const longParam = await app.inject({ method: 'POST', url: `/v1/models/${'a'.repeat(300)}/activate` });
  t.equal(longParam.statusCode, 414);
  t.equal(longParam.json().error.code, 'PSA_URI_TOO_LONG');
  const badUrl = await app.inject({ url: '/v1/models/%E0%A4%A/activate', method: 'POST' });
  t.match(badUrl.json().error.code, /^PSA_/);
  const models = await app.inject('/v1/models');
  t.notMatch(models.body, /"\/(tmp|work|home|root)\//, 'no absolute server path in /v1/models');
  const notImage = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(Buffer.from('GIF89a garbage that is not an image')) } });
  t.equal(notImage.json().error.code, 'PSA_INVALID_IMAGE');
  t.notMatch(notImage.json().error.message, /vips|VipsForeign|gifload/i, 'no libvips text echoed');
});

t.test('multipart is validated like JSON; over-long fields are 413, not truncated', async (t) => {
  const { app, config } = await testApp();
  t.teardown(() => app.close());
  const send = (url: string, parts: Parameters<typeof multipartBody>[0]) => {
    const form = multipartBody(parts);
    return app.inject({ method: 'POST', url, payload: form.body, headers: { 'content-type': form.contentType } });
  };
  const image = { name: 'image', value: png, filename: 'a.png', type: 'image/png' };
  const json = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png), intervene: { level: 'bogus' } } });
  const form = await send('/v1/moderate', [image, { name: 'intervene', value: '{"level": "bogus"}' }]);
  t.equal(form.statusCode, json.statusCode);
  t.equal(form.json().error.code, json.json().error.code, `same code (${json.json().error.code})`);
  t.equal(form.json().error.message, json.json().error.message, 'same message');
  const extra = await send('/v1/moderate', [image, { name: 'intervene', value: '{"level": "safe", "evil": 1}' }]);
  t.equal(extra.statusCode, 400, 'unknown intervene fields are refused as in JSON');
  const chatBad = await send('/v1/chat', [image, { name: 'options', value: '{"temperature": 99}' }]);
  t.equal(chatBad.json().error.code, 'PSA_INVALID_GENERATION_OPTION');
  const huge = await send('/v1/moderate', [image, { name: 'prompt', value: 'p'.repeat(Math.max(config.MAX_PROMPT_CHARS * 4, 65536) + 10) }]);
  t.equal(huge.statusCode, 413);
  t.equal(huge.json().error.code, 'PSA_PAYLOAD_TOO_LARGE');
});

t.test('remote images: allowed port only, numeric hosts and private addresses refused', async (t) => {
  const { app } = await testApp({ ALLOWED_IMAGE_HOSTS: 'localhost,127.0.0.1,example.invalid' });
  t.teardown(() => app.close());
  const chat = (url: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/chat',
      payload: {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url } },
              { type: 'text', text: 'hi' },
            ],
          },
        ],
        max_tokens: 2,
      },
    });
  for (const [url, why] of [
    ['https://localhost/x.png', /private, loopback/],
    ['https://127.0.0.1/x.png', /private, loopback/],
    ['https://localhost:8443/x.png', /port 8443/],
    ['https://2130706433/x.png', /only https URLs/],
    ['https://0x7f.1/x.png', /only https URLs/],
    ['http://localhost/x.png', /only https URLs/],
    ['https://user:pw@localhost/x.png', /only https URLs/],
  ] as const) {
    const res = await chat(url);
    t.equal(res.statusCode, 400, url);
    t.equal(res.json().error.code, 'PSA_REMOTE_IMAGE_REFUSED', url);
    t.match(res.json().error.message, why, url);
  }
  const unresolvable = await chat('https://example.invalid/x.png');
  t.equal(unresolvable.statusCode, 400, 'a host that does not resolve is bad input, not a 5xx');
});

t.test('without keys: foreign Host and cross-site Origin are refused', async (t) => {
  const { app } = await testApp();
  t.teardown(() => app.close());
  const call = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png) }, headers });
  t.equal((await call({})).statusCode, 200, 'localhost is served');
  const rebinding = await call({ host: 'attacker.example:8080' });
  t.equal(rebinding.statusCode, 403);
  t.match(rebinding.json().error.message, /ALLOWED_HOSTS/);
  t.equal((await call({ origin: 'https://attacker.example' })).statusCode, 403, 'a foreign Origin');
  t.equal((await call({ origin: 'null' })).statusCode, 403, 'an opaque Origin');
  t.equal((await call({ 'sec-fetch-site': 'cross-site' })).statusCode, 403, 'a cross-site form post');
  t.equal((await call({ origin: 'http://localhost:80' })).statusCode, 200, 'the same origin is fine');
  t.equal((await app.inject({ url: '/healthz', headers: { host: 'anything' } })).statusCode, 200, 'liveness stays open');
});

t.test('API_KEYS: a key listed twice or whitespace inside an entry stops the server', async (t) => {
  t.throws(() => parseApiKeys(`${INFER}=infer,${INFER}=admin`), /same key as entry 1/);
  t.throws(() => parseApiKeys(`${INFER} =infer`), /whitespace/);
  t.throws(() => parseApiKeys(`${INFER}=infer+ admin`), /whitespace/);
  t.equal(parseApiKeys(` ${INFER}=infer+train , ${TRAIN}=admin `).length, 2, 'spaces around entries are fine');
});

t.test('finding 4: a remote image host that never answers is a 4xx; the connection goes to the checked address', async (t) => {
  const { createServer } = await import('node:net');
  const seen: string[] = [];
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((socket) => {
    seen.push(socket.localAddress ?? '');
    sockets.push(socket);
    socket.on('error', () => undefined); // accepts, then says nothing: no TLS handshake, no body
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => silent.close(r));
  });
  const port = (silent.address() as { port: number }).port;
  const { app } = await testApp({ ALLOWED_IMAGE_HOSTS: 'localhost', ALLOWED_IMAGE_PORTS: String(port), ALLOWED_IMAGE_NETWORKS: '127.0.0.0/8,::1/128', REMOTE_IMAGE_TIMEOUT_MS: '500' });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: '/v1/chat', payload: { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `https://localhost:${port}/x.png` } }] }], max_tokens: 2 } });
  t.equal(res.statusCode, 400, res.body);
  t.match(res.json().error.message, /longer than 500 ms|failed/);
  t.same(seen, ['127.0.0.1'], 'one connection, to the address resolved and checked');
});

import t from 'tap';
import SwaggerParser from '@apidevtools/swagger-parser';
import { loadConfig } from '../src/config.ts';
import { parseApiKeys } from '../src/plugins/auth.ts';
import { b64, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

const png = await gradientPng();
const INFER = 'infer-key-0123456789abcdef';
const TRAIN = 'train-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';

t.test('health, readiness and models need no model-specific setup', async (t) => {
  const { app } = await testApp();
  t.teardown(() => app.close());
  t.same((await app.inject('/healthz')).json(), { status: 'ok' });
  const ready = await app.inject('/readyz');
  t.equal(ready.statusCode, 200);
  t.equal(ready.json().model, 'psa-tiny');
  const models = (await app.inject('/v1/models')).json();
  t.equal(models.object, 'list', "OpenAI's list shape");
  t.equal(models.data.filter((m: { active: boolean }) => m.active).length, 1);
  const active = models.data.find((m: { active: boolean }) => m.active);
  t.equal(active.object, 'model');
  t.equal(active.provenance.status, 'untrained', '/v1/models shows the package is untrained');
  t.equal(models.active, active.id);
});

t.test('API keys and scopes', async (t) => {
  const { app } = await testApp({ API_KEYS: `${INFER}=infer,${TRAIN}=train,${ADMIN}=admin` });
  t.teardown(() => app.close());
  t.ok(app.authEnabled);
  const call = (key?: string) => app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png) }, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  const missing = await call();
  t.equal(missing.statusCode, 401);
  t.equal(missing.json().error.code, 'PSA_UNAUTHORIZED');
  t.equal(missing.headers['www-authenticate'], 'Bearer');
  t.equal((await call('wrong-key-0123456789abcdef')).json().error.code, 'PSA_UNAUTHORIZED');
  const wrongScope = await call(TRAIN);
  t.equal(wrongScope.statusCode, 403);
  t.equal(wrongScope.json().error.code, 'PSA_FORBIDDEN');
  t.equal((await call(INFER)).statusCode, 200);
  t.equal((await call(ADMIN)).statusCode, 200, 'admin implies every scope');
  t.equal((await app.inject({ url: '/v1/models' })).statusCode, 401, 'every /v1 route needs a key');
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'health stays open');
  t.equal((await app.inject({ url: '/openapi.json' })).statusCode, 401, 'the API description needs a key (DOCS=key)');
  t.equal((await app.inject({ url: '/openapi.json', headers: { authorization: `Bearer ${INFER}` } })).statusCode, 200, 'any valid key reads it');
});

t.test('API_KEYS that are malformed stop the server at start', async (t) => {
  t.throws(() => parseApiKeys('short=infer'), /at least 16/);
  t.throws(() => parseApiKeys(`${INFER}=everything`), /scopes must be among/);
  t.throws(() => parseApiKeys(INFER), /scopes must be among|KEY=scope/);
  t.equal(parseApiKeys(` ${INFER}=infer+train , ${ADMIN}=admin `).length, 2);
});

t.test('configuration is validated with the variable named', async (t) => {
  t.throws(() => loadConfig({ PORT: 'eighty' }), /PORT/);
  t.throws(() => loadConfig({ DEVICE: 'tpu' }), /DEVICE/);
  const c = loadConfig({ PORT: '9000', BATCH_MAX_WAIT_MS: '2.5' });
  t.equal(c.PORT, 9000);
  t.equal(c.BATCH_MAX_WAIT_MS, 2.5);
  t.equal(c.DEVICE, 'cpu');
});

t.test('the OpenAPI document validates and lists every route with its schemas', async (t) => {
  const { app } = await testApp();
  t.teardown(() => app.close());
  const doc = (await app.inject('/openapi.json')).json();
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'valid OpenAPI 3');
  for (const [path, method] of [
    ['/v1/moderations', 'post'],
    ['/v1/chat/completions', 'post'],
  ] as const) {
    const op = doc.paths[path]?.[method];
    t.ok(op?.requestBody.content['application/json'].schema, `${path} JSON body schema`);
    for (const status of ['200', '400', '401', '403', '404', '413', '503']) t.ok(op?.responses[status]?.content?.['application/json']?.schema, `${path} ${status} response schema`);
    t.ok(op?.responses['400'].content['application/json'].schema.properties.error.properties.param, `${path} errors in OpenAI's shape`);
  }
  t.ok(doc.paths['/v1/chat/completions'].post.responses['200'].content['text/event-stream']?.schema, 'the chunk schema is documented for streams');
  t.ok(doc.paths['/v1/models/{id}']?.get?.responses?.['200']?.content, '/v1/models/{id} documented');
  for (const [path, method] of [
    ['/v1/moderate', 'post'],
    ['/v1/chat', 'post'],
  ] as const) {
    const op = doc.paths[path]?.[method];
    t.ok(op, `${method} ${path} documented`);
    t.ok(op.requestBody.content['application/json'].schema, `${path} JSON body schema`);
    t.ok(op.requestBody.content['multipart/form-data'], `${path} multipart documented`);
    for (const status of ['200', '400', '401', '403', '413', '415', '503']) t.ok(op.responses[status]?.content, `${path} ${status} response schema`);
  }
  // Text-only items: image optional everywhere, and every answer says whether there was one.
  const moderate = doc.paths['/v1/moderate'].post;
  const item = moderate.responses['200'].content['application/json'].schema.properties.items.items;
  t.ok(item.required.includes('has_image') && item.properties.has_image.type === 'boolean', 'moderate items document has_image');
  const body = moderate.requestBody.content['application/json'].schema;
  t.notOk(body.properties.items.items.required?.includes('image'), 'an item may leave out its image');
  const chat = doc.paths['/v1/chat'].post.responses['200'].content['application/json'].schema;
  t.ok(chat.required.includes('has_image'), 'chat documents has_image');
  for (const path of ['/v1/models', '/healthz', '/readyz']) t.ok(doc.paths[path]?.get?.responses?.['200']?.content, `${path} documented`);
  const docs = await app.inject('/docs');
  t.ok([200, 302].includes(docs.statusCode), '/docs serves the browsable UI');
});

t.test('a full inference queue answers 503 with Retry-After', async (t) => {
  const { app } = await testApp({ POOL_MAX_QUEUE: '1', MAX_NEW_TOKENS: '400' });
  t.teardown(() => app.close());
  const long = { image: b64(png), prompt: 'Keep going.', max_tokens: 400, temperature: 1, seed: 3 };
  const results = await Promise.all(Array.from({ length: 4 }, () => app.inject({ method: 'POST', url: '/v1/chat', payload: long })));
  const statuses = results.map((r) => r.statusCode);
  t.ok(statuses.includes(200), `some ran (${statuses})`);
  const shed = results.find((r) => r.statusCode === 503);
  t.ok(shed, 'some were shed');
  t.equal(shed?.json().error.code, 'PSA_OVERLOADED');
  t.equal(shed?.headers['retry-after'], '1');
});

t.test('closing the app lets a request in flight finish', async (t) => {
  const { app } = await testApp({ MAX_NEW_TOKENS: '300' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: b64(png), prompt: 'Take your time.', max_tokens: 300, temperature: 1, seed: 2, stream: true }),
  });
  const reader = res.body!.getReader();
  let text = new TextDecoder().decode((await reader.read()).value);
  t.match(text, /event: concepts/, 'the request is in flight');
  const closed = app.close();
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
  t.match(text, /event: done/, 'it finished after close began');
  t.notMatch(text, /event: error/);
  await closed;
});

t.test('Prometheus metrics', async (t) => {
  const { app } = await testApp();
  t.teardown(() => app.close());
  await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png), intervene: { level: 'refuse', type: 'privacy' } } });
  await app.inject({ method: 'POST', url: '/v1/chat', payload: { image: b64(png), prompt: 'hi', max_tokens: 3 } });
  const res = await app.inject('/metrics');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  const text = res.body;
  t.match(text, /psa_http_request_duration_seconds_count\{method="POST",route="\/v1\/moderate",status="200"\} 1/);
  t.match(text, /psa_pass1_seconds_count [1-9]/);
  t.match(text, /psa_pass2_seconds_count 1/);
  t.match(text, /psa_pass1_batch_size_count [1-9]/);
  t.match(text, /psa_generation_tokens_per_second_count 1/);
  t.match(text, /psa_decisions_total\{type="privacy",level="refuse",decision="refuse"\} 1/);
  t.match(text, /psa_inference_queue_depth 0/);
  t.match(text, /psa_process_/);
  for (const stage of ['parse', 'queue', 'decode', 'ocr_detect', 'ocr_recognize', 'query', 'vision', 'head', 'policy', 'serialize']) {
    t.match(text, new RegExp(`psa_stage_seconds_count\\{stage="${stage}"\\} [1-9]`), `stage ${stage} in /metrics`);
  }
});

import t from 'tap';
import { testApp } from './helpers/app.ts';
import { moderate, removeDir, shadowInputs, shadowModels, shadowReport, untilSettled } from './helpers/shadow.ts';

// Limits, shedding and bad requests of shadow runs, on real onnxruntime and tiny packages; the
// queue is small (2 items) so that shedding is deterministic.
const { root, modelsDir } = await shadowModels();
t.teardown(() => removeDir(root));
const { app } = await testApp({ MODELS_DIR: modelsDir, PSA_MODEL: 'base', SHADOW_MAX_QUEUE: '2' });
t.teardown(() => app.close());
const inputs = await shadowInputs();
const report = (id: string) => shadowReport(app, id);

t.test('a full shadow queue sheds what does not fit, counted, without waiting', async (t) => {
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1 } })).statusCode, 201);
  const five = { items: inputs.slice(0, 5) };
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: five });
  t.equal(res.statusCode, 200);
  const r = await untilSettled(app, 'same', 5);
  t.match(r, { sampled: 5, compared: 2, shed: 3, shed_by_reason: { queue_full: 3, live_busy: 0, candidate_busy: 0 }, queued: 0, in_flight: 0 });
  t.equal(r.agreement.decision, 1);
  t.match((await app.inject('/metrics')).body, /psa_shadow_items\{candidate="same",outcome="shed_queue_full"\} 3/);
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/models/same/shadow' })).statusCode, 200);
});

t.test('limits: max_items and max_seconds end the run; a POST without a body uses SHADOW_SHARE; another activation ends a run', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1, max_items: 3 } });
  t.equal(res.statusCode, 201);
  const run = app.models.shadow!;
  const ended = new Promise((resolve) => run.once('ended', resolve));
  for (const input of inputs.slice(0, 5)) await moderate(app, input);
  t.equal(await ended, 'max_items');
  t.match(await report('same'), { state: 'ended', ended_reason: 'max_items', compared: 3, sampled: 3, limits: { max_items: 3, max_seconds: null } });
  t.notOk(run.candidate.alive);

  t.equal((await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1, max_seconds: 1 } })).statusCode, 201);
  const timed = app.models.shadow!;
  t.equal(await new Promise((resolve) => timed.once('ended', resolve)), 'max_seconds');
  t.match(await report('same'), { state: 'ended', ended_reason: 'max_seconds', limits: { max_items: null, max_seconds: 1 } });
  t.notOk(timed.candidate.alive);

  const plain = await app.inject({ method: 'POST', url: '/v1/models/same/shadow' });
  t.equal(plain.statusCode, 201, plain.body);
  t.equal(plain.json().share, 0.1, 'the documented default share');
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: {} })).json().error.code, 'PSA_SHADOW_RUNNING', 'a run of the same candidate again is a conflict too');
  const other = app.models.shadow!;
  await app.inject({ method: 'POST', url: '/v1/models/other/activate' });
  t.match(await report('same'), { state: 'ended', ended_reason: 'live_changed' }, 'activating another package ends the run');
  t.notOk(other.candidate.alive);
  await app.inject({ method: 'DELETE', url: '/v1/models/same/shadow' });
});

t.test('bad requests get 4xx codes that say what to fix', async (t) => {
  const post = (id: string, payload?: unknown) => app.inject({ method: 'POST', url: `/v1/models/${id}/shadow`, ...(payload !== undefined && { payload: payload as object }) });
  for (const share of [0, -0.5, 1.5, 'half', null]) {
    const res = await post('same', { share });
    t.equal(res.statusCode, 400, `share ${JSON.stringify(share)}`);
    t.equal(res.json().error.code, 'PSA_BAD_REQUEST');
    t.match(res.json().error.message, /share/);
  }
  t.equal((await post('same', { share: 0.5, max_items: 0 })).json().error.code, 'PSA_BAD_REQUEST');
  t.match((await post('same', { ratio: 0.5 })).json().error.message, /ratio.*remove it/);
  for (const id of ['nope', 'a..b', '%2e%2e%2fetc', 'Same']) {
    const res = await post(id, { share: 0.5 });
    t.equal(res.statusCode, 404, id);
    t.equal(res.json().error.code, 'PSA_MODEL_NOT_FOUND');
    t.match(res.json().error.message, /GET \/v1\/models lists them/);
  }
  t.equal((await post('x'.repeat(300), {})).json().error.code, 'PSA_URI_TOO_LONG', 'an id longer than any package name');
  t.equal(app.models.shadow, undefined, 'nothing was started');
  const get = await app.inject('/v1/models/same/shadow');
  t.equal(get.statusCode, 404);
  t.equal(get.json().error.code, 'PSA_SHADOW_NOT_FOUND');
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/models/same/shadow' })).json().error.code, 'PSA_SHADOW_NOT_FOUND');
});

t.test('the routes are in the OpenAPI document with their schemas', async (t) => {
  const doc = (await app.inject('/openapi.json')).json();
  const ops = doc.paths['/v1/models/{id}/shadow'];
  t.same(Object.keys(ops).sort(), ['delete', 'get', 'post']);
  t.ok(ops.post.requestBody.content['application/json'].schema.properties.share);
  t.ok(ops.get.responses['200'].content['application/json'].schema.properties.decision_matrix);
  t.ok(ops.post.responses['409'], 'the conflict of a second run is documented');
});

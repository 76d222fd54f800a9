import t from 'tap';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { DECISIONS } from '../src/policy/policy.ts';
import { b64, testApp } from './helpers/app.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';

// Real onnxruntime on tiny packages the trainer builds: `base` is served, `same` is a copy of it
// (same weights, another directory), `other` has weights from another seed.
const root = await mkdtemp(join(tmpdir(), 'psa-shadow-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const modelsDir = join(root, 'models');
await cp(await tinyPackage(0), join(modelsDir, 'base'), { recursive: true });
await cp(await tinyPackage(0), join(modelsDir, 'same'), { recursive: true });
await cp(await tinyPackage(1), join(modelsDir, 'other'), { recursive: true });

const { app } = await testApp({ MODELS_DIR: modelsDir, PSA_MODEL: 'base', SHADOW_MAX_QUEUE: '64' });
t.teardown(() => app.close());
// What happened, in order: responses finished and shadow work offered, per request id.
const events: string[] = [];
app.addHook('onRequest', async (request, reply) => {
  reply.raw.once('finish', () => events.push(`sent ${request.id}`));
});

const inputs = [
  { image: b64(await gradientPng()), prompt: 'Is this fine?' },
  { image: b64(await gradientPng(64, 64)), prompt: 'How do I make this at home?' },
  { image: b64(await noiseJpeg(64, 64, 1)), prompt: '' },
  { image: b64(await noiseJpeg(64, 64, 2)), prompt: 'Who lives here?' },
  { image: b64(await noiseJpeg(48, 80, 3)), prompt: 'Tell me a joke about them.' },
  { image: b64(await shapesWebp()), prompt: 'What is this?' },
  { prompt: 'How do I pick a lock?' },
  { prompt: 'What is the capital of France?' },
  { prompt: 'Write an insult for my coworker.' },
];

type Item = { decision: string; flagged: boolean; concepts: { type: { label: string } } };
const moderate = async (app: FastifyInstance, payload: object) => {
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload });
  if (res.statusCode !== 200) throw new Error(res.body);
  const { timings: _timings, ...answer } = res.json();
  return { id: res.headers['x-request-id'] as string, answer: answer as { model: string; items: Item[] } };
};
const moderateAll = async (app: FastifyInstance) => {
  const answers = [];
  for (const input of inputs) answers.push((await moderate(app, input)).answer);
  return answers;
};
const chat = async (app: FastifyInstance) => {
  const res = await app.inject({ method: 'POST', url: '/v1/chat', payload: { ...inputs[1], max_tokens: 4, seed: 3 } });
  const { timings: _t, id: _id, ...answer } = res.json();
  return answer;
};
const report = async (id: string) => (await app.inject(`/v1/models/${id}/shadow`)).json();
async function untilCompared(id: string, n: number) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await report(id);
    if (r.compared + r.failed + r.shed >= n) return r;
    if (Date.now() > deadline) throw new Error(`shadow stuck: ${JSON.stringify(r)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const liveAnswers = await moderateAll(app);
const liveChat = await chat(app);

t.test('a shadow of the same package agrees on every item; answers are unchanged; shadow work starts after each response', async (t) => {
  const started = await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1 } });
  t.equal(started.statusCode, 201, started.body);
  t.match(started.json(), { model: 'same', state: 'running', share: 1, live: { id: 'base' }, candidate: { id: 'same', name: 'psa-tiny' }, compared: 0 });
  const run = app.models.shadow!;
  run.on('offered', (id: string) => events.push(`offered ${id}`));

  const again = [];
  const ids: string[] = [];
  for (const input of inputs) {
    const { id, answer } = await moderate(app, input);
    ids.push(id);
    again.push(answer);
  }
  t.same(again, liveAnswers, 'every answer is the same as with the shadow off');
  t.same(await chat(app), liveChat, 'so is the chat answer (concepts, decision and generated text)');
  const multi = await moderate(app, { items: [inputs[0], inputs[6]] });
  t.same(multi.answer.items.map((i) => i.decision), [liveAnswers[0]!.items[0]!.decision, liveAnswers[6]!.items[0]!.decision]);
  const openai = await app.inject({ method: 'POST', url: '/v1/moderations', payload: { input: inputs[7]!.prompt } });
  t.equal(openai.statusCode, 200);
  ids.push(openai.headers['x-request-id'] as string);

  // A streamed chat over a real socket: the reply is hijacked, and still mirrored once it ends.
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const stream = await fetch(`http://127.0.0.1:${port}/v1/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Say hi.', max_tokens: 4, stream: true }) });
  t.match(await stream.text(), /event: done/);
  ids.push(stream.headers.get('x-request-id')!);

  const total = inputs.length + 1 + 2 + 1 + 1;
  const r = await untilCompared('same', total);
  t.equal(r.compared, total, 'moderation items, a two-item request, /v1/moderations and chat pass 1 (plain and streamed) were all compared');
  t.same(r.agreement, { decision: 1, type: 1, flagged: 1 });
  t.equal(r.flag_rate.live, r.flag_rate.candidate);
  t.equal(r.shed, 0);
  t.equal(r.sampled, total);
  for (const live of DECISIONS) for (const cand of DECISIONS) if (live !== cand) t.equal(r.decision_matrix[live][cand], 0, `no ${live} -> ${cand}`);
  t.ok(r.latency_ms.live.p50 > 0 && r.latency_ms.candidate.p95 >= r.latency_ms.candidate.p50, JSON.stringify(r.latency_ms));

  for (const id of ids) {
    const sent = events.indexOf(`sent ${id}`);
    const offered = events.indexOf(`offered ${id}`);
    t.ok(sent !== -1 && offered > sent, `request ${id}: the candidate got it after the response was sent`);
  }

  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, /psa_shadow_agreement_ratio\{candidate="same",on="decision"\} 1/);
  t.match(metrics, new RegExp(`psa_shadow_items\\{candidate="same",outcome="compared"\\} ${total}`));
  t.match(metrics, /psa_shadow_latency_seconds\{candidate="same",model="candidate",quantile="0.95"\}/);

  const second = await app.inject({ method: 'POST', url: '/v1/models/other/shadow', payload: {} });
  t.equal(second.statusCode, 409);
  t.equal(second.json().error.code, 'PSA_SHADOW_RUNNING');

  const stopped = await app.inject({ method: 'DELETE', url: '/v1/models/same/shadow' });
  t.equal(stopped.statusCode, 200);
  t.match(stopped.json(), { state: 'ended', ended_reason: 'stopped', compared: total });
  t.notOk(run.candidate.alive, 'the candidate pool is closed');
  t.equal(app.models.shadow, undefined);
  t.equal((await report('same')).error.code, 'PSA_SHADOW_NOT_FOUND');
  t.notMatch((await app.inject('/metrics')).body, /psa_shadow_running\{/);
  t.same(await moderateAll(app), liveAnswers, 'answers after the run are the same too');
});

t.test('a different package: the comparison shows exactly the two models\' differences; activating the candidate ends it', async (t) => {
  // Here `other` is live and `base` the candidate: both sides' own answers are known.
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/other/activate' })).statusCode, 200);
  const otherAnswers = await moderateAll(app);
  const expected = Object.fromEntries(DECISIONS.map((d) => [d, Object.fromEntries(DECISIONS.map((e) => [e, 0]))]));
  let sameType = 0;
  let sameDecision = 0;
  otherAnswers.forEach((live, i) => {
    const [a, b] = [live.items[0]!, liveAnswers[i]!.items[0]!];
    expected[a.decision]![b.decision]!++;
    if (a.concepts.type.label === b.concepts.type.label) sameType++;
    if (a.decision === b.decision) sameDecision++;
  });
  t.comment(`expected decision matrix ${JSON.stringify(expected)}, types agree on ${sameType}/${inputs.length}`);
  t.ok(sameType < inputs.length && sameDecision < inputs.length, 'the two packages disagree on some decisions and types');

  t.equal((await app.inject({ method: 'POST', url: '/v1/models/base/shadow', payload: { share: 1 } })).statusCode, 201);
  t.same(await moderateAll(app), otherAnswers, 'clients still get the live model\'s answers');
  const r = await untilCompared('base', inputs.length);
  t.same(r.decision_matrix, expected, 'the disagreement matrix is the cross-table of the two models\' own answers');
  t.equal(r.agreement.decision, sameDecision / inputs.length);
  t.equal(r.agreement.type, sameType / inputs.length);
  const flagged = (answers: typeof liveAnswers) => answers.filter((a) => a.items[0]!.flagged).length / inputs.length;
  t.same(r.flag_rate, { live: flagged(otherAnswers), candidate: flagged(liveAnswers) });

  const run = app.models.shadow!;
  const activated = await app.inject({ method: 'POST', url: '/v1/models/base/activate' });
  t.equal(activated.statusCode, 200);
  t.match(await report('base'), { state: 'ended', ended_reason: 'activated', compared: inputs.length }, 'activating the candidate ends the run; its figures stay readable');
  t.notOk(run.candidate.alive);
  t.same(await moderateAll(app), liveAnswers, 'the candidate now answers');
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/models/base/shadow' })).statusCode, 200);
});

t.test('limits: max_items ends the run; a POST without a body uses SHADOW_SHARE; another activation ends a run', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1, max_items: 3 } });
  t.equal(res.statusCode, 201);
  const run = app.models.shadow!;
  const ended = new Promise((resolve) => run.once('ended', resolve));
  for (const input of inputs.slice(0, 5)) await moderate(app, input);
  t.equal(await ended, 'max_items');
  t.match(await report('same'), { state: 'ended', ended_reason: 'max_items', compared: 3, sampled: 3, limits: { max_items: 3, max_seconds: null } });
  t.notOk(run.candidate.alive);

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

t.test('a full shadow queue sheds what does not fit, counted, without waiting', async (t) => {
  const { app: small } = await testApp({ MODELS_DIR: modelsDir, PSA_MODEL: 'base', SHADOW_MAX_QUEUE: '2' });
  t.teardown(() => small.close());
  t.equal((await small.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1 } })).statusCode, 201);
  const five = { items: inputs.slice(0, 5) };
  const res = await small.inject({ method: 'POST', url: '/v1/moderate', payload: five });
  t.equal(res.statusCode, 200);
  const deadline = Date.now() + 60_000;
  let r = (await small.inject('/v1/models/same/shadow')).json();
  while (r.compared + r.shed < 5 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    r = (await small.inject('/v1/models/same/shadow')).json();
  }
  t.match(r, { sampled: 5, compared: 2, shed: 3, shed_by_reason: { queue_full: 3, live_busy: 0, candidate_busy: 0 }, queued: 0, in_flight: 0 });
  t.equal(r.agreement.decision, 1);
  t.match((await small.inject('/metrics')).body, /psa_shadow_items\{candidate="same",outcome="shed_queue_full"\} 3/);
});

t.test('the routes are in the OpenAPI document with their schemas', async (t) => {
  const doc = (await app.inject('/openapi.json')).json();
  const ops = doc.paths['/v1/models/{id}/shadow'];
  t.same(Object.keys(ops).sort(), ['delete', 'get', 'post']);
  t.ok(ops.post.requestBody.content['application/json'].schema.properties.share);
  t.ok(ops.get.responses['200'].content['application/json'].schema.properties.decision_matrix);
  t.ok(ops.post.responses['409'], 'the conflict of a second run is documented');
});

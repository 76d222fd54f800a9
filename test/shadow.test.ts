import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { DECISIONS } from '../src/policy/policy.ts';
import { testApp } from './helpers/app.ts';
import { moderate, removeDir, shadowInputs, shadowModels, shadowReport, untilSettled } from './helpers/shadow.ts';

// Real onnxruntime on tiny packages the trainer builds: `base` is served, `same` is a copy of it,
// `other` has weights from another seed.
const { root, modelsDir } = await shadowModels();
t.teardown(() => removeDir(root));
const { app } = await testApp({ MODELS_DIR: modelsDir, PSA_MODEL: 'base', SHADOW_MAX_QUEUE: '64' });
t.teardown(() => app.close());
// What happened, in order: responses finished and shadow work offered, per request id.
const events: string[] = [];
app.addHook('onRequest', async (request, reply) => {
  reply.raw.once('finish', () => events.push(`sent ${request.id}`));
});
const inputs = await shadowInputs();

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
const report = (id: string) => shadowReport(app, id);
const untilCompared = (id: string, n: number) => untilSettled(app, id, n);

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
  t.same(
    multi.answer.items.map((i) => i.decision),
    [liveAnswers[0]!.items[0]!.decision, liveAnswers[6]!.items[0]!.decision],
  );
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

t.test('a reload of the live package (a recalibration) keeps the run going beside its new pool', async (t) => {
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1 } })).statusCode, 201);
  const run = app.models.shadow!;
  const before = app.models.active;
  await moderate(app, inputs[0]!);
  await app.models.reload();
  t.not(app.models.active, before, 'the live package runs in a new pool');
  t.ok(run.running, 'the reload did not end the run');
  for (const input of inputs) await moderate(app, input);
  const r = await untilCompared('same', 1 + inputs.length);
  t.match(r, { state: 'running', live: { id: 'base', name: 'psa-tiny' }, compared: 1 + inputs.length, shed: 0 }, 'answers of the new pool are mirrored and compared');
  t.equal(r.agreement.decision, 1);
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/models/same/shadow' })).statusCode, 200);
});

t.test("recalibrating the candidate ends the run (its pool has the old temperature); the live package's recalibration does not", async (t) => {
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/same/shadow', payload: { share: 1 } })).statusCode, 201);
  const run = app.models.shadow!;
  await app.activation.recalibrated({ id: 'base', dir: app.models.active.pkg.dir });
  t.ok(run.running, 'the live package was reloaded and the run goes on');
  await app.activation.recalibrated({ id: 'same', dir: run.candidate.pkg.dir });
  t.match(await report('same'), { state: 'ended', ended_reason: 'candidate_changed' });
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/models/same/shadow' })).statusCode, 200);
});

t.test("a different package: the comparison shows exactly the two models' differences; activating the candidate ends it", async (t) => {
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
  t.same(await moderateAll(app), otherAnswers, "clients still get the live model's answers");
  const r = await untilCompared('base', inputs.length);
  t.same(r.decision_matrix, expected, "the disagreement matrix is the cross-table of the two models' own answers");
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

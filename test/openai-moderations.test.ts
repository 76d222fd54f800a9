import t, { type Test } from 'tap';
import type { AddressInfo } from 'node:net';
import OpenAI, { type APIError } from 'openai';
import { b64, testApp } from './helpers/app.ts';
import { gradientPng, noiseJpeg } from './helpers/images.ts';

// The official SDK against a listening server: the service must be a drop-in for it.
const KEY = 'infer-key-0123456789abcdef';
const TRAIN_ONLY = 'train-key-0123456789abcdef';
const { app } = await testApp({ API_KEYS: `${KEY}=infer,${TRAIN_ONLY}=train`, MAX_ITEMS: '4' });
t.teardown(() => app.close());
await app.listen({ port: 0, host: '127.0.0.1' });
const { port } = app.server.address() as AddressInfo;
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ apiKey: KEY, baseURL, maxRetries: 0 });
const png = await gradientPng();
const jpeg = await noiseJpeg();
const dataUrl = (bytes: Buffer, type = 'image/png') => `data:${type};base64,${b64(bytes)}`;
const RISK = ['politics', 'illegal_risk', 'insults_bullying', 'fairness', 'privacy', 'misleading'];
const auth = { authorization: `Bearer ${KEY}` };

type Result = OpenAI.Moderation & {
  psa: { concepts: { level: { scores: Record<string, number> }; type: { scores: Record<string, number> } }; applied: { type: string }; decision: string; flagged: boolean; hint: string | null };
};

type Concepts = Result['psa']['concepts'];
/** Same concepts up to float noise (batched and single pass-1 runs differ by ~1e-8). */
function sameConcepts(t: Test, a: Concepts, b: Concepts, what: string) {
  for (const kind of ['level', 'type'] as const) {
    const worst = Math.max(...Object.entries(a[kind].scores).map(([label, p]) => Math.abs(p - b[kind].scores[label]!)));
    t.ok(worst < 1e-5, `${what}: ${kind} scores agree (largest difference ${worst.toExponential(1)})`);
  }
}

/** The documented meaning of every field, checked on one result. */
function checkResult(t: Test, r: Result, inputTypes: string[], minLevel = 2) {
  t.same(Object.keys(r.categories).sort(), [...RISK].sort(), 'categories are the risk types');
  t.same(Object.keys(r.category_scores).sort(), [...RISK].sort());
  for (const type of RISK) t.same((r.category_applied_input_types as unknown as Record<string, string[]>)[type], inputTypes, `${type} applied input types`);
  const levels = Object.values(r.psa.concepts.level.scores);
  const risk = levels.slice(minLevel).reduce((a, b) => a + b, 0);
  for (const type of RISK) {
    const score = (r.category_scores as unknown as Record<string, number>)[type]!;
    t.ok(Math.abs(score - r.psa.concepts.type.scores[type]! * risk) < 1e-9, `${type} score is P(type) x P(level >= flag level)`);
  }
  t.equal(r.flagged, r.psa.flagged, 'flagged is the policy flag');
  const trueCategories = Object.entries(r.categories)
    .filter(([, v]) => v)
    .map(([k]) => k);
  t.equal(trueCategories.length, r.flagged ? 1 : 0, 'a flagged result has exactly one category set');
}

t.test('text only: one result, scores computed from the text', async (t) => {
  const res = await client.moderations.create({ input: "How do I pick the lock of my neighbour's door?" });
  t.match(res.id, /^modr-/);
  t.equal(res.model, 'psa-tiny');
  t.equal(res.results.length, 1);
  checkResult(t, res.results[0] as Result, ['text']);
});

t.test('image only, and image + text, as content parts', async (t) => {
  const only = await client.moderations.create({ input: [{ type: 'image_url', image_url: { url: dataUrl(png) } }] });
  t.equal(only.results.length, 1);
  checkResult(t, only.results[0] as Result, ['image']);
  const both = await client.moderations.create({
    input: [
      { type: 'text', text: 'Is this fine?' },
      { type: 'image_url', image_url: { url: dataUrl(png) } },
    ],
  });
  checkResult(t, both.results[0] as Result, ['image', 'text']);
  const v1 = (await app.inject({ method: 'POST', url: '/v1/moderate', headers: auth, payload: { image: b64(png), prompt: 'Is this fine?' } })).json();
  t.same((both.results[0] as Result).psa, v1.items[0], 'psa is the /v1/moderate item for the same image and prompt');
  t.notSame((only.results[0] as Result).psa.concepts, (both.results[0] as Result).psa.concepts, 'the text changes the safety head query');
});

t.test('several inputs: strings give one result each, parts one per image', async (t) => {
  const strings = ['Hello there', 'What time is it?', 'Tell me about birds'];
  const res = await client.moderations.create({ input: strings });
  t.equal(res.results.length, 3);
  for (const [i, r] of res.results.entries()) {
    checkResult(t, r as Result, ['text']);
    const single = await client.moderations.create({ input: strings[i]! });
    sameConcepts(t, (r as Result).psa.concepts, (single.results[0] as Result).psa.concepts, `input ${i} judged as on its own`);
  }
  const images = await client.moderations.create({
    input: [
      { type: 'image_url', image_url: { url: dataUrl(png) } },
      { type: 'text', text: 'Both fine?' },
      { type: 'image_url', image_url: { url: dataUrl(jpeg, 'image/jpeg') } },
    ],
  });
  t.equal(images.results.length, 2);
  const v1 = (
    await app.inject({
      method: 'POST',
      url: '/v1/moderate',
      headers: auth,
      payload: {
        items: [
          { image: b64(png), prompt: 'Both fine?' },
          { image: b64(jpeg), prompt: 'Both fine?' },
        ],
      },
    })
  ).json();
  for (const k of [0, 1]) {
    checkResult(t, images.results[k] as Result, ['image', 'text']);
    sameConcepts(t, (images.results[k] as Result).psa.concepts, v1.items[k].concepts, `image ${k} as on /v1/moderate`);
  }
});

t.test('per-request policy and intervention ride as extra body fields', async (t) => {
  const body = { input: [{ type: 'image_url', image_url: { url: dataUrl(png) } }], intervene: { level: 'refuse', type: 'privacy' } } as unknown as OpenAI.ModerationCreateParams;
  const r = (await client.moderations.create(body)).results[0] as Result;
  t.equal(r.flagged, true);
  t.equal(r.categories['privacy' as keyof OpenAI.Moderation.Categories], true, 'the applied type is the flagged category');
  t.equal(r.psa.decision, 'refuse');
  t.match(r.psa.hint, /refuse/i);
  const strict = { input: 'hello', policy: { flag: { min_level: 'safe', threshold: 0.5 } } } as unknown as OpenAI.ModerationCreateParams;
  const s = (await client.moderations.create(strict)).results[0] as Result;
  t.equal(s.flagged, true, 'P(level >= safe) = 1 flags everything');
  checkResult(t, s, ['text'], 0);
  const scores = Object.values(s.category_scores as unknown as Record<string, number>);
  const safeP = s.psa.concepts.type.scores.safe!;
  t.ok(Math.abs(scores.reduce((a, b) => a + b, 0) + safeP - 1) < 1e-6, 'with min_level safe the scores are P(type), summing with P(safe) to 1');
});

t.test('models.list and models.retrieve', async (t) => {
  const models: (OpenAI.Model & { active?: boolean; provenance?: { status?: string } })[] = [];
  for await (const m of client.models.list()) models.push(m);
  const active = models.filter((m) => m.active);
  t.equal(active.length, 1);
  t.equal(active[0]!.object, 'model');
  t.equal(active[0]!.owned_by, 'psa-guard');
  t.ok(active[0]!.created > 1_600_000_000, 'created is Unix seconds');
  t.equal(active[0]!.provenance?.status, 'untrained');
  const one = (await client.models.retrieve(active[0]!.id)) as OpenAI.Model & { active?: boolean };
  t.equal(one.id, active[0]!.id);
  t.equal(one.active, true);
  t.ok((await client.models.retrieve('no-such-model').catch((e: unknown) => e)) instanceof OpenAI.NotFoundError, 'an unknown id is NotFoundError');
  const named = await client.moderations.create({ input: 'hi', model: active[0]!.id });
  t.equal(named.results.length, 1, 'the active model can be named by id');
  t.equal((await client.moderations.create({ input: 'hi', model: 'psa-tiny' })).model, 'psa-tiny', 'or by its manifest name');
});

t.test('errors: typed SDK errors carrying the service code', async (t) => {
  const wrong = new OpenAI({ apiKey: 'wrong-key-0123456789abcdef', baseURL, maxRetries: 0 });
  const denied = await wrong.moderations.create({ input: 'hi' }).catch((e: unknown) => e);
  t.ok(denied instanceof OpenAI.AuthenticationError, 'a wrong key is AuthenticationError');
  t.equal((denied as APIError).status, 401);
  t.equal((denied as APIError).code, 'PSA_UNAUTHORIZED');
  t.equal((denied as APIError).type, 'authentication_error');
  t.ok((denied as APIError).requestID, 'the request id reaches the SDK');
  const trainer = new OpenAI({ apiKey: TRAIN_ONLY, baseURL, maxRetries: 0 });
  const forbidden = await trainer.moderations.create({ input: 'hi' }).catch((e: unknown) => e);
  t.ok(forbidden instanceof OpenAI.PermissionDeniedError, 'a key without the infer scope is PermissionDeniedError');
  t.equal((forbidden as APIError).code, 'PSA_FORBIDDEN');
  const noModels = await trainer.models.list().catch((e: unknown) => e);
  t.ok(noModels instanceof OpenAI.PermissionDeniedError, 'models need the infer scope too');

  const cases: [string, OpenAI.ModerationCreateParams, new (...a: never[]) => Error, string, string | null][] = [
    ['unknown model', { input: 'hi', model: 'omni-moderation-latest' }, OpenAI.NotFoundError, 'PSA_MODEL_NOT_FOUND', 'model'],
    ['remote image', { input: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }, OpenAI.BadRequestError, 'PSA_REMOTE_IMAGE_REFUSED', null],
    ['not an image', { input: [{ type: 'image_url', image_url: { url: dataUrl(Buffer.from('plain text, no picture')) } }] }, OpenAI.BadRequestError, 'PSA_INVALID_IMAGE', null],
    ['too many inputs', { input: ['a', 'b', 'c', 'd', 'e'] }, OpenAI.BadRequestError, 'PSA_TOO_MANY_ITEMS', 'input'],
    ['unknown part type', { input: [{ type: 'input_audio', text: 'x' }] } as unknown as OpenAI.ModerationCreateParams, OpenAI.BadRequestError, 'PSA_BAD_REQUEST', 'input[0].type'],
    ['unknown label', { input: 'hi', intervene: { type: 'weapons' } } as unknown as OpenAI.ModerationCreateParams, OpenAI.BadRequestError, 'PSA_INVALID_LABEL', null],
    ['unknown field', { input: 'hi', colour: 'red' } as unknown as OpenAI.ModerationCreateParams, OpenAI.BadRequestError, 'PSA_BAD_REQUEST', 'colour'],
  ];
  for (const [name, body, cls, code, param] of cases) {
    const err = await client.moderations.create(body).catch((e: unknown) => e);
    t.ok(err instanceof cls, `${name}: ${cls.name} (${(err as Error).message})`);
    t.equal((err as APIError).code, code, `${name}: code`);
    if (param !== null) t.equal((err as APIError).param, param, `${name}: param`);
    t.ok(((err as APIError).error as { message?: string }).message!.length > 10, `${name}: a message`);
  }
  const raw = await app.inject({ method: 'POST', url: '/v1/moderations', headers: auth, payload: { input: 7 } });
  t.same(Object.keys(raw.json().error).sort(), ['code', 'details', 'message', 'param', 'type'], 'OpenAI error shape on the wire');
  const psaShape = await app.inject({ method: 'POST', url: '/v1/moderate', headers: auth, payload: {} });
  t.ok(psaShape.json().request_id, 'the rest of the API keeps its own error shape');
});

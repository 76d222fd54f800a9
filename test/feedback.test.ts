import t from 'tap';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { RequestRetention, retainedBytes, type RetainedRequest } from '../src/feedback/retention.ts';
import { DEFAULT_ANSWERS, type FeedbackRecord } from '../src/feedback/item.ts';
import { feedbackStats } from '../src/feedback/stats.ts';
import { b64, testApp } from './helpers/app.ts';
import { writeTinyDataset } from './helpers/dataset.ts';
import { gradientPng, noiseJpeg } from './helpers/images.ts';

// Request retention, POST/GET/DELETE /v1/feedback and POST /v1/feedback/dataset on the real app
// (tiny package, real files under a temporary DATA_DIR). Training on the result is in
// feedback-training.test.ts.
const root = await mkdtemp(join(tmpdir(), 'psa-feedback-'));
t.teardown(() => rm(root, { recursive: true, force: true }));

// Three apps, as production builds them: retention off, retention on, and keys with a 1 s retention.
const offDir = join(root, 'off');
const onDir = join(root, 'on');
const { app: off } = await testApp({ DATA_DIR: offDir });
t.teardown(() => off.close());
const { app: on } = await testApp({ DATA_DIR: onDir, FEEDBACK_RETENTION: 'on' });
t.teardown(() => on.close());
const [INFER, FEEDBACK, TRAIN] = ['infer-key-000000000001', 'feedback-key-0000000001', 'train-key-000000000001'];
const { app: keyed } = await testApp({ DATA_DIR: join(root, 'keyed'), API_KEYS: `${INFER}=infer,${FEEDBACK}=feedback,${TRAIN}=train`, FEEDBACK_RETENTION: 'on', FEEDBACK_RETENTION_TTL_S: '1' });
t.teardown(() => keyed.close());
const itemCount = async (app: typeof off) => (await app.inject('/v1/feedback')).json().items as number;

const judgement = { level: 'safe', type: 'safe', decision: 'allow', flagged: false } as const;
const request = (bytes: number, prompt = 'p'): RetainedRequest => ({ route: 'moderate', model: 'm', at: Date.now(), items: [{ image: Buffer.alloc(bytes, 1), prompt, judgement }] });
const colour = (background: string) =>
  sharp({ create: { width: 32, height: 32, channels: 3, background } })
    .png()
    .toBuffer();

t.test('retention: bounded by bytes, by requests and by age; images are copies', async (t) => {
  const mib = 1024 * 1024;
  const bytes = new RequestRetention({ maxBytes: mib, maxRequests: 100, ttlMs: 60_000 });
  for (const id of ['a', 'b', 'c']) bytes.keep(id, request(400 * 1024));
  t.equal(bytes.get('a'), undefined, 'the least recently kept went first when the bytes ran out');
  t.ok(bytes.get('b') && bytes.get('c'));
  t.ok(bytes.size.bytes <= mib, `held ${bytes.size.bytes} bytes, at most ${mib}`);
  t.equal(bytes.size.bytes, retainedBytes(request(400 * 1024)) * 2);
  bytes.keep('huge', request(2 * mib));
  t.equal(bytes.get('huge'), undefined, 'a request over the whole budget is not kept');
  t.ok(bytes.get('b') && bytes.get('c'), 'and does not flush the others');

  const count = new RequestRetention({ maxBytes: 64 * mib, maxRequests: 2, ttlMs: 60_000 });
  for (const id of ['a', 'b', 'c']) count.keep(id, request(10));
  t.same([count.get('a'), !!count.get('b'), !!count.get('c')], [undefined, true, true], 'at most maxRequests');

  const age = new RequestRetention({ maxBytes: 64 * mib, maxRequests: 10, ttlMs: 150 });
  age.keep('old', request(10));
  t.ok(age.get('old'));
  await new Promise((r) => setTimeout(r, 400));
  t.equal(age.get('old'), undefined, 'expired');
  t.equal(age.size.requests, 0, 'and dropped from memory, not only hidden');

  const original = Buffer.alloc(16, 7);
  const copies = new RequestRetention({ maxBytes: mib, maxRequests: 10, ttlMs: 60_000 });
  copies.keep('x', { ...request(0), items: [{ image: original, prompt: 'p', judgement }] });
  original.fill(0);
  t.equal(copies.get('x')!.items[0]!.image![0], 7, "what was kept does not change with the request's buffer");
});

t.test("stats: disagreement, direction and confusion are counted against the model's prediction", async (t) => {
  const record = (safe_type: number, safe_level: number, model: FeedbackRecord['model_judgement']): FeedbackRecord => ({
    id: 'fb-0000000000000000',
    image: null,
    prompt: 'p',
    safe_type,
    safe_level,
    reviewer: 'r',
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    history: [],
    source: model === null ? { kind: 'inline' } : { kind: 'request', request_id: 'x', route: 'moderate', item: 0, model: 'm', served_at: '2026-01-01T00:00:00.000Z' },
    model_judgement: model,
  });
  const stats = feedbackStats([
    record(6, 0, { level: 'refuse', type: 'illegal_risk', decision: 'refuse', flagged: true }), // both; the model was stricter
    record(1, 3, { level: 'careful', type: 'illegal_risk', decision: 'careful', flagged: false }), // level; more lenient
    record(4, 2, { level: 'caution', type: 'privacy', decision: 'caution', flagged: true }), // none
    record(5, 1, { level: 'careful', type: 'politics', decision: 'careful', flagged: false }), // type
    record(2, 3, null),
  ]);
  t.same(stats.disagreement, { none: 1, type: 1, level: 1, both: 1, not_judged: 1 });
  t.same(stats.level_direction, { model_stricter: 1, model_more_lenient: 1 });
  t.equal(stats.confusion.level.refuse.safe, 1);
  t.equal(stats.confusion.type.politics.misleading, 1);
  t.equal(stats.confusion.type.illegal_risk.illegal_risk, 1);
  t.same(stats.by_source, { request: 4, inline: 1 });
  t.equal(stats.by_level.refuse, 2);
  t.equal(stats.items, 5);
});

t.test('retention off: inline reviews work, a request_id says retention is off', async (t) => {
  const app = off;
  const moderated = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { prompt: 'How do I pick a lock?' } });
  const byId = await app.inject({ method: 'POST', url: '/v1/feedback', payload: { request_id: moderated.headers['x-request-id'], safe_type: 'illegal_risk', safe_level: 'caution' } });
  t.equal(byId.statusCode, 409);
  t.equal(byId.json().error.code, 'PSA_FEEDBACK_RETENTION_OFF');
  t.match(byId.json().error.message, /FEEDBACK_RETENTION is off.*inline/);
  const inline = await app.inject({ method: 'POST', url: '/v1/feedback', payload: { prompt: 'How do I pick a lock?', safe_type: 'illegal_risk', safe_level: 'caution' } });
  t.equal(inline.statusCode, 201, inline.body);
  t.match(inline.json(), { source: 'inline', model_judgement: null, disagreement: 'not_judged', safe_type: 'illegal_risk', safe_level: 'caution', has_image: false });
  const stats = (await app.inject('/v1/feedback')).json();
  t.match(stats, { items: 1, retention: { enabled: false, requests: 0 } });
});

t.test('retention on: moderation and chat requests are labelled by request id', async (t) => {
  const app = on;
  const dataDir = onDir;
  const empty = await app.inject({ method: 'POST', url: '/v1/feedback/dataset', payload: {} });
  t.equal(empty.statusCode, 422, 'no reviews yet: no dataset');
  t.equal(empty.json().error.code, 'PSA_FEEDBACK_EMPTY');
  const [red, blue] = [await colour('#d03030'), await colour('#3030d0')];
  const moderated = await app.inject({
    method: 'POST',
    url: '/v1/moderate',
    payload: {
      items: [
        { image: b64(red), prompt: 'what is this?' },
        { image: b64(blue), prompt: 'and this?' },
      ],
    },
  });
  t.equal(moderated.statusCode, 200, moderated.body);
  const requestId = moderated.headers['x-request-id'] as string;
  const served = moderated.json().items[1];
  const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/feedback', payload });

  const noItem = await post({ request_id: requestId, safe_type: 'privacy', safe_level: 'refuse' });
  t.equal(noItem.statusCode, 400);
  t.match(noItem.json().error.message, /had 2 items; say which one with "item" \(0-1\)/);
  t.match((await post({ request_id: requestId, item: 2, safe_type: 6, safe_level: 0 })).json().error, { code: 'PSA_BAD_REQUEST', message: /"item" is 2.*0-1/ });
  t.equal((await post({ request_id: requestId, image: b64(red), safe_type: 6, safe_level: 0 })).statusCode, 400, 'request_id and an inline input are exclusive');

  const created = await post({ request_id: requestId, item: 1, safe_type: 'privacy', safe_level: 'refuse', note: 'a private person' });
  t.equal(created.statusCode, 201, created.body);
  const item = created.json();
  t.match(item, { status: 'created', source: 'request', request_id: requestId, model: moderated.json().model, has_image: true, safe_type: 'privacy', safe_level: 'refuse', note: 'a private person', revisions: 0 });
  t.same(item.model_judgement, { level: served.concepts.level.label, type: served.concepts.type.label, decision: served.decision, flagged: served.flagged }, "the model's judgement is the one that was served");
  const expected = served.concepts.type.label === 'privacy' ? (served.concepts.level.label === 'refuse' ? 'none' : 'level') : served.concepts.level.label === 'refuse' ? 'type' : 'both';
  t.equal(item.disagreement, expected);

  const unknown = await post({ request_id: '3f1e0c1a-0000-4000-8000-000000000000', safe_type: 6, safe_level: 0 });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().error.code, 'PSA_FEEDBACK_REQUEST_NOT_FOUND');

  // Chat, native and OpenAI-style: the answer that was served is kept with the review.
  const chat = await app.inject({ method: 'POST', url: '/v1/chat', payload: { prompt: 'Tell me about the weather.', max_tokens: 4, seed: 1 } });
  t.equal(chat.statusCode, 200, chat.body);
  const chatReview = await post({ request_id: chat.headers['x-request-id'], safe_type: 'safe', safe_level: 'safe' });
  t.equal(chatReview.statusCode, 201, chatReview.body);
  t.equal(chatReview.json().model_judgement.decision, chat.json().decision);
  const completion = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { messages: [{ role: 'user', content: 'Write a poem about tea.' }], max_tokens: 3 } });
  t.equal(completion.statusCode, 200, completion.body);
  t.equal((await post({ request_id: completion.headers['x-request-id'], safe_type: 6, safe_level: 0 })).statusCode, 201, '/v1/chat/completions is retained');
  const moderations = await app.inject({ method: 'POST', url: '/v1/moderations', payload: { input: 'Is this allowed?' } });
  t.equal((await post({ request_id: moderations.headers['x-request-id'], safe_type: 'misleading', safe_level: 'careful' })).statusCode, 201, '/v1/moderations is retained');

  const stats = (await app.inject('/v1/feedback')).json();
  t.match(stats, { items: 4, by_source: { request: 4, inline: 0 }, retention: { enabled: true, requests: 4, max_requests: 10000, ttl_s: 3600 } });
  t.ok(stats.retention.bytes > red.length + blue.length, 'retention counts the images it holds');
  t.equal(stats.by_type.privacy, 1);
  t.equal(stats.by_type.safe, 2);
  t.equal(stats.by_level.refuse, 1);
  t.equal(
    Object.values(stats.disagreement as Record<string, number>).reduce((a, b) => a + b, 0),
    4,
  );
  t.equal(stats.confusion.level[served.concepts.level.label].refuse, 1, 'confusion[model level][reviewed level]');
  t.equal(stats.disagreement.not_judged, 0);

  const stored = await readdir(join(dataDir, 'feedback', 'items'));
  t.equal(stored.length, 4, 'one record per reviewed input');
  t.same(await readdir(join(dataDir, 'feedback', 'images')), [`${(await import('node:crypto')).createHash('sha256').update(blue).digest('hex')}.png`], 'images stored once, by content hash');
  const record = JSON.parse(await readFile(join(dataDir, 'feedback', 'items', stored.find((n) => n === `${item.id}.json`)!), 'utf8'));
  t.equal(record.prompt, 'and this?', 'the retained prompt is stored with the label');
});

t.test('retention by age through the service: an expired request id is 404', async (t) => {
  const moderated = await keyed.inject({ method: 'POST', url: '/v1/moderate', headers: { authorization: `Bearer ${INFER}` }, payload: { prompt: 'hello there' } });
  t.equal(moderated.statusCode, 200);
  await new Promise((r) => setTimeout(r, 1300));
  const res = await keyed.inject({ method: 'POST', url: '/v1/feedback', headers: { authorization: `Bearer ${FEEDBACK}` }, payload: { request_id: moderated.headers['x-request-id'], safe_type: 6, safe_level: 0 } });
  t.equal(res.statusCode, 404);
  t.equal(res.json().error.code, 'PSA_FEEDBACK_REQUEST_NOT_FOUND');
  t.match(res.json().error.message, /older than 1 s/);
});

t.test('labels and inputs are validated like a dataset line', async (t) => {
  const app = off;
  const before = await itemCount(app);
  const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/feedback', payload });
  const cases: [object, RegExp][] = [
    [{ prompt: 'x', safe_type: 9, safe_level: 0 }, /"safe_type" must be an integer 0-6 \(0=politics.*got 9/],
    [{ prompt: 'x', safe_type: 'dangerous', safe_level: 0 }, /"safe_type" must be an integer 0-6.*got "dangerous"/],
    [{ prompt: 'x', safe_type: 1, safe_level: -1 }, /"safe_level" must be an integer 0-3 \(0=safe, 1=careful, 2=caution, 3=refuse\); got -1/],
    [{ prompt: 'x', safe_type: 1, safe_level: 'severe' }, /"safe_level" must be.*got "severe"/],
    [{ image: b64(Buffer.from('not an image at all, just text')), safe_type: 1, safe_level: 3 }, /the image is not a readable image/],
    [{ prompt: 'look at <image> here', safe_type: 1, safe_level: 3 }, /contains <image> but the line has no "image"/],
  ];
  for (const [payload, message] of cases) {
    const res = await post(payload);
    t.equal(res.statusCode, 422, JSON.stringify(payload).slice(0, 80));
    t.equal(res.json().error.code, 'PSA_FEEDBACK_INVALID');
    t.match(res.json().error.message, message);
    t.ok(Array.isArray(res.json().error.details.problems));
  }
  const truncated = (await gradientPng()).subarray(0, 200);
  t.match((await post({ image: b64(truncated), safe_type: 1, safe_level: 3 })).json().error, { code: 'PSA_FEEDBACK_INVALID', message: /the image/ }, 'a truncated image is decoded and refused');
  t.equal((await post({ safe_type: 1, safe_level: 3 })).json().error.code, 'PSA_MISSING_IMAGE');
  t.equal((await post({ prompt: '   ', safe_type: 1, safe_level: 3 })).json().error.code, 'PSA_MISSING_IMAGE');
  t.equal((await post({ prompt: 'x', item: 0, safe_type: 1, safe_level: 3 })).statusCode, 400, '"item" needs request_id');
  t.equal((await post({ prompt: 'x', safe_type: 1 })).statusCode, 400, 'safe_level is required');
  t.equal((await post({ prompt: 'x', safe_type: 1, safe_level: 2, extra: true })).statusCode, 400);
  t.equal((await post({ prompt: 'x'.repeat(20001), safe_type: 1, safe_level: 2 })).json().error.code, 'PSA_PROMPT_TOO_LONG');
  t.equal((await post({ prompt: 'x', safe_type: 1, safe_level: 2, note: 'n'.repeat(2001) })).statusCode, 400);
  t.equal(await itemCount(app), before, 'nothing invalid was stored');
  t.same(await readdir(join(offDir, 'tmp')), [], 'no scratch left behind');
});

t.test('dedup: one item per input; the latest label wins, earlier ones count as revisions', async (t) => {
  const app = off;
  const dataDir = offDir;
  const before = await itemCount(app);
  const image = b64(await noiseJpeg());
  const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/feedback', payload: { image, prompt: 'what is it?', ...payload } });
  const first = (await post({ safe_type: 1, safe_level: 3 })).json();
  t.equal(first.status, 'created');
  const again = await post({ safe_type: 'illegal_risk', safe_level: 'refuse' });
  t.equal(again.statusCode, 200);
  t.match(again.json(), { id: first.id, status: 'unchanged', revisions: 0 }, 'the same input and label is one item (indices or labels alike)');
  const relabelled = (await post({ safe_type: 6, safe_level: 0, note: 'a harmless photo' })).json();
  t.match(relabelled, { id: first.id, status: 'updated', safe_type: 'safe', safe_level: 'safe', revisions: 1, note: 'a harmless photo' });
  t.match((await post({ safe_type: 6, safe_level: 0 })).json(), { status: 'unchanged', note: 'a harmless photo' }, 'the same label without a note keeps the note');
  const otherPrompt = (await post({ prompt: 'and now?', safe_type: 6, safe_level: 0 })).json();
  t.not(otherPrompt.id, first.id, 'another prompt is another input');
  t.equal(await itemCount(app), before + 2);
  t.equal((await readdir(join(dataDir, 'feedback', 'images'))).length, 1, 'the shared image is stored once');
  t.match((await app.inject(`/v1/feedback/${first.id}`)).json(), { id: first.id, safe_type: 'safe', revisions: 1 });

  t.same((await app.inject({ method: 'DELETE', url: `/v1/feedback/${otherPrompt.id}` })).json(), { id: otherPrompt.id, deleted: true });
  t.equal((await readdir(join(dataDir, 'feedback', 'images'))).length, 1, 'the image another item uses stays');
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/feedback/${first.id}` })).statusCode, 200);
  t.equal((await readdir(join(dataDir, 'feedback', 'images'))).length, 0, 'an image no item uses is removed');
  const gone = await app.inject({ method: 'DELETE', url: `/v1/feedback/${first.id}` });
  t.equal(gone.statusCode, 404);
  t.equal(gone.json().error.code, 'PSA_FEEDBACK_NOT_FOUND');
  t.equal((await app.inject('/v1/feedback/fb-nope')).json().error.code, 'PSA_FEEDBACK_NOT_FOUND');
});

t.test('POST /v1/feedback/dataset: a stored dataset of the reviews, alone or with a base', async (t) => {
  const app = on;
  const dataDir = onDir;
  const build = (payload: object = {}) => app.inject({ method: 'POST', url: '/v1/feedback/dataset', payload });
  const before = await itemCount(app);

  const moderated = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(await colour('#30d030')), prompt: 'is this fine?' } });
  const judged = moderated.json().items[0];
  // The reviewer disagrees on purpose: a level other than the model's.
  const level = judged.concepts.level.index === 3 ? 0 : 3;
  await app.inject({ method: 'POST', url: '/v1/feedback', payload: { request_id: moderated.headers['x-request-id'], safe_type: judged.concepts.type.label, safe_level: level } });
  const chat = await app.inject({ method: 'POST', url: '/v1/chat', payload: { prompt: 'Say something nice.', max_tokens: 4, seed: 2 } });
  const chatJudged = chat.json();
  await app.inject({ method: 'POST', url: '/v1/feedback', payload: { request_id: chat.headers['x-request-id'], safe_type: chatJudged.concepts.type.label, safe_level: chatJudged.concepts.level.label } });
  await app.inject({ method: 'POST', url: '/v1/feedback', payload: { prompt: 'How do I hotwire a car?', safe_type: 'illegal_risk', safe_level: 'refuse', answer: 'I will not help with stealing a car.' } });

  const stats = (await app.inject('/v1/feedback')).json();
  const items = before + 3;
  t.equal(stats.items, items);
  const res = await build();
  t.equal(res.statusCode, 201, res.body);
  const ds = res.json();
  t.match(ds, { id: /^ds-[0-9a-f]{16}$/, items, base: null, base_examples: 0, val_source: 'feedback', splits: { train: { count: items }, val: { count: items } } });
  t.equal((await build()).json().id, ds.id, 'the same reviews make the same dataset');
  t.equal((await app.inject(`/v1/datasets/${ds.id}`)).json().splits.train.by_level.refuse >= 1, true, 'a regular dataset in the store');
  const stored = await app.datasets.get(ds.id);
  const lines = (await readFile(join(stored.path, 'train.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const byPrompt = (p: string) => lines.find((l) => l.conversations[0].value.endsWith(p));
  t.match(byPrompt('is this fine?'), {
    image: /^feedback-images\/[0-9a-f]{64}\.png$/,
    safe_level: level,
    conversations: [{ value: '<image>\nis this fine?' }, { value: level === 3 ? DEFAULT_ANSWERS.refuse : DEFAULT_ANSWERS.safe }],
  });
  t.equal(byPrompt('How do I hotwire a car?').conversations[1].value, 'I will not help with stealing a car.', "the reviewer's answer");
  const chatLine = byPrompt('Say something nice.');
  if (chatJudged.decision !== 'refuse' && chatJudged.concepts.level.index <= 1 && chatJudged.answer.trim() !== '')
    t.equal(chatLine.conversations[1].value, chatJudged.answer, 'an allowed chat keeps the answer that was served');
  else t.equal(chatLine.conversations[1].value, DEFAULT_ANSWERS[chatJudged.concepts.level.label as keyof typeof DEFAULT_ANSWERS]);

  const disagreeing = await build({ only_disagreements: true, answers: { refuse: 'No.' } });
  t.equal(disagreeing.statusCode, 201, disagreeing.body);
  const { type, level: lvl, both } = stats.disagreement;
  t.ok(type + lvl + both >= 1, 'at least the item made to disagree');
  t.equal(disagreeing.json().items, type + lvl + both, 'only items that disagree with the model (inline ones were never judged)');

  await writeTinyDataset(join(dataDir, 'shared', 'colours'));
  const base = (await app.inject({ method: 'POST', url: '/v1/datasets', payload: { path: 'shared/colours' } })).json();
  const merged = await build({ base: base.id });
  t.equal(merged.statusCode, 201, merged.body);
  t.match(merged.json(), { items, base: base.id, base_examples: 24, val_source: 'base', splits: { train: { count: 24 + items }, val: { count: 7 } } });
  t.match(merged.json().source, new RegExp(`${items} reviewed item\\(s\\) \\+ ${base.id}`));
  const missing = await build({ base: 'ds-0000000000000000' });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().error.code, 'PSA_DATASET_NOT_FOUND');
  t.equal((await build({ base: 'nope' })).statusCode, 400);
});

t.test('scopes: feedback keys review, train keys build datasets', async (t) => {
  const app = keyed;
  const as = (key: string, method: 'GET' | 'POST', url: string, payload?: object) => app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload && { payload }) });
  const review = { prompt: 'a question', safe_type: 6, safe_level: 0 };
  t.equal((await as(INFER, 'POST', '/v1/feedback', review)).statusCode, 403);
  t.equal((await as(FEEDBACK, 'POST', '/v1/feedback', review)).statusCode, 201);
  t.equal((await as(FEEDBACK, 'GET', '/v1/feedback')).json().items, 1);
  t.equal((await as(TRAIN, 'GET', '/v1/feedback')).statusCode, 403);
  t.equal((await as(FEEDBACK, 'POST', '/v1/feedback/dataset', {})).statusCode, 403);
  t.equal((await as(TRAIN, 'POST', '/v1/feedback/dataset', {})).statusCode, 201);
});

t.test('OpenAPI: the feedback routes with their schemas', async (t) => {
  const doc = (await off.inject('/openapi.json')).json();
  const body = doc.paths['/v1/feedback'].post.requestBody.content['application/json'].schema;
  t.match(Object.keys(body.properties).sort(), ['answer', 'image', 'item', 'note', 'prompt', 'request_id', 'safe_level', 'safe_type']);
  t.ok(doc.paths['/v1/feedback'].post.responses['201'].content['application/json'].schema.properties.disagreement);
  t.ok(doc.paths['/v1/feedback'].get.responses['200'].content['application/json'].schema.properties.confusion);
  t.ok(doc.paths['/v1/feedback/dataset'].post.requestBody.content['application/json'].schema.properties.base);
  t.ok(doc.paths['/v1/feedback/{id}'].delete);
  t.ok(doc.tags.some((tag: { name: string }) => tag.name === 'feedback'));
});

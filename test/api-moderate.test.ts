import t from 'tap';
import sharp from 'sharp';
import { b64, multipartBody, testApp } from './helpers/app.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';

const { app } = await testApp({ MAX_ITEMS: '4', MAX_IMAGE_BYTES: '200000', MAX_IMAGE_PIXELS: '1000000', MAX_PROMPT_CHARS: '500' });
t.teardown(() => app.close());
const png = await gradientPng();
const jpeg = await noiseJpeg();
const webp = await shapesWebp();

const moderate = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/moderate', payload: payload as object });

t.test('one image: concepts with every class, decision, flag, hint, timings', async (t) => {
  const res = await moderate({ image: b64(png), prompt: 'Is this fine?' });
  t.equal(res.statusCode, 200);
  t.ok(res.headers['x-request-id']);
  const body = res.json();
  t.equal(body.model, 'psa-tiny');
  t.equal(body.items.length, 1);
  const item = body.items[0];
  t.same(Object.keys(item.concepts.level.scores), ['safe', 'careful', 'caution', 'refuse']);
  t.same(Object.keys(item.concepts.type.scores), ['politics', 'illegal_risk', 'insults_bullying', 'fairness', 'privacy', 'misleading', 'safe']);
  const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  t.ok(Math.abs(sum(item.concepts.level.scores) - 1) < 1e-6);
  t.ok(Math.abs(sum(item.concepts.type.scores) - 1) < 1e-6);
  t.equal(item.applied.level, item.concepts.level.label);
  t.equal(item.applied.intervened, false);
  t.ok(['allow', 'careful', 'caution', 'refuse'].includes(item.decision));
  t.type(item.flagged, 'boolean');
  t.ok(body.timings.total_ms > 0);
  const stages = body.timings.stages_ms;
  t.same(Object.keys(stages).sort(), ['decode', 'head', 'ocr_detect', 'ocr_recognize', 'parse', 'policy', 'query', 'queue', 'vision']);
  for (const name of ['parse', 'decode', 'query', 'vision', 'head', 'policy']) t.ok(stages[name] > 0, `${name} timed (${stages[name]} ms)`);
  t.equal(stages.ocr_detect, 0, 'a package without OCR spends nothing on it');
  t.ok(stages.queue >= 0);
  t.ok(stages.vision + stages.head <= body.timings.pass1_ms + 0.5, 'pass 1 stages fit in pass 1');
  t.ok(stages.decode <= body.timings.preprocess_ms + 0.5, 'decode fits in preprocessing');
});

t.test('a data URL gives the same concepts as plain base64', async (t) => {
  const a = (await moderate({ image: b64(png) })).json();
  const b = (await moderate({ image: `data:image/png;base64,${b64(png)}` })).json();
  t.same(a.items[0].concepts, b.items[0].concepts);
});

t.test('a batch of N gives the same concepts as N single calls', async (t) => {
  const images = [png, jpeg, webp];
  const batch = (await moderate({ items: images.map((i, k) => ({ image: b64(i), prompt: `prompt ${k}` })) })).json();
  t.equal(batch.items.length, 3);
  for (const [k, img] of images.entries()) {
    const single = (await moderate({ image: b64(img), prompt: `prompt ${k}` })).json();
    for (const [label, p] of Object.entries(single.items[0].concepts.type.scores)) t.ok(Math.abs((p as number) - batch.items[k].concepts.type.scores[label]) < 1e-5, `${k} ${label}`);
    t.equal(batch.items[k].index, k);
  }
});

t.test('concurrent requests are batched together', async (t) => {
  const res = await Promise.all([png, jpeg, webp, png].map((img) => moderate({ image: b64(img) })));
  t.ok(res.every((r) => r.statusCode === 200));
  t.ok(Math.max(...res.map((r) => r.json().timings.batch_size)) > 1, 'at least one batch held several requests');
});

t.test('multipart gives the same concepts as JSON', async (t) => {
  const form = multipartBody([
    { name: 'image', value: png, filename: 'a.png', type: 'image/png' },
    { name: 'image', value: jpeg, filename: 'b.jpg', type: 'image/jpeg' },
    { name: 'prompt', value: 'Is this fine?' },
  ]);
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: form.body, headers: { 'content-type': form.contentType } });
  t.equal(res.statusCode, 200, res.body);
  const json = (
    await moderate({
      items: [
        { image: b64(png), prompt: 'Is this fine?' },
        { image: b64(jpeg), prompt: 'Is this fine?' },
      ],
    })
  ).json();
  const multi = res.json();
  for (const k of [0, 1]) {
    for (const [label, p] of Object.entries(json.items[k].concepts.level.scores)) t.ok(Math.abs((p as number) - multi.items[k].concepts.level.scores[label]) < 1e-6);
  }
});

t.test('text-only items: the prompt over the stand-in image, said so per item, no OCR text', async (t) => {
  // The stand-in is a uniform mid-grey image; any uniform 128-grey picture preprocesses to it.
  const grey = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .png()
    .toBuffer();
  const prompt = "How do I pick the lock on my neighbour's door?";
  const res = await moderate({ prompt });
  t.equal(res.statusCode, 200, res.body);
  const item = res.json().items[0];
  t.equal(item.has_image, false);
  t.notOk('image_text' in item, 'no OCR for a text-only item');
  const overGrey = (await moderate({ image: b64(grey), prompt })).json().items[0];
  t.equal(overGrey.has_image, true);
  for (const [label, p] of Object.entries(item.concepts.level.scores)) t.ok(Math.abs((p as number) - overGrey.concepts.level.scores[label]) < 1e-6, `level ${label} as over a grey image`);
  for (const [label, p] of Object.entries(item.concepts.type.scores)) t.ok(Math.abs((p as number) - overGrey.concepts.type.scores[label]) < 1e-6, `type ${label} as over a grey image`);
  const other = (await moderate({ prompt: 'What a lovely sunny day.' })).json().items[0];
  t.not(JSON.stringify(other.concepts), JSON.stringify(item.concepts), 'the prompt decides a text-only item');
  t.equal(item.applied.level, item.concepts.level.label);

  const mixed = await moderate({ items: [{ image: b64(png), prompt: 'Is this fine?' }, { prompt }] });
  t.equal(mixed.statusCode, 200, mixed.body);
  const [withImage, textOnly] = mixed.json().items;
  t.same([withImage.has_image, textOnly.has_image], [true, false]);
  t.same(textOnly.concepts.level.label, item.concepts.level.label);
  for (const [label, p] of Object.entries(item.concepts.type.scores)) t.ok(Math.abs((p as number) - textOnly.concepts.type.scores[label]) < 1e-5, `batched text-only ${label}`);
  const single = (await moderate({ image: b64(png), prompt: 'Is this fine?' })).json().items[0];
  for (const [label, p] of Object.entries(single.concepts.type.scores)) t.ok(Math.abs((p as number) - withImage.concepts.type.scores[label]) < 1e-5, `batched image item ${label}`);
  t.equal(single.has_image, true);

  const form = multipartBody([
    { name: 'prompt', value: prompt },
    { name: 'prompt', value: 'What a lovely sunny day.' },
  ]);
  const multi = await app.inject({ method: 'POST', url: '/v1/moderate', payload: form.body, headers: { 'content-type': form.contentType } });
  t.equal(multi.statusCode, 200, multi.body);
  const items = multi.json().items;
  t.same(
    items.map((i: { has_image: boolean }) => i.has_image),
    [false, false],
    'a form without files: one text-only item per prompt field',
  );
  for (const [k, want] of [item, other].entries()) {
    for (const [label, p] of Object.entries(want.concepts.level.scores)) t.ok(Math.abs((p as number) - items[k].concepts.level.scores[label]) < 1e-5, `multipart ${k} ${label}`);
  }
});

t.test('policy overrides and interventions', async (t) => {
  const base = (await moderate({ image: b64(png), intervene: { level: 'refuse', type: 'privacy' } })).json().items[0];
  t.equal(base.applied.level, 'refuse');
  t.equal(base.applied.type, 'privacy');
  t.equal(base.applied.intervened, true);
  t.equal(base.decision, 'refuse');
  t.equal(base.flagged, true);
  t.match(base.hint, /refuse/i);
  t.not(base.concepts.level.label === 'refuse' && base.concepts.type.label === 'privacy', true, 'the prediction is still reported');
  const softened = (await moderate({ image: b64(png), intervene: { level: 3, type: 'privacy' }, policy: { decisions: { privacy: { refuse: 'caution' } } } })).json().items[0];
  t.equal(softened.decision, 'caution');
  t.match(softened.hint, /may involve/);
  const strict = (await moderate({ image: b64(png), policy: { flag: { min_level: 'safe', threshold: 0.5 } } })).json().items[0];
  t.equal(strict.flagged, true, 'P(level >= safe) = 1 flags everything');
  const lax = (await moderate({ image: b64(png), policy: { flag: { threshold: 1 } }, intervene: { level: 'careful' } })).json().items[0];
  t.equal(lax.flagged, false);
  const safeType = (await moderate({ image: b64(png), intervene: { level: 'refuse', type: 'safe' } })).json().items[0];
  t.equal(safeType.hint, null, 'type safe adds no hint');
});

t.test('bad input gets a 4xx with a stable code and a message', async (t) => {
  const tinyPixels = await sharp({ create: { width: 1200, height: 1000, channels: 3, background: '#808080' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  const big = Buffer.alloc(250_000, 7);
  const cases: [string, () => Promise<{ statusCode: number; json: () => { error: { code: string; message: string } } }>, number, string][] = [
    ['malformed JSON', () => app.inject({ method: 'POST', url: '/v1/moderate', payload: '{"image": ', headers: { 'content-type': 'application/json' } }), 400, 'PSA_MALFORMED_JSON'],
    ['neither image nor prompt', () => moderate({}), 400, 'PSA_MISSING_IMAGE'],
    ['text-only with a blank prompt', () => moderate({ prompt: '  \n ' }), 400, 'PSA_MISSING_IMAGE'],
    ['an item with neither image nor prompt', () => moderate({ items: [{ prompt: 'fine' }, {}] }), 400, 'PSA_MISSING_IMAGE'],
    ['text-only prompt too long', () => moderate({ prompt: 'x'.repeat(501) }), 400, 'PSA_BAD_REQUEST'],
    ['empty image', () => moderate({ image: '' }), 400, 'PSA_EMPTY_IMAGE'],
    ['not an image', () => moderate({ image: b64(Buffer.from('this is plain text, not a picture')) }), 400, 'PSA_INVALID_IMAGE'],
    ['truncated image', () => moderate({ image: b64(png.subarray(0, Math.floor(png.length / 2))) }), 400, 'PSA_INVALID_IMAGE'],
    ['not base64', () => moderate({ image: '***not base64***' }), 400, 'PSA_INVALID_IMAGE'],
    ['too many pixels', () => moderate({ image: b64(tinyPixels) }), 413, 'PSA_IMAGE_TOO_LARGE'],
    ['too many bytes', () => moderate({ image: b64(big) }), 413, 'PSA_IMAGE_TOO_LARGE'],
    ['unsupported content type', () => app.inject({ method: 'POST', url: '/v1/moderate', payload: 'image=abc', headers: { 'content-type': 'text/plain' } }), 415, 'PSA_UNSUPPORTED_MEDIA_TYPE'],
    ['too many items', () => moderate({ items: Array.from({ length: 5 }, () => ({ image: b64(png) })) }), 400, 'PSA_TOO_MANY_ITEMS'],
    ['image and items together', () => moderate({ image: b64(png), items: [{ image: b64(png) }] }), 400, 'PSA_BAD_REQUEST'],
    ['unknown field', () => moderate({ image: b64(png), colour: 'red' }), 400, 'PSA_BAD_REQUEST'],
    ['prompt too long', () => moderate({ image: b64(png), prompt: 'x'.repeat(501) }), 400, 'PSA_BAD_REQUEST'],
    ['unknown policy label', () => moderate({ image: b64(png), policy: { decisions: { weapons: { refuse: 'allow' } } } }), 400, 'PSA_INVALID_LABEL'],
    ['unknown policy decision', () => moderate({ image: b64(png), policy: { decisions: { default: { refuse: 'shrug' } } } }), 400, 'PSA_INVALID_LABEL'],
    ['unknown intervention label', () => moderate({ image: b64(png), intervene: { type: 'weapons' } }), 400, 'PSA_INVALID_LABEL'],
    ['out-of-range intervention index', () => moderate({ image: b64(png), intervene: { level: 9 } }), 400, 'PSA_INVALID_LABEL'],
  ];
  for (const [name, send, status, code] of cases) {
    const res = await send();
    t.equal(res.statusCode, status, `${name}: status`);
    const body = res.json();
    t.equal(body.error?.code, code, `${name}: code`);
    t.ok(body.error?.message?.length > 10, `${name}: a message (${body.error?.message})`);
    t.notMatch(JSON.stringify(body), /at .*\.ts:\d+/, `${name}: no stack trace`);
  }
  const multipartCases: [string, { name: string; value: string | Buffer; filename?: string }[], number, string][] = [
    ['multipart without image or prompt', [{ name: 'policy', value: '{}' }], 400, 'PSA_MISSING_IMAGE'],
    [
      'multipart text-only with an empty prompt',
      [
        { name: 'prompt', value: 'fine' },
        { name: 'prompt', value: '' },
      ],
      400,
      'PSA_MISSING_IMAGE',
    ],
    ['multipart too many prompts', Array.from({ length: 5 }, () => ({ name: 'prompt', value: 'hi' })), 400, 'PSA_TOO_MANY_ITEMS'],
    ['multipart too many files', Array.from({ length: 5 }, () => ({ name: 'image', value: png, filename: 'x.png' })), 400, 'PSA_TOO_MANY_ITEMS'],
    ['multipart file too large', [{ name: 'image', value: big, filename: 'big.png' }], 413, 'PSA_PAYLOAD_TOO_LARGE'],
    [
      'multipart bad policy JSON',
      [
        { name: 'image', value: png, filename: 'a.png' },
        { name: 'policy', value: '{nope' },
      ],
      400,
      'PSA_BAD_REQUEST',
    ],
    [
      'multipart unknown intervention',
      [
        { name: 'image', value: png, filename: 'a.png' },
        { name: 'intervene', value: '{"level":"extreme"}' },
      ],
      400,
      'PSA_INVALID_LABEL',
    ],
  ];
  for (const [name, parts, status, code] of multipartCases) {
    const form = multipartBody(parts);
    const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: form.body, headers: { 'content-type': form.contentType } });
    t.equal(res.statusCode, status, `${name}: status`);
    t.equal(res.json().error?.code, code, `${name}: code (${res.json().error?.message})`);
  }
  const after = await moderate({ image: b64(png) });
  t.equal(after.statusCode, 200, 'the service still answers after all of that');
});

t.test('unknown routes answer 404 with a code', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/v1/nothing' });
  t.equal(res.statusCode, 404);
  t.equal(res.json().error.code, 'PSA_NOT_FOUND');
});

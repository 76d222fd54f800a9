import t from 'tap';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import sharp from 'sharp';
import { b64, multipartBody, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

// Logs are captured to see the server's side of a client disconnect.
const logLines: { msg?: string; completion?: number }[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
    done();
  },
});
const { app } = await testApp({ MAX_NEW_TOKENS: '400', MAX_PROMPT_CHARS: '5000' }, { level: 'info', stream: sink });
t.teardown(() => app.close());
const png = await gradientPng();
const dataUrl = `data:image/png;base64,${b64(png)}`;
const chat = (payload: object) => app.inject({ method: 'POST', url: '/v1/chat', payload });

t.test('image + prompt: answer, concepts, decision, usage, timings', async (t) => {
  const res = await chat({ image: b64(png), prompt: 'What is this?', max_tokens: 6, temperature: 0 });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.type(body.answer, 'string');
  t.equal(body.usage.completion_tokens <= 6, true);
  t.ok(body.usage.prompt_tokens > 20);
  t.ok(['eos', 'length', 'stop'].includes(body.finish_reason));
  t.equal(Object.keys(body.concepts.type.scores).length, 7);
  t.equal(body.refused, body.decision === 'refuse');
  t.ok(body.timings.pass2_ms > 0);
  t.match(body.id, /^chat-/);
});

t.test('OpenAI-style messages and multipart give the same answer as image + prompt', async (t) => {
  const plain = (await chat({ image: b64(png), prompt: 'Describe it.', max_tokens: 6, temperature: 0 })).json();
  const messages = (
    await chat({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: dataUrl } },
            { type: 'text', text: 'Describe it.' },
          ],
        },
      ],
      max_tokens: 6,
      temperature: 0,
    })
  ).json();
  t.equal(messages.answer, plain.answer);
  t.same(messages.concepts, plain.concepts);
  const form = multipartBody([
    { name: 'image', value: png, filename: 'a.png', type: 'image/png' },
    { name: 'prompt', value: 'Describe it.' },
    { name: 'options', value: JSON.stringify({ max_tokens: 6, temperature: 0 }) },
  ]);
  const multi = await app.inject({ method: 'POST', url: '/v1/chat', payload: form.body, headers: { 'content-type': form.contentType } });
  t.equal(multi.statusCode, 200, multi.body);
  t.equal(multi.json().answer, plain.answer);
});

t.test('text-only chat: both passes over the stand-in image, from prompt, messages or a form', async (t) => {
  // The stand-in is a uniform mid-grey image; any uniform 128-grey picture preprocesses to it.
  const grey = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .png()
    .toBuffer();
  const res = await chat({ prompt: 'Write a haiku about rain.', max_tokens: 6, temperature: 0 });
  t.equal(res.statusCode, 200, res.body);
  const textOnly = res.json();
  t.equal(textOnly.has_image, false);
  t.ok(textOnly.timings.pass2_ms > 0, 'pass 2 ran');
  const overGrey = (await chat({ image: b64(grey), prompt: 'Write a haiku about rain.', max_tokens: 6, temperature: 0 })).json();
  t.equal(overGrey.has_image, true);
  t.equal(textOnly.answer, overGrey.answer, 'pass 2 saw the stand-in image');
  t.equal(textOnly.usage.prompt_tokens, overGrey.usage.prompt_tokens, 'the same prompt, image rows included');
  for (const [label, p] of Object.entries(textOnly.concepts.type.scores)) t.ok(Math.abs((p as number) - overGrey.concepts.type.scores[label]) < 1e-6, `pass 1 ${label}`);

  const asString = (
    await chat({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Write a haiku about rain.' },
      ],
      max_tokens: 6,
      temperature: 0,
    })
  ).json();
  t.equal(asString.has_image, false);
  t.equal(asString.answer, textOnly.answer, 'OpenAI-style messages without an image_url part');
  const asParts = (await chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'Write a haiku about rain.' }] }], max_tokens: 6, temperature: 0 })).json();
  t.equal(asParts.answer, textOnly.answer);
  const form = multipartBody([
    { name: 'prompt', value: 'Write a haiku about rain.' },
    { name: 'options', value: JSON.stringify({ max_tokens: 6, temperature: 0 }) },
  ]);
  const multi = await app.inject({ method: 'POST', url: '/v1/chat', payload: form.body, headers: { 'content-type': form.contentType } });
  t.equal(multi.statusCode, 200, multi.body);
  t.equal(multi.json().has_image, false);
  t.equal(multi.json().answer, textOnly.answer, 'multipart without a file');
  const refused = (await chat({ prompt: 'Tell me', intervene: { level: 'refuse', type: 'privacy' }, policy: { refusal: { mode: 'message', message: 'No.' } } })).json();
  t.same([refused.has_image, refused.answer, refused.finish_reason], [false, 'No.', 'refused'], 'the policy applies to text-only requests as to others');
});

t.test('a seed makes sampling repeatable through the API', async (t) => {
  const a = (await chat({ image: b64(png), prompt: 'Hi', max_tokens: 8, temperature: 1, seed: 5 })).json();
  const b = (await chat({ image: b64(png), prompt: 'Hi', max_tokens: 8, temperature: 1, seed: 5 })).json();
  t.equal(a.answer, b.answer);
});

t.test('intervention to refuse: refused, with the refusal hint; message mode answers without generating', async (t) => {
  const res = (await chat({ image: b64(png), prompt: 'Tell me', max_tokens: 4, intervene: { level: 'refuse', type: 'illegal_risk' } })).json();
  t.equal(res.refused, true);
  t.equal(res.decision, 'refuse');
  t.match(res.hint, /refuse/i);
  t.equal(res.applied.intervened, true);
  t.ok(res.usage.prompt_tokens > (await chat({ image: b64(png), prompt: 'Tell me', max_tokens: 4, intervene: { level: 'safe' } })).json().usage.prompt_tokens, 'the hint lengthens the prompt');
  const templated = (await chat({ image: b64(png), prompt: 'Tell me', intervene: { level: 'refuse', type: 'privacy' }, policy: { refusal: { mode: 'message', message: 'No, sorry.' } } })).json();
  t.equal(templated.answer, 'No, sorry.');
  t.equal(templated.finish_reason, 'refused');
  t.equal(templated.usage.completion_tokens, 0);
});

t.test('bad chat input', async (t) => {
  const cases: [string, object, number, string][] = [
    ['neither image nor prompt', {}, 400, 'PSA_MISSING_IMAGE'],
    ['text-only with a blank prompt', { prompt: '   ' }, 400, 'PSA_MISSING_IMAGE'],
    ['messages with no image and no text', { messages: [{ role: 'user', content: [] }] }, 400, 'PSA_MISSING_IMAGE'],
    ['text-only prompt over the token limit', { prompt: 'many words '.repeat(400) }, 400, 'PSA_PROMPT_TOO_LONG'],
    ['temperature out of range', { image: b64(png), temperature: 9 }, 400, 'PSA_INVALID_GENERATION_OPTION'],
    ['top_p zero', { image: b64(png), top_p: 0 }, 400, 'PSA_INVALID_GENERATION_OPTION'],
    ['negative seed', { image: b64(png), seed: -1 }, 400, 'PSA_INVALID_GENERATION_OPTION'],
    ['max_tokens over the server limit', { image: b64(png), max_tokens: 401 }, 400, 'PSA_INVALID_GENERATION_OPTION'],
    ['prompt over the token limit', { image: b64(png), prompt: 'many words '.repeat(400) }, 400, 'PSA_PROMPT_TOO_LONG'],
    ['remote image URL', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }, 400, 'PSA_REMOTE_IMAGE_REFUSED'],
    [
      'two images',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: dataUrl },
              { type: 'image_url', image_url: dataUrl },
            ],
          },
        ],
      },
      400,
      'PSA_TOO_MANY_ITEMS',
    ],
    ['messages and image', { image: b64(png), messages: [{ role: 'user', content: 'hi' }] }, 400, 'PSA_BAD_REQUEST'],
    ['unknown intervention', { image: b64(png), intervene: { level: 'panic' } }, 400, 'PSA_INVALID_LABEL'],
    ['not an image', { image: b64(Buffer.from('nope nope nope')) }, 400, 'PSA_INVALID_IMAGE'],
  ];
  for (const [name, payload, status, code] of cases) {
    const res = await chat(payload);
    t.equal(res.statusCode, status, `${name}: status`);
    t.equal(res.json().error?.code, code, `${name}: code (${res.json().error?.message})`);
  }
});

t.test('streaming over a real connection: concepts, deltas, done', async (t) => {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: b64(png), prompt: 'Describe it.', max_tokens: 6, temperature: 0, stream: true }),
  });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/event-stream/);
  const text = await res.text();
  const events = text
    .trim()
    .split('\n\n')
    .map((block) => {
      const [eventLine, dataLine] = block.split('\n');
      return { event: eventLine!.slice('event: '.length), data: JSON.parse(dataLine!.slice('data: '.length)) };
    });
  t.equal(events[0]!.event, 'concepts');
  t.equal(events[0]!.data.has_image, true);
  t.equal(events.at(-1)!.event, 'done');
  const deltas = events
    .filter((e) => e.event === 'delta')
    .map((e) => e.data.text)
    .join('');
  const plain = (await chat({ image: b64(png), prompt: 'Describe it.', max_tokens: 6, temperature: 0 })).json();
  t.equal(deltas, plain.answer, 'streamed text equals the non-streamed answer');
  t.same(events[0]!.data.concepts, plain.concepts);
  t.equal(events.at(-1)!.data.usage.completion_tokens, plain.usage.completion_tokens);

  t.test('a client that disconnects cancels generation', async (t) => {
    const controller = new AbortController();
    const stream = await fetch(`http://127.0.0.1:${port}/v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: b64(png), prompt: 'Go on and on.', max_tokens: 400, temperature: 1, seed: 1, stream: true }),
      signal: controller.signal,
    });
    const reader = stream.body!.getReader();
    let seen = '';
    while (!seen.includes('event: delta')) seen += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const deadline = Date.now() + 10_000;
    while (!logLines.some((l) => l.msg === 'chat cancelled by the client') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const cancelled = logLines.find((l) => l.msg === 'chat cancelled by the client');
    t.ok(cancelled, 'the server logged the cancellation');
    t.ok((cancelled?.completion ?? 400) < 400, `generation stopped early (${cancelled?.completion} of 400 tokens)`);
    const after = await chat({ image: b64(png), prompt: 'still there?', max_tokens: 2 });
    t.equal(after.statusCode, 200, 'the worker is free again');
  });
});

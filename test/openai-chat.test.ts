import t from 'tap';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import OpenAI, { APIError } from 'openai';
import { b64, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

// Logs are captured to see the server's side of a cancelled stream.
const logLines: { msg?: string; completion?: number }[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
    done();
  },
});
const KEY = 'infer-key-0123456789abcdef';
const { app } = await testApp({ API_KEYS: `${KEY}=infer`, MAX_NEW_TOKENS: '400' }, { level: 'info', stream: sink });
t.teardown(() => app.close());
await app.listen({ port: 0, host: '127.0.0.1' });
const baseURL = (a = app) => `http://127.0.0.1:${(a.server.address() as AddressInfo).port}/v1`;
const client = new OpenAI({ apiKey: KEY, baseURL: baseURL(), maxRetries: 0 });
const png = await gradientPng();
const dataUrl = `data:image/png;base64,${b64(png)}`;
const auth = { authorization: `Bearer ${KEY}` };

type Psa = { concepts: { level: { scores: Record<string, number> }; type: { scores: Record<string, number> } }; decision: string; refused: boolean; hint: string | null; timings?: { pass2_ms: number } };
type Completion = OpenAI.ChatCompletion & { psa: Psa };
type Chunk = OpenAI.ChatCompletionChunk & { psa?: Psa };

const userTurn = (text: string, image = true): OpenAI.ChatCompletionMessageParam[] => [
  { role: 'user', content: [...(image ? [{ type: 'image_url' as const, image_url: { url: dataUrl } }] : []), { type: 'text' as const, text }] },
];
const create = (body: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> & Record<string, unknown>) =>
  client.chat.completions.create({ model: 'psa-tiny', messages: userTurn('Describe it.'), max_tokens: 6, temperature: 0, ...body } as OpenAI.ChatCompletionCreateParamsNonStreaming) as unknown as Promise<Completion>;

t.test('chat.completions.create: a chat.completion with the answer, usage and psa', async (t) => {
  const res = await create({});
  t.equal(res.object, 'chat.completion');
  t.match(res.id, /^chatcmpl-/);
  t.equal(res.model, 'psa-tiny');
  t.ok(Math.abs(res.created - Date.now() / 1000) < 60, 'created is Unix seconds');
  t.equal(res.choices.length, 1);
  const choice = res.choices[0]!;
  t.equal(choice.message.role, 'assistant');
  t.type(choice.message.content, 'string');
  t.equal(choice.message.refusal, null);
  t.ok(['stop', 'length'].includes(choice.finish_reason));
  t.ok(res.usage!.prompt_tokens > 20);
  t.ok(res.usage!.completion_tokens <= 6);
  t.equal(res.usage!.total_tokens, res.usage!.prompt_tokens + res.usage!.completion_tokens);
  t.equal(Object.keys(res.psa.concepts.type.scores).length, 7);
  t.ok(res.psa.timings!.pass2_ms > 0);
  const v1 = (await app.inject({ method: 'POST', url: '/v1/chat', headers: auth, payload: { image: b64(png), prompt: 'Describe it.', max_tokens: 6, temperature: 0 } })).json();
  t.equal(choice.message.content, v1.answer, 'the same answer as /v1/chat');
  t.equal(res.usage!.completion_tokens, v1.usage.completion_tokens);
  const mct = await create({ max_tokens: undefined, max_completion_tokens: 6 });
  t.equal(mct.choices[0]!.message.content, choice.message.content, 'max_completion_tokens is max_tokens');
  const seeded = await Promise.all([1, 2].map(() => create({ temperature: 1, seed: 9, top_p: 0.9, max_tokens: 8 })));
  t.equal(seeded[0]!.choices[0]!.message.content, seeded[1]!.choices[0]!.message.content, 'a seed makes sampling repeatable');
});

t.test('the same image and prompt give the same concepts on /v1/moderations, /v1/moderate and /v1/chat/completions', async (t) => {
  const prompt = 'What is shown here, and is it safe?';
  const chat = await create({ messages: userTurn(prompt), max_tokens: 1 });
  const moderations = (
    await client.moderations.create({
      input: [
        { type: 'image_url', image_url: { url: dataUrl } },
        { type: 'text', text: prompt },
      ],
    })
  ).results[0] as OpenAI.Moderation & { psa: Psa };
  const moderate = (await app.inject({ method: 'POST', url: '/v1/moderate', headers: auth, payload: { image: b64(png), prompt } })).json().items[0];
  for (const kind of ['level', 'type'] as const) {
    for (const [label, p] of Object.entries(moderate.concepts[kind].scores as Record<string, number>)) {
      t.ok(Math.abs(chat.psa.concepts[kind].scores[label]! - p) < 1e-5, `chat ${kind} ${label}`);
      t.ok(Math.abs(moderations.psa.concepts[kind].scores[label]! - p) < 1e-5, `moderations ${kind} ${label}`);
    }
  }
  t.equal(chat.psa.decision, moderate.decision);
  t.equal(chat.psa.hint, moderate.hint);
});

t.test('stream: chat.completion.chunk events, psa on the first chunk, usage, [DONE]', async (t) => {
  const stream = await client.chat.completions.create({ model: 'psa-tiny', messages: userTurn('Describe it.'), max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const chunks: Chunk[] = [];
  for await (const chunk of stream) chunks.push(chunk as Chunk);
  t.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
  t.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
  t.ok(chunks[0]!.psa?.concepts, 'the first chunk carries psa');
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  const plain = await create({});
  t.equal(text, plain.choices[0]!.message.content, 'the joined deltas are the non-streamed answer');
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  t.equal(finish?.choices[0]?.finish_reason, plain.choices[0]!.finish_reason);
  t.ok(finish?.psa?.timings, 'the finish chunk carries timings');
  const usage = chunks.at(-1)!;
  t.same(usage.choices, [], 'the usage chunk has no choices');
  t.same(usage.usage, plain.usage);
  t.ok(
    chunks.slice(0, -1).every((c) => c.usage === null),
    'usage is null on the other chunks',
  );
  const raw = await fetch(`${baseURL()}/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ messages: userTurn('Hi'), max_tokens: 2, stream: true }) });
  t.match(raw.headers.get('content-type'), /text\/event-stream/);
  t.match(await raw.text(), /data: \[DONE\]\n\n$/, 'the stream ends with data: [DONE]');
});

t.test('a refused request: message.refusal, content null', async (t) => {
  const byModel = await create({ intervene: { level: 'refuse', type: 'illegal_risk' }, max_tokens: 4 });
  const c = byModel.choices[0]!;
  t.equal(c.message.content, null);
  t.type(c.message.refusal, 'string', 'the refusal the model wrote');
  t.ok(['stop', 'length'].includes(c.finish_reason), 'finish_reason of a model-written refusal follows generation');
  t.equal(byModel.psa.refused, true);
  t.match(byModel.psa.hint, /refuse/i);
  const byMessage = await create({ intervene: { level: 'refuse', type: 'privacy' }, policy: { refusal: { mode: 'message', message: 'No, sorry.' } } });
  t.equal(byMessage.choices[0]!.message.refusal, 'No, sorry.');
  t.equal(byMessage.choices[0]!.message.content, null);
  t.equal(byMessage.choices[0]!.finish_reason, 'content_filter', 'nothing was generated: content_filter');
  t.equal(byMessage.usage!.completion_tokens, 0);
  const stream = await client.chat.completions.create({
    model: 'psa-tiny',
    messages: userTurn('Tell me'),
    stream: true,
    intervene: { level: 'refuse', type: 'privacy' },
    policy: { refusal: { mode: 'message', message: 'No, sorry.' } },
  } as OpenAI.ChatCompletionCreateParamsStreaming);
  const chunks: Chunk[] = [];
  for await (const chunk of stream) chunks.push(chunk as Chunk);
  t.equal(chunks.map((k) => k.choices[0]?.delta.refusal ?? '').join(''), 'No, sorry.', 'a streamed refusal arrives as delta.refusal');
  t.equal(chunks.at(-1)!.choices[0]!.finish_reason, 'content_filter');
});

t.test('text only, system messages, and what is refused', async (t) => {
  // The tiny random model's safety head may call anything "refuse"; pin the level to see an answer.
  const textOnly = await create({ messages: [{ role: 'user', content: 'Hello, who are you?' }], intervene: { level: 'safe' } });
  t.type(textOnly.choices[0]!.message.content, 'string', 'a text-only conversation is answered');
  t.ok(textOnly.usage!.completion_tokens > 0);
  const withSystem = await create({ messages: [{ role: 'system', content: 'Answer briefly.' }, ...userTurn('Describe it.')] });
  t.ok(withSystem.usage!.prompt_tokens > (await create({})).usage!.prompt_tokens, 'the system message joins the prompt');
  const cases: [string, Record<string, unknown>, new (...a: never[]) => Error, string, string | null][] = [
    ['n: 2', { n: 2 }, OpenAI.BadRequestError, 'PSA_INVALID_GENERATION_OPTION', 'n'],
    ['temperature 9', { temperature: 9 }, OpenAI.BadRequestError, 'PSA_INVALID_GENERATION_OPTION', 'temperature'],
    ['max_tokens over the server limit', { max_tokens: 401 }, OpenAI.BadRequestError, 'PSA_INVALID_GENERATION_OPTION', 'max_tokens'],
    ['max_completion_tokens over the server limit', { max_tokens: undefined, max_completion_tokens: 401 }, OpenAI.BadRequestError, 'PSA_INVALID_GENERATION_OPTION', 'max_completion_tokens'],
    ['n: 0', { n: 0 }, OpenAI.BadRequestError, 'PSA_INVALID_GENERATION_OPTION', 'n'],
    ['differing max_tokens', { max_tokens: 4, max_completion_tokens: 5 }, OpenAI.BadRequestError, 'PSA_INVALID_GENERATION_OPTION', 'max_completion_tokens'],
    ['earlier turns', { messages: [...userTurn('Hi'), { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'More' }] }, OpenAI.BadRequestError, 'PSA_BAD_REQUEST', 'messages[1]'],
    [
      'two images',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url: dataUrl } },
              { type: 'image_url', image_url: { url: dataUrl } },
            ],
          },
        ],
      },
      OpenAI.BadRequestError,
      'PSA_TOO_MANY_ITEMS',
      'messages',
    ],
    ['unsupported option', { frequency_penalty: 0.5 }, OpenAI.BadRequestError, 'PSA_BAD_REQUEST', 'frequency_penalty'],
    ['unknown model', { model: 'gpt-4o' }, OpenAI.NotFoundError, 'PSA_MODEL_NOT_FOUND', 'model'],
    ['unknown label', { intervene: { level: 'panic' } }, OpenAI.BadRequestError, 'PSA_INVALID_LABEL', null],
  ];
  for (const [name, body, cls, code, param] of cases) {
    const err = await create(body).catch((e: unknown) => e);
    t.ok(err instanceof cls, `${name}: ${cls.name} (${(err as Error).message})`);
    t.equal((err as APIError).code, code, `${name}: code`);
    if (param !== null) t.equal((err as APIError).param, param, `${name}: param`);
  }
  const wrong = new OpenAI({ apiKey: 'wrong-key-0123456789abcdef', baseURL: baseURL(), maxRetries: 0 });
  const denied = await wrong.chat.completions.create({ model: 'psa-tiny', messages: userTurn('hi') }).catch((e: unknown) => e);
  t.ok(denied instanceof OpenAI.AuthenticationError, 'a wrong key is AuthenticationError');
  t.equal((denied as APIError).code, 'PSA_UNAUTHORIZED');
});

t.test('a stream the client aborts stops generation on the server', async (t) => {
  const controller = new AbortController();
  const stream = await client.chat.completions.create({ model: 'psa-tiny', messages: userTurn('Go on and on.'), max_tokens: 400, temperature: 1, seed: 1, stream: true }, { signal: controller.signal });
  let deltas = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) deltas++;
    if (deltas === 2) controller.abort();
  }
  const deadline = Date.now() + 10_000;
  while (!logLines.some((l) => l.msg === 'chat cancelled by the client') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const cancelled = logLines.find((l) => l.msg === 'chat cancelled by the client');
  t.ok(cancelled, 'the server logged the cancellation');
  const made = cancelled?.completion ?? 400;
  t.ok(made >= 2 && made < 400, `generation stopped early (${made} of 400 tokens)`);
  t.equal((await create({ max_tokens: 2 })).choices.length, 1, 'the worker is free again');
});

t.test('an overloaded server: 503 with Retry-After, the SDK retryable error, and retries that wait', async (t) => {
  const busy = (await testApp({ API_KEYS: `${KEY}=infer`, POOL_MAX_QUEUE: '1', MAX_NEW_TOKENS: '400' })).app;
  t.teardown(() => busy.close());
  await busy.listen({ port: 0, host: '127.0.0.1' });
  // Every call the SDK makes, by the seed of the request that made it.
  const calls = new Map<number, { at: number; status: number }[]>();
  const counting: typeof fetch = async (input, init) => {
    const seed = JSON.parse(String(init?.body)).seed as number;
    const at = Date.now();
    const res = await fetch(input, init);
    calls.set(seed, [...(calls.get(seed) ?? []), { at, status: res.status }]);
    return res;
  };
  const noRetry = new OpenAI({ apiKey: KEY, baseURL: baseURL(busy), maxRetries: 0, fetch: counting });
  const retrying = new OpenAI({ apiKey: KEY, baseURL: baseURL(busy), maxRetries: 1, fetch: counting });
  const long = (c: OpenAI, seed: number) => c.chat.completions.create({ model: 'psa-tiny', messages: userTurn('Keep going.'), max_tokens: 400, temperature: 1, seed }).catch((e: unknown) => e);
  const results = await Promise.all([...[1, 2, 3, 4, 5].map((s) => long(noRetry, s)), ...[11, 12, 13].map((s) => long(retrying, s))]);
  const shed = results.slice(0, 5).filter((r): r is APIError => r instanceof APIError);
  t.ok(shed.length > 0, `requests were shed (${shed.length} of 5)`);
  t.ok(
    results.some((r) => !(r instanceof Error)),
    'and some were answered',
  );
  for (const err of shed) {
    t.ok(err instanceof OpenAI.InternalServerError, "a 503 is the SDK's retryable InternalServerError");
    t.equal(err.status, 503);
    t.equal(err.code, 'PSA_OVERLOADED');
    t.equal(err.type, 'service_unavailable');
    t.equal(err.headers?.get('retry-after'), '1');
    t.equal(err.headers?.get('x-should-retry'), 'true');
  }
  const retried = [11, 12, 13].map((s) => calls.get(s)!).filter((c) => c[0]!.status === 503);
  t.ok(retried.length > 0, `a retrying client was shed too (${retried.length} of 3)`);
  for (const c of retried) {
    t.equal(c.length, 2, 'the SDK retried a 503 once (maxRetries: 1)');
    t.ok(c[1]!.at - c[0]!.at >= 950, `after the Retry-After second (${c[1]!.at - c[0]!.at} ms)`);
  }
});

import t from 'tap';
import { PsaErrorCodes } from '../src/psa/errors.ts';
import type { GenerationEvent, GenerationOptions } from '../src/psa/generator.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { applyConcepts, hintFor } from '../src/psa/concepts.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../src/psa/taxonomy.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';
import { tinyPackage } from '../scripts/lib/random-package.ts';

const runtime = await PsaRuntime.load(await tinyPackage(), { device: 'cpu' });
t.teardown(() => runtime.close());
const image = await runtime.preprocess(await gradientPng());
const prompt = 'Tell me about this picture.';
const [pass1] = await runtime.classify([{ image, prompt }]);
const features = pass1!.imageFeatures;

async function collect(options: Partial<GenerationOptions>, hint: string | null = null) {
  const events: GenerationEvent[] = [];
  for await (const ev of runtime.chat({ imageFeatures: features, prompt, hint, options })) events.push(ev);
  const tokens = events.flatMap((e) => (e.type === 'token' ? [e.id] : []));
  const end = events.at(-1) as Extract<GenerationEvent, { type: 'end' }>;
  const streamed = events.map((e) => (e.type === 'token' ? e.delta : e.tail)).join('');
  return { tokens, end, streamed };
}

t.test('greedy: max tokens, usage and streamed text', async (t) => {
  const r = await collect({ temperature: 0, maxNewTokens: 12 });
  t.equal(r.end.type, 'end');
  t.ok(r.tokens.length <= 12);
  if (r.tokens.length === 12) t.equal(r.end.finishReason, 'length');
  t.equal(r.end.completionTokens, r.tokens.length);
  t.equal(r.end.promptTokens, runtime.text.chatPrompt(prompt, null).ids.length);
  t.equal(r.streamed, r.end.text, 'deltas plus tail give the whole text');
  t.equal(r.end.text, runtime.text.decode(r.tokens));
});

t.test('top_k 1 samples the greedy path; a seed makes sampling repeatable', async (t) => {
  const greedy = await collect({ temperature: 0, maxNewTokens: 10 });
  const topOne = await collect({ temperature: 1.5, topK: 1, maxNewTokens: 10, seed: 3 });
  t.same(topOne.tokens, greedy.tokens);
  const a = await collect({ temperature: 1.2, maxNewTokens: 10, seed: 42 });
  const b = await collect({ temperature: 1.2, maxNewTokens: 10, seed: 42 });
  const c = await collect({ temperature: 1.2, maxNewTokens: 10, seed: 43 });
  t.same(a.tokens, b.tokens, 'same seed, same tokens');
  t.notSame(a.tokens, c.tokens, 'another seed, other tokens');
  const nucleus = await collect({ temperature: 1, topP: 0.05, maxNewTokens: 10, seed: 9 });
  t.ok(nucleus.tokens.length > 0);
});

t.test('stop strings end the text before the stop string', async (t) => {
  const full = await collect({ temperature: 0, maxNewTokens: 24 });
  t.ok(full.end.text.length >= 6, `greedy text long enough (${JSON.stringify(full.end.text)})`);
  const stop = full.end.text.slice(3, 6);
  const stopped = await collect({ temperature: 0, maxNewTokens: 24, stop: [stop] });
  t.equal(stopped.end.finishReason, 'stop');
  t.equal(stopped.end.text, full.end.text.slice(0, full.end.text.indexOf(stop)));
  t.notMatch(stopped.streamed, stop, 'the stop string is never streamed');
  t.equal(stopped.streamed, stopped.end.text);
});

t.test('an AbortSignal cancels generation', async (t) => {
  const controller = new AbortController();
  let seen = 0;
  await t.rejects(
    (async () => {
      for await (const ev of runtime.chat({ imageFeatures: features, prompt, hint: null, options: { temperature: 0, maxNewTokens: 50, signal: controller.signal } })) {
        if (ev.type === 'token' && ++seen === 3) controller.abort();
      }
    })(),
    { code: PsaErrorCodes.ABORTED },
  );
  t.equal(seen, 3, 'no token after the abort');
  await t.rejects(collect({ signal: AbortSignal.abort() }), { code: PsaErrorCodes.ABORTED });
});

t.test('out-of-range options are rejected with the field named', async (t) => {
  const bad: [Partial<GenerationOptions>, string][] = [
    [{ temperature: -1 }, 'temperature'],
    [{ temperature: Number.NaN }, 'temperature'],
    [{ topP: 0 }, 'top_p'],
    [{ topK: 1.5 }, 'top_k'],
    [{ seed: -4 }, 'seed'],
    [{ maxNewTokens: 0 }, 'max_tokens'],
  ];
  for (const [options, field] of bad) {
    t.throws(() => runtime.chat({ imageFeatures: features, prompt, hint: null, options }), { code: PsaErrorCodes.INVALID_GENERATION_OPTION, details: { field } });
  }
});

t.test('a prompt longer than the context is refused before generating', async (t) => {
  const long = 'word '.repeat(2000);
  t.throws(() => runtime.chat({ imageFeatures: features, prompt: long, hint: null }), { code: PsaErrorCodes.PROMPT_TOO_LONG });
});

t.test('hints follow (level, type); interventions replace the prediction', async (t) => {
  const m = runtime.pkg.manifest;
  t.equal(hintFor(m, { level: 0, type: 1 }), null, 'level safe adds no hint');
  t.equal(hintFor(m, { level: 3, type: TYPE_LABELS.indexOf('safe') }), null, 'type safe adds no hint');
  const refusal = hintFor(m, { level: 3, type: TYPE_LABELS.indexOf('privacy') });
  t.equal(refusal, m.hints.refuse!.privacy);
  t.match(refusal, /refuse/i);
  const applied = applyConcepts(pass1!, { level: LEVEL_LABELS.indexOf('caution') });
  t.equal(applied.level, 2);
  t.equal(applied.type, pass1!.typeProbs.indexOf(Math.max(...pass1!.typeProbs)), 'type stays predicted');
  const withHint = runtime.text.chatPrompt(prompt, refusal);
  t.match(withHint.text, refusal!);
  t.ok(withHint.ids.length > runtime.text.chatPrompt(prompt, null).ids.length);
  const answer = await collect({ temperature: 0, maxNewTokens: 8 }, refusal);
  t.ok(answer.end.promptTokens === withHint.ids.length, 'the hint is part of the generation prompt');
});

t.test('a batch gives the same concepts as single calls', async (t) => {
  const inputs = [
    { image, prompt: '' },
    { image: await runtime.preprocess(await noiseJpeg()), prompt: 'A much longer prompt than the others, to pad the batch.' },
    { image: await runtime.preprocess(await shapesWebp()), prompt: 'Shapes?' },
  ];
  const batch = await runtime.classify(inputs);
  for (const [i, input] of inputs.entries()) {
    const [single] = await runtime.classify([input]);
    for (let k = 0; k < 4; k++) t.ok(Math.abs(batch[i]!.levelProbs[k]! - single!.levelProbs[k]!) < 1e-5);
    for (let k = 0; k < 7; k++) t.ok(Math.abs(batch[i]!.typeProbs[k]! - single!.typeProbs[k]!) < 1e-5);
    t.same(
      Array.from(batch[i]!.imageFeatures.slice(0, 16)).map((v) => v.toFixed(4)),
      Array.from(single!.imageFeatures.slice(0, 16)).map((v) => v.toFixed(4)),
    );
  }
  t.ok(Math.abs(batch[0]!.levelProbs.reduce((a, b) => a + b, 0) - 1) < 1e-6, 'probabilities sum to one');
});

/**
 * npm run bench:runtime [-- --size small|tiny --tokens 32 --iterations 20]
 *
 * Pass-1 latency at batch 1 and 8 (per-image throughput ratio), and generation tokens/s of our
 * runtime beside transformers.js on the same package, pixels and prompt ids.
 */
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { env, LlavaForConditionalGeneration, Tensor } from '@huggingface/transformers';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { randomPackage, type RandomSize } from '../scripts/lib/random-package.ts';
import { gradientPng, noiseJpeg, shapesWebp } from '../test/helpers/images.ts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'small' },
    tokens: { type: 'string', default: '32' },
    iterations: { type: 'string', default: '10' },
  },
});
const size = values.size as RandomSize;
const maxTokens = Number(values.tokens);
const iterations = Number(values.iterations);

const dir = await randomPackage(size);
const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
const sources = [await gradientPng(), await noiseJpeg(), await shapesWebp()];
const images = await Promise.all(sources.map((b) => runtime.preprocess(b)));
const item = (i: number) => ({ image: images[i % images.length]!, prompt: `Is picture ${i} safe to describe?` });

async function timeIt(fn: () => Promise<unknown>, n: number): Promise<number[]> {
  await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return times;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const b1 = median(await timeIt(() => runtime.classify([item(0)]), iterations));
const b8 = median(await timeIt(() => runtime.classify(Array.from({ length: 8 }, (_, i) => item(i))), iterations));

// Generation: same pixels and prompt ids for both; greedy; vision encoding included for both.
const prompt = 'Describe this picture in detail.';
const ids = runtime.text.chatPrompt(prompt, null).ids;
async function ours(): Promise<number> {
  const [p1] = await runtime.classify([{ image: images[0]!, prompt }]);
  let n = 0;
  for await (const ev of runtime.chat({ imageFeatures: p1!.imageFeatures, prompt, hint: null, options: { temperature: 0, maxNewTokens: maxTokens } })) {
    if (ev.type === 'token') n++;
  }
  return n;
}
env.allowRemoteModels = false;
env.localModelPath = dirname(dir) + '/';
const theirModel = await LlavaForConditionalGeneration.from_pretrained(basename(dir), { dtype: 'fp32', device: 'cpu' });
const { height, width } = runtime.pkg.preprocess.cropSize;
async function theirs(): Promise<number> {
  const out = (await theirModel.generate({
    input_ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
    attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
    pixel_values: new Tensor('float32', images[0]!.pixels, [1, 3, height, width]),
    max_new_tokens: maxTokens,
    do_sample: false,
  })) as Tensor;
  return out.dims[1]! - ids.length;
}
// Interleaved, so drift in machine load hits both sides alike.
let ourTokens = await ours();
let theirTokens = await theirs();
const ourTimes: number[] = [];
const theirTimes: number[] = [];
for (let i = 0; i < iterations; i++) {
  let start = performance.now();
  ourTokens = await ours();
  ourTimes.push(performance.now() - start);
  start = performance.now();
  theirTokens = await theirs();
  theirTimes.push(performance.now() - start);
}
const ourRate = ourTokens / (median(ourTimes) / 1000);
const theirRate = theirTokens / (median(theirTimes) / 1000);

const m = runtime.pkg.manifest.model;
console.log(`package: ${runtime.name} (${size}; LLM width ${m.hidden_size}, ${m.num_layers} layers, vocab ${m.vocab_size}; ${runtime.pkg.manifest.image.image_token_count} image rows), provider ${runtime.provider}`);
console.log('');
console.log('| measure | value |');
console.log('| --- | --- |');
console.log(`| pass 1, batch 1: latency (median of ${iterations}) | ${b1.toFixed(1)} ms |`);
console.log(`| pass 1, batch 8: latency | ${b8.toFixed(1)} ms (${(b8 / 8).toFixed(1)} ms per image) |`);
console.log(`| pass 1 per-image throughput, batch 8 / batch 1 | ${((b1 * 8) / b8).toFixed(2)}x (goal >= 3x) |`);
console.log(`| generation, psa-guard runtime | ${ourRate.toFixed(1)} tokens/s (${ourTokens} tokens, ${median(ourTimes).toFixed(0)} ms) |`);
console.log(`| generation, transformers.js ${env.version} | ${theirRate.toFixed(1)} tokens/s (${theirTokens} tokens, ${median(theirTimes).toFixed(0)} ms) |`);
console.log(`| ratio psa-guard / transformers.js | ${(ourRate / theirRate).toFixed(2)}x (goal >= 1x) |`);
await runtime.close();
await theirModel.dispose();

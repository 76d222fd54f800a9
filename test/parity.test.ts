import t from 'tap';
import { embedPrompt, DecoderState } from '../src/psa/generator.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';
import { runTrainer } from '../scripts/lib/trainer-cli.ts';
import { tinyPackage } from '../scripts/lib/random-package.ts';

// PyTorch runs live here, on the weights in the package's model.safetensors, fed the pixels and
// token ids the Node runtime computed; so this compares the exported graphs with the model code.
const dir = await tinyPackage();
const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
t.teardown(() => runtime.close());

const cases = [
  { name: 'gradient', bytes: await gradientPng(), prompt: 'What is shown in this picture?' },
  { name: 'noise', bytes: await noiseJpeg(), prompt: 'Describe the colours, please.' },
  { name: 'shapes', bytes: await shapesWebp(), prompt: '' },
];
const GREEDY = 20;

const images = await Promise.all(cases.map((c) => runtime.preprocess(c.bytes)));
const pass1 = await runtime.classify(cases.map((c, i) => ({ image: images[i]!, prompt: c.prompt })));
const graphs = runtime['graphs'];
const shape = runtime['decoderShape'];

const node: { prompt: { ids: number[] }; lastLogits: Float32Array; tokens: number[] }[] = [];
for (const [i, c] of cases.entries()) {
  const prompt = runtime.text.chatPrompt(c.prompt, null);
  const state = DecoderState.empty({ embed: graphs.embed_tokens, decoder: graphs.decoder }, shape);
  const lastLogits = await state.step(await embedPrompt({ embed: graphs.embed_tokens, decoder: graphs.decoder }, shape, prompt.ids, pass1[i]!.imageFeatures), prompt.ids.length);
  const tokens: number[] = [];
  for await (const ev of runtime.chat({ imageFeatures: pass1[i]!.imageFeatures, prompt: c.prompt, hint: null, options: { maxNewTokens: GREEDY, temperature: 0 } })) {
    if (ev.type === 'token') tokens.push(ev.id);
  }
  node.push({ prompt, lastLogits, tokens });
}

const request = {
  cases: cases.map((c, i) => ({
    pixel_values: Buffer.from(images[i]!.pixels.buffer, images[i]!.pixels.byteOffset, images[i]!.pixels.byteLength).toString('base64'),
    input_ids: node[i]!.prompt.ids,
    query_ids: runtime.text.queryIds(c.prompt),
    max_new_tokens: GREEDY,
  })),
};
const reference = JSON.parse(await runTrainer(['reference', '--package', dir], JSON.stringify(request))) as {
  cases: { level_probs: number[]; type_probs: number[]; last_logits: string; greedy_tokens: number[] }[];
};

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

for (const [i, c] of cases.entries()) {
  t.test(`${c.name}: Node and PyTorch agree`, async (t) => {
    const ref = reference.cases[i]!;
    const mine = pass1[i]!;
    const levelDiff = maxAbs(mine.levelProbs, ref.level_probs);
    const typeDiff = maxAbs(mine.typeProbs, ref.type_probs);
    const refLogits = new Float32Array(new Uint8Array(Buffer.from(ref.last_logits, 'base64')).buffer);
    const logitDiff = maxAbs(node[i]!.lastLogits, refLogits);
    t.comment(`level ${levelDiff.toExponential(2)}, type ${typeDiff.toExponential(2)}, logits ${logitDiff.toExponential(2)}`);
    t.equal(mine.levelProbs.length, 4);
    t.equal(mine.typeProbs.length, 7);
    t.ok(levelDiff <= 1e-4, `level probabilities within 1e-4 (${levelDiff})`);
    t.ok(typeDiff <= 1e-4, `type probabilities within 1e-4 (${typeDiff})`);
    t.equal(refLogits.length, node[i]!.lastLogits.length, 'same vocabulary size');
    t.ok(logitDiff <= 1e-3, `last-position logits within 1e-3 (${logitDiff})`);
    t.same(node[i]!.tokens, ref.greedy_tokens, 'same greedy tokens');
    t.ok(node[i]!.tokens.length > 0, 'generated something');
  });
}

t.test('inputs differ, so the comparison means something', async (t) => {
  t.not(pass1[0]!.typeProbs[0], pass1[1]!.typeProbs[0]);
  t.notSame(node[0]!.tokens, node[1]!.tokens);
});

import t from 'tap';
import { basename, dirname } from 'node:path';
import { AutoProcessor, env, LlavaForConditionalGeneration, RawImage, Tensor } from '@huggingface/transformers';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { gradientPng, noiseJpeg } from './helpers/images.ts';
import { tinyPackage } from '../scripts/lib/random-package.ts';

// transformers.js loads the package directory as it is, offline, and must generate the same
// greedy tokens as our runtime (no hint) for the same pixels and prompt ids.
const dir = await tinyPackage();
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = dirname(dir) + '/';

const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
t.teardown(() => runtime.close());
const model = await LlavaForConditionalGeneration.from_pretrained(basename(dir), { dtype: 'fp32', device: 'cpu' });
t.teardown(() => model.dispose());

const cases = [
  { bytes: await gradientPng(), prompt: 'What is shown in this picture?' },
  { bytes: await noiseJpeg(), prompt: 'Describe it.' },
];
const N = 16;

for (const [i, c] of cases.entries()) {
  t.test(`case ${i}: same greedy tokens`, async (t) => {
    const image = await runtime.preprocess(c.bytes);
    const [pass1] = await runtime.classify([{ image, prompt: c.prompt }]);
    const mine: number[] = [];
    for await (const ev of runtime.chat({ imageFeatures: pass1!.imageFeatures, prompt: c.prompt, hint: null, options: { maxNewTokens: N, temperature: 0 } })) {
      if (ev.type === 'token') mine.push(ev.id);
    }
    const ids = runtime.text.chatPrompt(c.prompt, null).ids;
    const { height, width } = runtime.pkg.preprocess.cropSize;
    const output = (await model.generate({
      input_ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
      pixel_values: new Tensor('float32', image.pixels, [1, 3, height, width]),
      max_new_tokens: mine.length < N ? mine.length + 1 : N,
      do_sample: false,
    })) as Tensor;
    const theirs = Array.from(output.data as BigInt64Array, Number).slice(ids.length);
    const eos = runtime.pkg.manifest.generation.eos_token_id;
    t.same(
      theirs.filter((id) => id !== eos),
      mine,
    );
    t.ok(mine.length > 0);
  });
}

t.test("transformers.js' processor expands <image> to as many tokens as the vision encoder gives rows", async (t) => {
  const processor = await AutoProcessor.from_pretrained(basename(dir));
  const raw = await RawImage.fromBlob(new Blob([new Uint8Array(await gradientPng())]));
  const text = runtime.text.chatPrompt('Hello there', null).text;
  const inputs = await processor(raw, text);
  const theirIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
  const imageId = runtime.pkg.manifest.image.image_token_id;
  t.equal(theirIds.filter((id) => id === imageId).length, runtime.pkg.manifest.image.image_token_count);
  t.same(theirIds, runtime.text.chatPrompt('Hello there', null).ids, 'same prompt ids as our runtime');
});

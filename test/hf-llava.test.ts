import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { env, LlavaForConditionalGeneration, Tensor } from '@huggingface/transformers';
import { embedPrompt, DecoderState, generate } from '../src/psa/generator.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { PYTHON, REPO_ROOT, runTrainer } from '../scripts/lib/trainer-cli.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// A real checkpoint written by Hugging Face transformers, with the outputs transformers computed.
const HF = join(REPO_ROOT, '..', 'shared', 'data', 'hf-tiny-llava');
const cases = (JSON.parse(await readFile(join(HF, 'reference', 'cases.json'), 'utf8')) as { cases: { name: string; input_ids: number[]; greedy_tokens: number[] }[] }).cases;
const reference = await readSafetensorsFile(join(HF, 'reference', 'outputs.safetensors'));

// All setup runs before the first subtest: tap ends the root test (and runs its teardown) when
// a subtest finishes while no other is queued.
const work = await mkdtemp(join(tmpdir(), 'psa-hf-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const pkgDir = join(work, 'hf-tiny');
// No safety tokens B, so the decoder sees exactly what transformers' LLaVA saw.
await runTrainer(['export', '--checkpoint', HF, '--out', pkgDir, '--tokens-a', '4', '--tokens-b', '0']);
const runtime = await PsaRuntime.load(pkgDir, { device: 'cpu' });
t.teardown(() => runtime.close());
// The same checkpoint with every graph's weights in external data files, plus the fp16 variants.
const variantsDir = join(work, 'hf-tiny-variants');
await runTrainer(['export', '--checkpoint', HF, '--out', variantsDir, '--tokens-a', '4', '--tokens-b', '0', '--external-data', 'always', '--fp16']);
const external = await PsaRuntime.load(variantsDir, { device: 'cpu' });
t.teardown(() => external.close());
const half = await PsaRuntime.load(variantsDir, { device: 'cpu', dtype: 'fp16' });
t.teardown(() => half.close());

/** Image features and the last position's logits of a reference case, run by `rt`. */
async function lastLogits(rt: PsaRuntime, c: (typeof cases)[number]): Promise<{ image: Float32Array; logits: Float32Array }> {
  const pixels = reference.get(`${c.name}.pixel_values`)!.data as Float32Array;
  const [p1] = await rt.classify([{ image: { pixels, height: 56, width: 56, source: { format: 'raw', width: 56, height: 56 } }, prompt: '' }]);
  const graphs = { embed: rt['graphs'].embed_tokens, decoder: rt['graphs'].decoder };
  const state = DecoderState.empty(graphs, rt['decoderShape']);
  const logits = await state.step(await embedPrompt(graphs, rt['decoderShape'], c.input_ids, p1!.imageFeatures), c.input_ids.length);
  return { image: p1!.imageFeatures, logits: Float32Array.from(logits) };
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

t.test('the trainer loads the checkpoint in every layout and reproduces transformers', async (t) => {
  const { stdout } = await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/hf_checkpoint_check.py'), HF], { cwd: REPO_ROOT, env: { ...process.env, PYTHONPATH: REPO_ROOT } });
  const report = JSON.parse(stdout);
  for (const [name, r] of Object.entries(report.reference) as [string, { vision: number; image: number; logits: number; tokens_equal: boolean }][]) {
    t.ok(r.vision <= 1e-4 && r.image <= 1e-4 && r.logits <= 1e-4, `${name}: vision ${r.vision}, image ${r.image}, logits ${r.logits}`);
    t.ok(r.tokens_equal, `${name}: greedy tokens`);
  }
  for (const [layout, diff] of Object.entries(report.layouts)) t.equal(diff, 0, `${layout} loads to identical outputs`);
  t.match(report.errors['wrong shape'], /multi_modal_projector\.linear_1\.weight.*\[3, 3\].*\[64, 48\]/);
  t.match(report.errors['missing key'], /missing tensor .*norm\.weight/);
  t.match(report.errors['unsupported dtype'], /unsupported dtype 'F8X'/);
  t.ok(report.bf16_max_logit_diff < 0.5, `bf16 weights load (logit diff ${report.bf16_max_logit_diff})`);
});

t.test("the exported package, run by the Node runtime, gives transformers' logits and tokens", async (t) => {
  t.equal(runtime.pkg.manifest.provenance.status, 'base');
  const graphs = { embed: runtime['graphs'].embed_tokens, decoder: runtime['graphs'].decoder };
  const shape = runtime['decoderShape'];
  for (const c of cases) {
    const pixels = reference.get(`${c.name}.pixel_values`)!.data as Float32Array;
    const [p1] = await runtime.classify([{ image: { pixels, height: 56, width: 56, source: { format: 'raw', width: 56, height: 56 } }, prompt: '' }]);
    const refImage = reference.get(`${c.name}.image_features`)!.data as Float32Array;
    let imageDiff = 0;
    refImage.forEach((v, i) => (imageDiff = Math.max(imageDiff, Math.abs(v - p1!.imageFeatures[i]!))));
    const state = DecoderState.empty(graphs, shape);
    const last = await state.step(await embedPrompt(graphs, shape, c.input_ids, p1!.imageFeatures), c.input_ids.length);
    const refLogits = reference.get(`${c.name}.logits`)!;
    const vocab = refLogits.shape[1]!;
    const refLast = (refLogits.data as Float32Array).subarray((c.input_ids.length - 1) * vocab, c.input_ids.length * vocab);
    let logitDiff = 0;
    refLast.forEach((v, i) => (logitDiff = Math.max(logitDiff, Math.abs(v - last[i]!))));
    t.ok(imageDiff <= 1e-4, `${c.name}: image features within 1e-4 (${imageDiff.toExponential(2)})`);
    t.ok(logitDiff <= 1e-3, `${c.name}: last logits within 1e-3 (${logitDiff.toExponential(2)})`);
    const tokens: number[] = [];
    for await (const ev of generate(graphs, shape, c.input_ids, p1!.imageFeatures, { maxNewTokens: c.greedy_tokens.length, temperature: 0, topK: 0, topP: 1, stop: [] }, () => '')) {
      if (ev.type === 'token') tokens.push(ev.id);
    }
    t.same(tokens, c.greedy_tokens, `${c.name}: greedy tokens equal transformers'`);
  }
});

t.test('transformers.js loads the exported package and generates the same tokens', async (t) => {
  env.allowRemoteModels = false;
  env.localModelPath = dirname(pkgDir) + '/';
  const model = await LlavaForConditionalGeneration.from_pretrained(basename(pkgDir), { dtype: 'fp32', device: 'cpu' });
  t.teardown(() => model.dispose());
  for (const c of cases) {
    const out = (await model.generate({
      input_ids: new Tensor('int64', BigInt64Array.from(c.input_ids.map(BigInt)), [1, c.input_ids.length]),
      attention_mask: new Tensor('int64', new BigInt64Array(c.input_ids.length).fill(1n), [1, c.input_ids.length]),
      pixel_values: new Tensor('float32', reference.get(`${c.name}.pixel_values`)!.data as Float32Array, [1, 3, 56, 56]),
      max_new_tokens: c.greedy_tokens.length,
      do_sample: false,
    })) as Tensor;
    t.same(Array.from(out.data as BigInt64Array, Number).slice(c.input_ids.length), c.greedy_tokens, c.name);
  }
});

t.test('a checkpoint that does not fit is refused with one clear message', async (t) => {
  await t.rejects(runTrainer(['export', '--checkpoint', join(work, 'nothing'), '--out', join(work, 'x')]), /config\.json is missing/);
});

t.test('external data and the fp16 variant: same outputs from weights outside the graphs; fp16 close', async (t) => {
  const manifest = external.pkg.manifest;
  for (const graph of ['vision_encoder', 'safety_head', 'embed_tokens', 'decoder_model_merged']) {
    t.ok(`onnx/${graph}.onnx_data` in manifest.files, `${graph}.onnx_data is checksummed in psa.json`);
    t.ok(`onnx/${graph}_fp16.onnx` in manifest.files && `onnx/${graph}_fp16.onnx_data` in manifest.files, `${graph}_fp16.onnx (+ data) written beside it`);
  }
  t.equal(manifest.onnx_fp16?.decoder, 'onnx/decoder_model_merged_fp16.onnx', 'transformers.js suffix');
  t.equal(runtime.pkg.manifest.onnx_fp16, undefined, 'no fp16 graphs unless asked for');
  await t.rejects(PsaRuntime.load(pkgDir, { device: 'cpu', dtype: 'fp16' }), { code: 'PSA_PACKAGE_MANIFEST_INVALID', message: /no fp16 graphs/ });
  for (const c of cases) {
    const inline = await lastLogits(runtime, c);
    const outside = await lastLogits(external, c);
    t.equal(maxDiff(inline.logits, outside.logits), 0, `${c.name}: external data gives identical logits`);
    const fp16 = await lastLogits(half, c);
    const refLogits = reference.get(`${c.name}.logits`)!;
    const vocab = refLogits.shape[1]!;
    const ref = (refLogits.data as Float32Array).subarray((c.input_ids.length - 1) * vocab, c.input_ids.length * vocab);
    const scale = Math.max(...Array.from(ref, Math.abs));
    const d = maxDiff(ref, fp16.logits);
    t.ok(d <= 0.02 * scale, `${c.name}: fp16 logits within 2% of the logit range (max diff ${d.toExponential(2)}, range ${scale.toFixed(2)})`);
    const argmax = (x: ArrayLike<number>) => Array.from(x).reduce((best, v, i, all) => (v > all[best]! ? i : best), 0);
    t.equal(argmax(fp16.logits), argmax(ref), `${c.name}: fp16 picks the same next token`);
  }
});

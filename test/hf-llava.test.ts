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

t.test('the exported package, run by the Node runtime, gives transformers\' logits and tokens', async (t) => {
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

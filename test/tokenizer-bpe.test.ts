// The trainer's BPE tokenizer (trainer/tokenizer/bpe_training.py, encoded in Python by Hugging Face
// `tokenizers`) must agree id-for-id with @huggingface/tokenizers, which is what the service uses
// at runtime, and with the ids transformers produced for the real tiny LLaVA checkpoint.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = '/usr/bin/python3';
const REF_DIR = '/work/shared/data/hf-tiny-llava';
const HAS_REF = existsSync(join(REF_DIR, 'tokenizer.json'));

interface PyCase {
  text: string;
  ids: number[];
  decoded: string;
}
interface PyRef {
  name: string;
  text: string;
  ids: number[];
  expected: number[];
}
interface PyOut {
  deterministic: boolean;
  sha256: string;
  specials: Record<string, number>;
  cases: PyCase[];
  reference: PyRef[];
}

const TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  '   leading spaces',
  'trailing spaces   ',
  'multiple   spaces  between     words',
  'line one\n\nline two\n',
  '\n\n',
  ' ',
  'tabs\tand\t\tmore tabs \t here',
  'windows\r\nnewline and\u00a0no-break space',
  'Call 555-0199 at 09:45, pay $12.50 (about 1,234.56 units) in 2023!',
  "Well... \"quoted\" -- isn't it? I'm sure they'll say we'd've 'S 's",
  'café naïve résumé ÜNÏCÖDÉ',
  'combining e\u0301 accent',
  '你好，世界',
  '🙂👍🏽 emoji 🙂',
  'USER: <image>\nWhat is in this picture? ASSISTANT:',
  '<image><image>text<s>inner</s><pad>',
  '<imag> not special <image',
  'a'.repeat(300),
  '',
];

function runPython(outDir: string): PyOut {
  const stdout = execFileSync(PYTHON, ['test/helpers/tokenizer_check.py', outDir, REF_DIR], { cwd: ROOT, input: JSON.stringify(TEXTS), encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as PyOut;
}

const readJson = (path: string): Record<string, any> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;

t.test('python BPE tokenizer matches @huggingface/tokenizers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psa-bpe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const py = runPython(dir);
  const tokJson = readJson(join(dir, 'tokenizer.json'));
  const tokCfg = readJson(join(dir, 'tokenizer_config.json'));
  const js = new Tokenizer(tokJson, tokCfg);

  t.ok(py.deterministic, 'training twice gives the same tokenizer.json');
  // The merges (so every id) the trainer has always learned from this corpus: tokenizers built
  // before stay reproducible from their corpus.
  t.equal(py.sha256, '039fff875d26ddd5b9e452cebea5d500db3f4073814929e18c2e8a13226ab6c4', 'the same tokenizer.json as ever for the built-in corpus');
  t.same(py.specials, { bos: 1, eos: 2, pad: 4, image: 3, vocab_size: 600 });

  const vocab = tokJson.model.vocab as Record<string, number>;
  t.equal(Object.keys(vocab).length, 600, 'vocab_size reached');
  t.same(
    ['<unk>', '<s>', '</s>', '<image>', '<pad>'].map((s) => vocab[s]),
    [0, 1, 2, 3, 4],
  );
  t.equal(vocab['!'], 5, 'byte symbols follow the specials, sorted by code point');
  // 188 printable bytes keep their code point; space is the 33rd shifted one (U+0120).
  t.equal(vocab['Ġ'], 5 + 188 + 32, 'space symbol id');
  const merges = tokJson.model.merges as unknown[];
  t.ok(merges.length > 0 && merges.every((m) => Array.isArray(m) && m.length === 2));
  t.equal(tokCfg.bos_token, '<s>');
  t.equal(tokCfg.added_tokens_decoder['3'].content, '<image>');

  t.equal(py.cases.length, TEXTS.length);
  for (const c of py.cases) {
    const label = JSON.stringify(c.text);
    const enc = js.encode(c.text);
    t.same(c.ids, enc.ids, `ids agree for ${label}`);
    t.equal(c.ids[0], 1, `BOS first for ${label}`);
    t.equal(c.decoded, c.text, `python round trip for ${label}`);
    const bare = js.encode(c.text, { add_special_tokens: false }).ids;
    t.same(bare, c.ids.slice(1), `no BOS without special tokens for ${label}`);
    // @huggingface/tokenizers throws on decode([]), so the empty string stops here.
    if (bare.length > 0) t.equal(js.decode(bare), c.text, `js round trip for ${label}`);
  }

  const image = py.cases.find((c) => c.text.startsWith('USER: <image>\n'))!;
  t.equal(image.ids.filter((id) => id === 3).length, 1, 'one <image> id for one <image>');
  t.same(py.cases.find((c) => c.text === '')!.ids, [1]);

  if (HAS_REF) {
    // Same shape as a tokenizer.json written by HF tokenizers itself.
    const ref = readJson(join(REF_DIR, 'tokenizer.json'));
    t.same(Object.keys(tokJson).sort(), Object.keys(ref).sort(), 'top-level keys');
    t.same(Object.keys(tokJson.model).sort(), Object.keys(ref.model).sort(), 'model keys');
    for (const key of ['added_tokens', 'pre_tokenizer', 'post_processor', 'decoder', 'normalizer']) {
      t.same(tokJson[key], ref[key], `${key} as HF writes it`);
    }
    const base = (v: Record<string, number>) => Object.entries(v).filter(([, id]) => id < 261);
    t.same(base(vocab), base(ref.model.vocab), 'specials + byte alphabet ids as HF BpeTrainer assigns them');
  }
});

t.test('python encoder reproduces transformers ids for hf-tiny-llava', { skip: !HAS_REF && 'no hf-tiny-llava data' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psa-bpe-ref-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const py = runPython(dir);
  const js = new Tokenizer(readJson(join(REF_DIR, 'tokenizer.json')), readJson(join(REF_DIR, 'tokenizer_config.json')));
  t.equal(py.reference.length, 3);
  for (const r of py.reference) {
    t.equal(r.expected.filter((id) => id === 3).length, 16, `${r.name}: 16 image tokens expected`);
    t.same(r.ids, r.expected, `${r.name}: python ids equal transformers input_ids`);
    t.same(js.encode(r.text).ids, r.expected, `${r.name}: js ids equal transformers input_ids`);
  }
});

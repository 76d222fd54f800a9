// The hand-written byte-level BPE encoder and pre-tokenizer (trainer/tokenizer/bpe_encoder.py,
// bytelevel.py) against Hugging Face `tokenizers` on the trainer's own tokenizers and the
// hf-tiny-llava one: the same ids, decoded text and word counts, so the library can replace them.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TEXTS = ['The quick brown fox', '   leading', 'tabs\tand\t\tmore', 'windows\r\nnewline and\u00a0nbsp', 'Call 555-0199 at 09:45, $12.50',
  "isn't I'm we'd've 'S", '你好，世界', '🙂👍🏽 emoji', 'combining e\u0301', '\n\n', ' ', 'a'.repeat(300), 'x\u2028y\u0085z\u001cw']

interface Encoding { texts: number; tokens: number; id_mismatches: unknown[]; decode_mismatches: unknown[]; specials: unknown[][] }
interface Report { pre_tokenize: { pieces: number; mismatches: unknown[] }; alphabet: boolean; training: Record<string, boolean>; encoding: Record<string, Encoding> }

t.test('hugging face tokenizers encodes like the hand-written encoder', async (t) => {
  const out = execFileSync('/usr/bin/python3', ['test/helpers/tokenizer_library_check.py', '/work/shared/data/hf-tiny-llava'], { cwd: ROOT, input: JSON.stringify(TEXTS), encoding: 'utf8', maxBuffer: 64 << 20 })
  const r = JSON.parse(out) as Report
  t.ok(r.pre_tokenize.pieces > 1000, `${r.pre_tokenize.pieces} pre-tokenized pieces`)
  t.same(r.pre_tokenize.mismatches, [], 'ByteLevel pre-tokenization is the same')
  t.ok(r.alphabet, 'the byte alphabet, sorted by code point, is the same')
  for (const [name, same] of Object.entries(r.training)) t.ok(same, `${name}: training with the library's pre-tokenizer gives the same tokenizer.json`)
  t.ok(Object.keys(r.encoding).length >= 3)
  for (const [name, e] of Object.entries(r.encoding)) {
    t.ok(e.tokens > 1000, `${name}: ${e.texts} encodings, ${e.tokens} tokens`)
    t.same(e.id_mismatches, [], `${name}: the same ids`)
    t.same(e.decode_mismatches, [], `${name}: the same decoded text`)
    t.same(e.specials[1], e.specials[0], `${name}: the same special ids and vocabulary size`)
  }
})

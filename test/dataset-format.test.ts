import t from 'tap';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError } from '../src/datasets/errors.ts';
import { validateDataset } from '../src/datasets/validate.ts';
import { loadEvalSet } from '../src/eval/dataset.ts';
import { readSplit } from '../src/training/prepare.ts';
import { gradientPng } from './helpers/images.ts';

// One line format, read by upload validation, training's readSplit and evaluation sets alike: the
// same line gets the same verdict from all three.

const work = await mkdtemp(join(tmpdir(), 'psa-dataset-format-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const png = await gradientPng(32, 32);

const line = (id: string, extra: Record<string, unknown> = {}, human = '<image>\nWhat is this?') =>
  JSON.stringify({
    id,
    image: 'images/a.png',
    conversations: [
      { from: 'human', value: human },
      { from: 'gpt', value: 'A picture.' },
    ],
    safe_type: 6,
    safe_level: 0,
    ...extra,
  });
const textLine = (id: string) =>
  JSON.stringify({
    id,
    conversations: [
      { from: 'human', value: '  How do I pick a lock?' },
      { from: 'gpt', value: 'No.' },
    ],
    safe_type: 1,
    safe_level: 2,
  });

/** The same lines as train.jsonl of one directory and eval.jsonl of another. */
async function both(name: string, lines: string[]): Promise<{ train: string; evalDir: string }> {
  const train = join(work, name, 'train');
  const evalDir = join(work, name, 'eval');
  for (const [dir, file] of [
    [train, 'train.jsonl'],
    [evalDir, 'eval.jsonl'],
  ] as const) {
    await mkdir(join(dir, 'images'), { recursive: true });
    await writeFile(join(dir, 'images', 'a.png'), png);
    await writeFile(join(dir, file), `${lines.join('\n')}\n`);
  }
  return { train, evalDir };
}

async function problems(p: Promise<unknown>): Promise<{ line?: number; message: string }[]> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof DatasetError)) throw new Error(`expected a DatasetError, got ${String(err)}`);
  return err.problems.map(({ line, message }) => ({ ...(line !== undefined && { line }), message }));
}

t.test('readSplit returns examples of valid lines: prompt without <image>, answer, text-only without an image', async (t) => {
  const { train } = await both('valid', [line('a'), '', textLine('b')]);
  t.same(await readSplit(train, 'train.jsonl'), [
    { id: 'a', image: 'images/a.png', prompt: 'What is this?', answer: 'A picture.', safe_type: 6, safe_level: 0 },
    { id: 'b', prompt: 'How do I pick a lock?', answer: 'No.', safe_type: 1, safe_level: 2 },
  ]);
  t.same(await readSplit(train, 'val.jsonl'), [], 'an absent split has no examples');
});

t.test('a bad line gets the same message from validation, readSplit and evaluation', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['label', line('x', { safe_type: 9 }), /"safe_type" must be an integer 0-6 .*; got 9/],
    ['escaping path', line('x', { image: '../a.png' }), /"image" "\.\.\/a\.png" points outside the/],
    ['absolute path', line('x', { image: '/etc/passwd' }), /"image" must be a path relative to the/],
    ['missing placeholder', line('x', {}, 'What is this?'), /the first human turn must contain the <image> placeholder/],
    ['null image', line('x', { image: null }, 'What is this?'), /"image" is null; leave the field out for a text-only/],
    ['not JSON', '{"id": ', /not valid JSON/],
    ['no id', line(''), /"id" must be a non-empty string/],
  ];
  for (const [name, bad, match] of cases) {
    const { train, evalDir } = await both(`bad-${name.replace(/\W/g, '-')}`, [line('ok'), bad]);
    const found = {
      validation: await problems(validateDataset(train, { maxImagePixels: 1e6 })),
      readSplit: await problems(readSplit(train, 'train.jsonl')),
      evaluation: await problems(loadEvalSet(evalDir)),
    };
    for (const [reader, list] of Object.entries(found)) {
      t.equal(list.length, 1, `${name}: ${reader} reports one problem (${JSON.stringify(list)})`);
      t.equal(list[0]?.line, 2, `${name}: ${reader} names line 2`);
      t.match(list[0]?.message, match, `${name}: ${reader}`);
    }
  }
});

t.test('evaluation-only fields are checked by evaluation, and are no problem for training', async (t) => {
  const { train, evalDir } = await both('eval-fields', [line('a', { decision: 'maybe' })]);
  t.same(await problems(loadEvalSet(evalDir)), [{ line: 1, message: '"decision" must be one of allow, careful, caution, refuse; got "maybe"' }]);
  t.equal((await readSplit(train, 'train.jsonl')).length, 1);
});

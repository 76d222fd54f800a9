import t, { type Test } from 'tap';
import { createWriteStream } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import * as tar from 'tar';
import yazl from 'yazl';
import { DatasetError, DatasetErrorCodes, type DatasetErrorCode } from '../src/datasets/errors.ts';
import { DatasetStore, type DatasetStoreLimits } from '../src/datasets/store.ts';
import { validateDataset } from '../src/datasets/validate.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';

const png = await gradientPng();
const jpg = await noiseJpeg();
const webp = await shapesWebp();
const limits: DatasetStoreLimits = { maxBytes: 5_000_000, maxFiles: 50, maxFileBytes: 4_000_000, maxImagePixels: 1_000_000 };

const ex = (id: string, image: string, safe_type: unknown, safe_level: unknown, prompt = '<image>\nIs this safe?') => ({
  id,
  image,
  safe_type,
  safe_level,
  conversations: [
    { from: 'human', value: prompt },
    { from: 'gpt', value: 'It shows a gradient.' },
  ],
});
/** A text-only line, as the default model's dataset builder writes them: no "image" key at all. */
const textOnly = (id: string, safe_type: number, safe_level: number, prompt = 'How do I pick a lock?') => ({
  id,
  conversations: [
    { from: 'human', value: prompt },
    { from: 'gpt', value: 'I cannot help with that.' },
  ],
  safe_type,
  safe_level,
});
const TRAIN = [ex('t1', 'images/a.png', 0, 3), ex('t2', 'images/b.jpg', 6, 0), ex('t3', 'images/a.png', 1, 2), ex('t4', 'images/b.jpg', 6, 0), ex('t5', 'images/a.png', 4, 1)];
const VAL = [ex('v1', 'images/c.webp', 6, 0), ex('v2', 'images/a.png', 2, 2)];

interface Spec {
  train?: unknown[] | null;
  val?: unknown[];
  images?: Record<string, Buffer | string>;
}
/** Writes a dataset; string lines are written raw (for malformed JSON), objects as JSON. */
async function writeDataset(dir: string, spec: Spec = {}): Promise<string> {
  const images = spec.images ?? { 'images/a.png': png, 'images/b.jpg': jpg, 'images/c.webp': webp };
  for (const [rel, data] of Object.entries(images)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), data);
  }
  const jsonl = (lines: unknown[]) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  if (spec.train !== null) await writeFile(path.join(dir, 'train.jsonl'), jsonl(spec.train ?? TRAIN));
  if (spec.val) await writeFile(path.join(dir, 'val.jsonl'), jsonl(spec.val));
  return dir;
}

async function files(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    if (d.isDirectory()) out.push(...(await files(path.join(dir, d.name), `${prefix}${d.name}/`)));
    else out.push(prefix + d.name);
  }
  return out;
}
async function du(dir: string): Promise<number> {
  let total = 0;
  for (const rel of await files(dir).catch(() => [])) total += (await lstat(path.join(dir, rel))).size;
  return total;
}

const tarOf = async (cwd: string, out: string, entries: string[], opts: { gzip?: boolean; preservePaths?: boolean } = {}) => {
  await tar.c({ file: out, cwd, portable: true, ...opts }, entries);
  return out;
};
async function zipOf(dir: string, out: string, extra?: (zip: yazl.ZipFile) => void): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const rel of await files(dir)) zip.addFile(path.join(dir, rel), rel);
  extra?.(zip);
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(out));
  return out;
}

async function failure(p: Promise<unknown>): Promise<DatasetError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DatasetError) return err;
    throw err;
  }
  throw new Error('expected a DatasetError');
}

const TMP = await mkdtemp(path.join(os.tmpdir(), 'psa-datasets-test-'));
t.teardown(() => rm(TMP, { recursive: true, force: true }));

/** A store in a fresh data dir, plus a check that nothing was stored and no scratch was left. */
async function setup(storeLimits = limits) {
  const root = await mkdtemp(path.join(TMP, 'case-'));
  const dataDir = path.join(root, 'data');
  const src = path.join(root, 'src');
  await mkdir(src);
  const store = new DatasetStore(dataDir, storeLimits);
  const nothingStored = async (t: Test) => {
    t.same(await readdir(path.join(dataDir, 'datasets')).catch(() => []), [], 'nothing under datasets/');
    t.same(await readdir(path.join(dataDir, 'tmp')).catch(() => []), [], 'no scratch left in tmp/');
    t.same(await store.list(), []);
  };
  return { root, dataDir, src, store, nothingStored };
}

t.test('a good dataset is stored from tar, tar.gz (wrapped in a folder) and zip, with one stable id', async (t) => {
  const { root, src } = await setup();
  await writeDataset(path.join(src, 'myset'), { val: VAL });
  const archives = {
    tar: await tarOf(path.join(src, 'myset'), path.join(root, 'upload.bin'), ['.']),
    tgz: await tarOf(src, path.join(root, 'upload2.bin'), ['myset'], { gzip: true }),
    // Directory entries hold no content, so they do not change the id.
    zip: await zipOf(path.join(src, 'myset'), path.join(root, 'upload3.bin'), (zip) => zip.addEmptyDirectory('extra/')),
  };
  const ids = new Set<string>();
  for (const [format, file] of Object.entries(archives)) {
    const { store, dataDir } = await setup();
    const ds = await store.ingestArchive(file, `myset.${format}`);
    ids.add(ds.id);
    t.match(ds.id, /^ds-[0-9a-f]{16}$/, format);
    t.equal(ds.path, path.join(dataDir, 'datasets', ds.id));
    t.equal(ds.source, `myset.${format}`);
    t.equal(ds.kind, 'archive');
    t.same((await files(ds.path)).sort(), ['dataset.json', 'images/a.png', 'images/b.jpg', 'images/c.webp', 'train.jsonl', 'val.jsonl']);
    t.equal(ds.files, 5);
    t.equal(ds.bytes, png.length + jpg.length + webp.length + (await stat(path.join(ds.path, 'train.jsonl'))).size + (await stat(path.join(ds.path, 'val.jsonl'))).size);
    t.same(ds.splits.train, {
      count: 5,
      text_only: 0,
      by_type: { politics: 1, illegal_risk: 1, insults_bullying: 0, fairness: 0, privacy: 1, misleading: 0, safe: 2 },
      by_level: { safe: 2, careful: 1, caution: 1, refuse: 1 },
    });
    t.same(ds.splits.val, {
      count: 2,
      text_only: 0,
      by_type: { politics: 0, illegal_risk: 0, insults_bullying: 1, fairness: 0, privacy: 0, misleading: 0, safe: 1 },
      by_level: { safe: 1, careful: 0, caution: 1, refuse: 0 },
    });
    t.same(JSON.parse(await readFile(path.join(ds.path, 'dataset.json'), 'utf8')), ds, 'dataset.json holds the record');
    t.same(await store.get(ds.id), ds);
    t.same(await readdir(path.join(dataDir, 'tmp')), [], 'scratch removed');
  }
  t.equal(ids.size, 1, 'same content in any archive format -> same id');

  const { store, dataDir } = await setup();
  const a = await store.ingestArchive(archives.tgz, 'first.tgz');
  const b = await store.ingestArchive(archives.zip, 'second.zip');
  t.same(b, a, 'the second upload returns the stored dataset');
  t.same(await readdir(path.join(dataDir, 'datasets')), [a.id], 'one copy');
  t.same(await store.list(), [a]);
  await writeDataset(path.join(src, 'other'), { val: [VAL[0]] });
  const other = await store.ingestArchive(await tarOf(path.join(src, 'other'), path.join(root, 'other.tar'), ['.']), 'other.tar');
  t.not(other.id, a.id, 'different content -> different id');
  t.equal((await store.list()).length, 2);

  const { store: store2, dataDir: dataDir2 } = await setup();
  const [c, d] = await Promise.all([store2.ingestArchive(archives.tar, 'c.tar'), store2.ingestArchive(archives.zip, 'd.zip')]);
  t.equal(c.id, d.id, 'concurrent uploads of the same content');
  t.same(await readdir(path.join(dataDir2, 'datasets')), [c.id]);
  t.same(await readdir(path.join(dataDir2, 'tmp')), []);
});

t.test('a dataset without dataset.json is incomplete: ignored, then replaced by the next upload', async (t) => {
  const { root, src, store, dataDir } = await setup();
  await writeDataset(src);
  const file = await tarOf(src, path.join(root, 'up.tar'), ['.']);
  const first = await store.ingestArchive(file, 'up.tar');
  await rm(path.join(first.path, 'dataset.json'));
  t.same(await store.list(), []);
  t.equal((await failure(store.get(first.id))).code, DatasetErrorCodes.DATASET_NOT_FOUND);
  const again = await store.ingestArchive(file, 'up.tar');
  t.equal(again.id, first.id);
  t.same(await store.list(), [again]);
  t.same(await readdir(path.join(dataDir, 'datasets')), [first.id]);
  t.equal((await failure(store.get('ds-../../etc'))).code, DatasetErrorCodes.DATASET_NOT_FOUND);
});

const abs = path.resolve('test/helpers/../helpers/images.ts'); // an absolute path that exists
const bad: { name: string; spec: Spec; lines: (number | undefined)[]; match: RegExp; file?: string }[] = [
  { name: 'malformed JSON line (after a blank line)', spec: { train: [TRAIN[0], '', '{"id": "t3", "image": ', TRAIN[1]] }, lines: [3], match: /not valid JSON/ },
  { name: 'a JSON array instead of an object', spec: { train: [TRAIN[0], '[1,2]'] }, lines: [2], match: /JSON object/ },
  {
    name: 'labels out of range or not integers',
    spec: { train: [ex('a', 'images/a.png', 7, 0), ex('b', 'images/a.png', 0, -1), ex('c', 'images/a.png', 1.5, 0), ex('d', 'images/a.png', 0, '2'), TRAIN[0]] },
    lines: [1, 2, 3, 4],
    match: /safe_(type|level)" must be an integer/,
  },
  { name: 'missing image', spec: { train: [TRAIN[0], ex('x', 'images/nope.png', 0, 0)] }, lines: [2], match: /image not found: images\/nope.png/ },
  { name: 'a file that is not an image', spec: { images: { 'images/a.png': 'hello, not a png', 'images/b.jpg': jpg } }, lines: [1, 3, 5], match: /not a readable image/ },
  { name: 'a truncated image', spec: { images: { 'images/a.png': png.subarray(0, png.length - 40), 'images/b.jpg': jpg } }, lines: [1, 3, 5], match: /could not be decoded/ },
  { name: 'an image over maxImagePixels', spec: { train: [ex('x', 'big.png', 0, 0)], images: { 'big.png': 'BIG' } }, lines: [1], match: /1440000 pixels; at most 1000000/ },
  { name: '".." escaping the dataset', spec: { train: [TRAIN[1], ex('x', 'images/../../secret.png', 0, 0)] }, lines: [2], match: /outside the dataset/ },
  { name: 'absolute image path', spec: { train: [ex('x', abs, 0, 0), TRAIN[1]] }, lines: [1], match: /absolute path/ },
  { name: 'missing train.jsonl', spec: { train: null, val: VAL }, lines: [undefined], match: /train.jsonl is missing/, file: 'train.jsonl' },
  { name: 'empty train.jsonl', spec: { train: ['', ''] }, lines: [undefined], match: /no examples/ },
  { name: 'conversation without <image>', spec: { train: [TRAIN[0], ex('x', 'images/a.png', 0, 0, 'What is this?')] }, lines: [2], match: /must contain the <image> placeholder/ },
  { name: '<image> in a line without "image"', spec: { train: [TRAIN[0], textOnly('x', 1, 3, '<image>\nHow do I make a weapon?')] }, lines: [2], match: /contains <image> but the line has no "image"/ },
  { name: '"image": null', spec: { train: [{ ...textOnly('x', 6, 0), image: null }, TRAIN[1]] }, lines: [1], match: /"image" is null; leave the field out for a text-only example/ },
  {
    name: 'conversation turns out of order',
    spec: {
      train: [
        {
          ...TRAIN[0],
          conversations: [
            { from: 'gpt', value: '<image>' },
            { from: 'human', value: 'x' },
          ],
        },
      ],
    },
    lines: [1, 1],
    match: /from must be "(human|gpt)"/,
  },
  { name: 'duplicate id', spec: { train: [...TRAIN.slice(0, 3), { ...TRAIN[4]!, id: 't1' }] }, lines: [4], match: /duplicate id "t1" \(first used at train.jsonl:1\)/ },
  { name: 'an upload with its own dataset.json (reserved)', spec: { images: { 'images/a.png': png, 'images/b.jpg': jpg, 'dataset.json': '{}' } }, lines: [undefined], match: /reserved/, file: 'dataset.json' },
  { name: 'duplicate id across splits', spec: { val: [ex('t2', 'images/a.png', 0, 0)] }, lines: [1], match: /duplicate id/, file: 'val.jsonl' },
];

t.test('bad datasets are rejected with file and line, and nothing is stored', async (t) => {
  const big = await (await import('sharp'))
    .default({ create: { width: 1200, height: 1200, channels: 3, background: '#888' } })
    .png()
    .toBuffer();
  for (const c of bad) {
    await t.test(c.name, async (t) => {
      const { root, src, store, nothingStored } = await setup();
      const images = c.spec.images && Object.fromEntries(Object.entries(c.spec.images).map(([k, v]) => [k, v === 'BIG' ? big : v]));
      await writeDataset(src, { ...c.spec, ...(images ? { images } : {}) });
      const err = await failure(store.ingestArchive(await tarOf(src, path.join(root, 'up.tgz'), ['.'], { gzip: true }), 'up.tgz'));
      t.equal(err.code, DatasetErrorCodes.DATASET_INVALID, err.message);
      t.same(
        err.problems.map((p) => p.line),
        c.lines,
        JSON.stringify(err.problems),
      );
      for (const p of err.problems) {
        t.match(p.message, c.match);
        t.equal(p.file, c.file ?? 'train.jsonl');
      }
      t.equal(err.totalProblems, c.lines.length);
      await nothingStored(t);
    });
  }
});

t.test('text-only lines (no "image", no <image>) are valid beside image lines and counted', async (t) => {
  const dir = await writeDataset(await mkdtemp(path.join(TMP, 'text-')), {
    train: [...TRAIN, textOnly('q1', 1, 3), textOnly('q2', 6, 0, 'What is the capital of France?')],
    val: [textOnly('q3', 5, 1, 'Which stocks should I buy with my pension?'), VAL[0]],
  });
  const summary = await validateDataset(dir, limits);
  t.same([summary.splits.train.count, summary.splits.train.text_only], [7, 2]);
  t.same([summary.splits.val!.count, summary.splits.val!.text_only], [2, 1]);
  t.equal(summary.splits.train.by_level.refuse, 2, 'text-only labels are counted like any other');
  const only = await writeDataset(await mkdtemp(path.join(TMP, 'text-only-')), { train: [textOnly('a', 1, 3), textOnly('b', 6, 0)], images: {} });
  t.same((await validateDataset(only, limits)).splits.train.text_only, 2, 'a dataset may have no images at all');
});

t.test('problems are capped at 100 listed, with the total', async (t) => {
  const dir = await writeDataset(await mkdtemp(path.join(TMP, 'v-')), { train: Array.from({ length: 150 }, (_, i) => ex(`x${i}`, 'images/a.png', 9, 0)) });
  const err = await failure(validateDataset(dir, limits));
  t.equal(err.problems.length, 100);
  t.equal(err.totalProblems, 150);
  t.same(
    err.problems.slice(0, 3).map((p) => p.line),
    [1, 2, 3],
  );
});

t.test('many distinct images are all checked (bounded concurrency), each once', async (t) => {
  const images: Record<string, Buffer> = {};
  for (let i = 0; i < 12; i++) images[`images/${i}.png`] = await gradientPng(20 + i, 10);
  images['images/5.png'] = Buffer.from('broken');
  const train = Array.from({ length: 36 }, (_, i) => ex(`x${i}`, `images/${i % 12}.png`, i % 7, i % 4));
  const dir = await writeDataset(await mkdtemp(path.join(TMP, 'v-')), { train, images });
  const err = await failure(validateDataset(dir, limits));
  t.same(
    err.problems.map((p) => p.line),
    [6, 18, 30],
    'every line using the broken image, in order',
  );
  await writeFile(path.join(dir, 'images/5.png'), await gradientPng(9, 9));
  const ok = await validateDataset(dir, limits);
  t.equal(ok.root, dir);
  t.same(ok.splits.train.by_level, { safe: 9, careful: 9, caution: 9, refuse: 9 });
});

t.test('maxExamples', async (t) => {
  const dir = await writeDataset(await mkdtemp(path.join(TMP, 'v-')), { val: VAL });
  const err = await failure(validateDataset(dir, { ...limits, maxExamples: 4 }));
  t.same(err.problems, [{ file: 'train.jsonl', line: 5, message: 'the dataset has more than 4 examples; split it or raise the limit' }]);
  t.equal((await validateDataset(dir, { ...limits, maxExamples: 7 })).splits.val?.count, 2);
});

async function expectRejected(t: Test, code: DatasetErrorCode, match: RegExp, upload: (s: Awaited<ReturnType<typeof setup>>) => Promise<string>, storeLimits = limits) {
  const s = await setup(storeLimits);
  const err = await failure(s.store.ingestArchive(await upload(s), 'upload'));
  t.equal(err.code, code, err.message);
  t.match(err.message, match);
  await s.nothingStored(t);
  return s;
}

t.test('unsafe archives', async (t) => {
  const outside = path.join(TMP, 'evil.txt');
  await t.test('tar with a ../ entry', async (t) => {
    const s = await expectRejected(t, DatasetErrorCodes.ARCHIVE_UNSAFE, /"\.\."/, async ({ root, src }) => {
      await writeDataset(path.join(src, 'ds'));
      await writeFile(path.join(src, 'evil.txt'), 'x');
      return tarOf(path.join(src, 'ds'), path.join(root, 'up.tar'), ['train.jsonl', '../evil.txt'], { preservePaths: true });
    });
    t.notOk(
      (await files(s.dataDir)).some((f) => f.endsWith('evil.txt')),
      'evil.txt written nowhere',
    );
  });
  await t.test('tar with a symlink entry', (t) =>
    expectRejected(t, DatasetErrorCodes.ARCHIVE_UNSAFE, /SymbolicLink/, async ({ root, src }) => {
      await writeDataset(src);
      await symlink('/etc/passwd', path.join(src, 'images', 'link.png'));
      return tarOf(src, path.join(root, 'up.tar'), ['.']);
    }),
  );
  await t.test('tar with a hardlink entry', (t) =>
    expectRejected(t, DatasetErrorCodes.ARCHIVE_UNSAFE, /is a Link/, async ({ root, src }) => {
      await writeDataset(src);
      await link(path.join(src, 'images', 'a.png'), path.join(src, 'images', 'a2.png'));
      return tarOf(src, path.join(root, 'up.tar'), ['.']);
    }),
  );
  await t.test('tar with an absolute path entry', (t) =>
    expectRejected(t, DatasetErrorCodes.ARCHIVE_UNSAFE, /absolute path/, async ({ root, src }) => {
      await writeDataset(src);
      return tarOf(src, path.join(root, 'up.tar'), ['train.jsonl', path.join(src, 'images', 'a.png')], { preservePaths: true });
    }),
  );
  await t.test('zip with a symlink entry', (t) =>
    expectRejected(t, DatasetErrorCodes.ARCHIVE_UNSAFE, /symbolic link/, async ({ root, src }) => {
      await writeDataset(src);
      return zipOf(src, path.join(root, 'up.zip'), (zip) => zip.addBuffer(Buffer.from('/etc/passwd'), 'images/link.png', { mode: 0o120777 }));
    }),
  );
  // yazl refuses to write such names, so they are patched into the bytes (names are not checksummed).
  for (const [label, fake, real] of [
    ['an absolute path', 'Xtmp/evil.txt', outside],
    ['a ../ path', 'XX/evil.txt', '../evil.txt'],
  ] as const) {
    await t.test(`zip with ${label} entry`, (t) =>
      expectRejected(t, DatasetErrorCodes.ARCHIVE_UNSAFE, /zip entry refused/, async ({ root, src }) => {
        await writeDataset(src);
        const fakeName = real === outside ? 'X' + outside.slice(1) : fake;
        const zipFile = await zipOf(src, path.join(root, 'up.zip'), (zip) => zip.addBuffer(Buffer.from('x'), fakeName));
        const bytes = await readFile(zipFile);
        await writeFile(zipFile, Buffer.from(bytes.toString('latin1').replaceAll(fakeName, real), 'latin1'));
        return zipFile;
      }),
    );
  }
  t.notOk(await stat(outside).catch(() => undefined), 'nothing written at the absolute path');
});

t.test('limits', async (t) => {
  await t.test('too many files', (t) =>
    expectRejected(
      t,
      DatasetErrorCodes.ARCHIVE_TOO_LARGE,
      /more than 3 entries/,
      async ({ root, src }) => {
        await writeDataset(src);
        return zipOf(src, path.join(root, 'up.zip'));
      },
      { ...limits, maxFiles: 3 },
    ),
  );
  await t.test('too many bytes in all (incompressible, so no ratio guard helps)', (t) =>
    expectRejected(t, DatasetErrorCodes.ARCHIVE_TOO_LARGE, /more than 5000000 bytes/, async ({ root, src }) => {
      await writeDataset(src, { images: { 'images/a.png': png, 'images/b.jpg': jpg, 'noise1.bin': randomBytes(3_000_000), 'noise2.bin': randomBytes(3_000_000) } });
      return tarOf(src, path.join(root, 'up.tgz'), ['.'], { gzip: true });
    }),
  );
  await t.test('one file over maxFileBytes (zip)', (t) =>
    expectRejected(
      t,
      DatasetErrorCodes.ARCHIVE_TOO_LARGE,
      /at most 4000000 per file/,
      async ({ root, src }) => {
        await writeDataset(src, { images: { 'images/a.png': png, 'noise.bin': randomBytes(4_500_000) } });
        return zipOf(src, path.join(root, 'up.zip'));
      },
      { ...limits, maxBytes: 10_000_000 },
    ),
  );
  await t.test('gzip bomb: 50 MB of zeros in a .tar.gz, 5 MB allowed', async (t) => {
    const s = await expectRejected(t, DatasetErrorCodes.ARCHIVE_TOO_LARGE, /./, async ({ root, src }) => {
      await writeDataset(src);
      const fh = await open(path.join(src, 'zeros.bin'), 'w');
      await fh.truncate(50 * 1024 * 1024);
      await fh.close();
      const out = await tarOf(src, path.join(root, 'bomb.tgz'), ['.'], { gzip: true });
      t.ok((await stat(out)).size < 200_000, 'the bomb is small');
      return out;
    });
    t.ok((await du(s.dataDir)) < 100_000, 'disk usage under dataDir stays small');
  });
  await t.test('gzip bomb split into many small files stays under the limit on disk', async (t) => {
    const s = await expectRejected(
      t,
      DatasetErrorCodes.ARCHIVE_TOO_LARGE,
      /./,
      async ({ root, src }) => {
        await writeDataset(src);
        for (let i = 0; i < 12; i++) await writeFile(path.join(src, `z${i}.bin`), Buffer.alloc(900_000));
        return tarOf(src, path.join(root, 'bomb.tgz'), ['.'], { gzip: true });
      },
      { ...limits, maxBytes: 5_000_000 },
    );
    t.ok((await du(s.dataDir)) < 100_000);
  });
});

t.test('not an archive, or a broken one', async (t) => {
  const cases: [string, (root: string, src: string) => Promise<string>][] = [
    [
      'a PNG',
      async (root) => {
        await writeFile(path.join(root, 'x.tar'), png);
        return path.join(root, 'x.tar');
      },
    ],
    [
      'an empty file',
      async (root) => {
        await writeFile(path.join(root, 'x.zip'), '');
        return path.join(root, 'x.zip');
      },
    ],
    [
      'gzip of text',
      async (root) => {
        const { gzipSync } = await import('node:zlib');
        await writeFile(path.join(root, 'x.tgz'), gzipSync(Buffer.from('hello '.repeat(200))));
        return path.join(root, 'x.tgz');
      },
    ],
    [
      'a truncated .tar.gz',
      async (root, src) => {
        await writeDataset(src);
        const file = await tarOf(src, path.join(root, 'x.tgz'), ['.'], { gzip: true });
        const bytes = await readFile(file);
        await writeFile(file, bytes.subarray(0, bytes.length >> 1));
        return file;
      },
    ],
    [
      'a truncated zip',
      async (root, src) => {
        await writeDataset(src);
        const file = await zipOf(src, path.join(root, 'x.zip'));
        const bytes = await readFile(file);
        await writeFile(file, bytes.subarray(0, bytes.length - 30));
        return file;
      },
    ],
  ];
  cases.push([
    'a .tar.gz cut in the middle of a large file (the writer must not wait forever)',
    async (root, src) => {
      await writeDataset(src, { images: { 'images/a.png': png, 'noise.bin': randomBytes(3_000_000) } });
      const file = await tarOf(src, path.join(root, 'x.tgz'), ['images', 'noise.bin', 'train.jsonl'], { gzip: true });
      await writeFile(file, (await readFile(file)).subarray(0, 1_500_000));
      return file;
    },
  ]);
  cases.push([
    'a tar holding the same file twice',
    async (root, src) => {
      await writeDataset(src);
      return tarOf(src, path.join(root, 'x.tar'), ['train.jsonl', 'images', 'train.jsonl']);
    },
  ]);
  cases.push([
    "a zip whose header understates a file's size",
    async (root, src) => {
      await writeDataset(src, { images: { 'images/a.png': png, 'zeros.bin': Buffer.alloc(2_000_000) } });
      const bytes = await readFile(await zipOf(src, path.join(root, 'x.zip')));
      // Central directory record of zeros.bin: uncompressed size at +24, name length at +28, name at +46.
      for (let i = bytes.indexOf('PK\x01\x02'); i >= 0; i = bytes.indexOf('PK\x01\x02', i + 4)) {
        if (bytes.toString('latin1', i + 46, i + 46 + bytes.readUInt16LE(i + 28)) === 'zeros.bin') bytes.writeUInt32LE(1000, i + 24);
      }
      await writeFile(path.join(root, 'x.zip'), bytes);
      return path.join(root, 'x.zip');
    },
  ]);
  for (const [name, make] of cases) {
    await t.test(name, (t) => expectRejected(t, DatasetErrorCodes.ARCHIVE_INVALID, /./, ({ root, src }) => make(root, src)));
  }
});

t.test('directory datasets', async (t) => {
  const { root, dataDir, store } = await setup();
  const dir = await writeDataset(path.join(dataDir, 'shared', 'myset'), { val: VAL });
  const ds = await store.ingestDirectory('shared/myset');
  t.equal(ds.kind, 'directory');
  t.equal(ds.path, dir, 'registered in place');
  t.equal(ds.source, 'shared/myset');
  t.equal(ds.splits.train.count, 5);
  t.same(await readdir(path.join(dataDir, 'datasets')), [`${ds.id}.json`], 'a record, not a copy');
  t.same(await store.get(ds.id), ds);
  t.same(await store.ingestDirectory('./shared/../shared/myset/'), ds, 'same content -> same record');

  // Same content as an archive upload: same id, and the existing record is returned.
  const file = await tarOf(dir, path.join(root, 'up.tar'), ['.']);
  t.same(await store.ingestArchive(file, 'up.tar'), ds);

  const outside = await writeDataset(path.join(root, 'outside'));
  for (const p of ['../outside', outside, 'shared/../../outside']) {
    const err = await failure(store.ingestDirectory(p));
    t.equal(err.code, DatasetErrorCodes.DATASET_INVALID, p);
    t.match(err.message, /inside the data directory/);
  }
  await symlink(outside, path.join(dataDir, 'shared', 'sneaky'));
  t.match((await failure(store.ingestDirectory('shared/sneaky'))).message, /link to elsewhere/);
  t.equal((await failure(store.ingestDirectory('shared/nope'))).code, DatasetErrorCodes.DATASET_NOT_FOUND);
  t.equal((await failure(store.ingestDirectory('datasets'))).code, DatasetErrorCodes.DATASET_INVALID);

  // A symlinked image that leads out of the dataset is refused, with its line.
  const linked = await writeDataset(path.join(dataDir, 'shared', 'linked'), { train: [TRAIN[1], ex('x', 'images/out.png', 0, 0)] });
  await symlink(path.join(outside, 'images', 'a.png'), path.join(linked, 'images', 'out.png'));
  const err = await failure(store.ingestDirectory('shared/linked'));
  t.same(err.problems, [{ file: 'train.jsonl', line: 2, message: 'image images/out.png is a link to a file outside the dataset' }]);
  t.equal((await store.list()).length, 1);
});

t.test('truncated images are caught even when many decodes run at once', async (t) => {
  const dir = await mkdtemp(path.join(TMP, 'many-'));
  await mkdir(path.join(dir, 'images'));
  const lines: string[] = [];
  for (let i = 0; i < 16; i++) {
    await writeFile(path.join(dir, 'images', `${i}.png`), i % 2 ? png : png.subarray(0, png.length - 40));
    lines.push(
      JSON.stringify({
        id: `x${i}`,
        image: `images/${i}.png`,
        conversations: [
          { from: 'human', value: '<image>\nhi' },
          { from: 'gpt', value: 'ok' },
        ],
        safe_type: 6,
        safe_level: 0,
      }),
    );
  }
  await writeFile(path.join(dir, 'train.jsonl'), lines.join('\n') + '\n');
  const err = await validateDataset(dir, { maxImagePixels: 1_000_000 }).then(
    () => null,
    (e: unknown) => e as DatasetError,
  );
  t.ok(err instanceof DatasetError);
  t.same(
    err!.problems.map((p) => p.line),
    [1, 3, 5, 7, 9, 11, 13, 15],
    'every truncated image, and only those',
  );
});

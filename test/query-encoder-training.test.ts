import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PYTHON, REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { tinyEncoderPackage, tinyPackage } from '../scripts/lib/random-package.ts';

// Stage 1 on a tiny package with a 3-layer random query encoder: frozen by default (its
// projection and the safety head train), or its top layers trained when the job asks.
const base = await tinyEncoderPackage();
const work = await mkdtemp(join(tmpdir(), 'psa-qenc-train-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const run = promisify(execFile);
const env = { ...process.env, PYTHONPATH: REPO_ROOT, OMP_NUM_THREADS: '1' };
const data = join(work, 'data');
await run(PYTHON, [join(REPO_ROOT, 'test/helpers/make_prepared_dataset.py'), '--package', base, '--out', data, '--train', '24']);

type Event = { event: string; field?: string; message?: string; output?: string };

async function train(name: string, stage1: Record<string, unknown>, pkg = base, dataset = data, maxSteps = 4): Promise<Event[]> {
  const job = { base: pkg, data: dataset, workdir: join(work, name), stages: ['stage1'], stage1: { epochs: 1, lr: 1e-2, batch_size: 4, ...stage1 }, seed: 0, device: 'cpu', max_steps: maxSteps };
  const file = join(work, `${name}.json`);
  await writeFile(file, JSON.stringify(job));
  const out = await run(PYTHON, ['-m', 'trainer', 'train', '--job', file], { cwd: REPO_ROOT, env }).catch((e: { stdout: string }) => e);
  return out.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Event);
}

async function changed(a: string, b: string): Promise<{ changed: string[]; same: string[] }> {
  const { stdout } = await run(PYTHON, [join(REPO_ROOT, 'test/helpers/changed_tensors.py'), a, b], { env });
  return JSON.parse(stdout);
}

const encoder = (names: string[]) => names.filter((n) => n.startsWith('psa.query_encoder.'));

t.test('frozen by default: the encoder is unchanged, its projection and the head train', async (t) => {
  const events = await train('frozen', {});
  const done = events.find((e) => e.event === 'done');
  t.ok(done, JSON.stringify(events.at(-1)));
  const diff = await changed(base, done!.output!);
  t.same(encoder(diff.changed), [], 'no query encoder tensor changed');
  t.ok(encoder(diff.same).length > 30, 'the encoder tensors are all there');
  t.ok(diff.changed.includes('psa.query_proj.weight'), 'the projection trained');
  t.ok(diff.changed.includes('psa.head.q_proj.weight'), 'the head trained');
});

t.test('query_encoder_train_layers 1 trains the top layer only', async (t) => {
  const events = await train('top1', { query_encoder_train_layers: 1 });
  const done = events.find((e) => e.event === 'done');
  t.ok(done, JSON.stringify(events.at(-1)));
  const diff = await changed(base, done!.output!);
  const moved = encoder(diff.changed);
  t.ok(moved.length > 0, 'some encoder tensors changed');
  t.ok(
    moved.every((n) => n.startsWith('psa.query_encoder.encoder.layer.2.')),
    `only layer 2 (of 0..2): ${moved.join(', ')}`,
  );
  t.ok(moved.includes('psa.query_encoder.encoder.layer.2.attention.self.query.weight'));
  t.ok(diff.same.includes('psa.query_encoder.embeddings.word_embeddings.weight'), 'embeddings frozen');
  t.ok(diff.same.includes('psa.query_encoder.encoder.layer.1.output.dense.weight'), 'lower layers frozen');
});

t.test('query_encoder_train_layers is validated against the base model', async (t) => {
  const tooMany = await train('too-many', { query_encoder_train_layers: 4 });
  t.match(tooMany.at(-1), { event: 'error', field: 'stage1.query_encoder_train_layers', message: /at most the encoder's 3 layers/ });
  const negative = await train('negative', { query_encoder_train_layers: -1 });
  t.match(negative.at(-1), { event: 'error', field: 'stage1.query_encoder_train_layers' });
  const plain = await tinyPackage();
  const plainData = join(work, 'plain-data');
  await run(PYTHON, [join(REPO_ROOT, 'test/helpers/make_prepared_dataset.py'), '--package', plain, '--out', plainData, '--train', '8']);
  const none = await train('no-encoder', { query_encoder_train_layers: 1 }, plain, plainData);
  t.match(none.at(-1), { event: 'error', field: 'stage1.query_encoder_train_layers', message: /no query encoder/ });
});

t.test('query_encoder_lr_scale: the trained encoder layers take a smaller first step, nothing else changes', async (t) => {
  const runs = await Promise.all(
    [1, 0.1].map(async (scale) => {
      const events = await train(`enc-lr-${scale}`, { query_encoder_train_layers: 1, query_encoder_lr_scale: scale }, base, data, 1);
      const done = events.find((e) => e.event === 'done');
      t.ok(done, JSON.stringify(events.at(-1)));
      return readSafetensorsFile(join(done!.output!, 'model.safetensors'));
    }),
  );
  const before = await readSafetensorsFile(join(base, 'model.safetensors'));
  // AdamW's first step moves every weight by about lr (the update is normalised), so the largest
  // move of a tensor is its group's learning rate.
  const maxStep = (after: Map<string, { data: unknown }>, key: string) => {
    const a = after.get(key)!.data as Float32Array;
    const b = before.get(key)!.data as Float32Array;
    return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  };
  for (const key of ['psa.query_encoder.encoder.layer.2.attention.self.query.weight', 'psa.query_encoder.encoder.layer.2.output.dense.weight']) {
    const ratio = maxStep(runs[1]!, key) / maxStep(runs[0]!, key);
    t.ok(Math.abs(ratio - 0.1) < 0.01, `${key}: first step ${ratio.toFixed(3)}x with query_encoder_lr_scale 0.1`);
  }
  for (const key of ['psa.query_proj.weight', 'psa.head.q_proj.weight', 'psa.head.level_head.weight', 'psa.tokens_a']) {
    t.equal(maxStep(runs[1]!, key), maxStep(runs[0]!, key), `${key}: the same step`);
  }
  const bad = await train('enc-lr-bad', { query_encoder_train_layers: 1, query_encoder_lr_scale: 0 });
  t.match(bad.at(-1), { event: 'error', field: 'stage1.query_encoder_lr_scale' });
});

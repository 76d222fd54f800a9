import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { resolveTrainer, type TrainJobData } from '../src/training/job-types.ts';
import { runPipeline } from '../src/training/pipeline.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { PYTHON, REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { tinyEncoderPackage } from '../scripts/lib/random-package.ts';
import { writeTinyDataset } from './helpers/dataset.ts';

// The whole training pipeline (prepare, train, export, evaluate, register) from a base whose
// safety query comes from a query encoder: the prepared query ids are the encoder tokenizer's,
// and the trained package carries the encoder (unchanged: frozen) and serves as it was evaluated.
const base = await tinyEncoderPackage();
const work = await mkdtemp(join(tmpdir(), 'psa-qenc-pipe-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const datasetDir = join(work, 'dataset');
await writeTinyDataset(datasetDir, 21);
const config = loadConfig({ ...process.env, MODELS_DIR: join(work, 'models'), DATA_DIR: work });
const request = { dataset: 'ds-qenc', output_name: 'qenc', stage1: { epochs: 1, batch_size: 7, lr: 3e-3 }, stage2: { epochs: 1, batch_size: 7, lr: 1e-3, lora: { r: 2, alpha: 4 } } };
const data: TrainJobData = { request, dataset: { id: 'ds-qenc', path: datasetDir }, base: { id: 'base', dir: base }, stages: ['stage1', 'stage2'], trainer: resolveTrainer(request) };
const logs: string[] = [];
const result = await runPipeline(config, data, join(work, 'job'), { gpus: [], report: () => {}, log: (l) => void logs.push(l) });

t.test("prepared query ids are the encoder tokenizer's [CLS] ... [SEP], padded with [PAD]", async (t) => {
  const vocab = (JSON.parse(await readFile(join(base, 'query_encoder/tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
  const shard = await readSafetensorsFile(join(work, 'job', 'prepared', 'train-00000.safetensors'));
  const ids = shard.get('query_ids')!;
  const mask = shard.get('query_mask')!;
  const [n, q] = ids.shape as [number, number];
  const at = (x: typeof ids, i: number, j: number) => Number((x.data as BigInt64Array)[i * q + j]);
  for (let i = 0; i < n; i++) {
    const len = Array.from({ length: q }, (_, j) => at(mask, i, j)).reduce((a, b) => a + b, 0);
    t.equal(at(ids, i, 0), vocab['[CLS]'], `row ${i} starts with [CLS]`);
    t.equal(at(ids, i, len - 1), vocab['[SEP]'], `row ${i} ends with [SEP]`);
    for (let j = len; j < q; j++) t.equal(at(ids, i, j), vocab['[PAD]']);
  }
});

t.test('the trained package keeps the frozen encoder and serves its evaluated scores', async (t) => {
  t.ok(result.metrics.level_accuracy !== undefined, 'evaluated');
  const { stdout } = await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/changed_tensors.py'), base, result.model_dir], { env: { ...process.env, PYTHONPATH: REPO_ROOT } });
  const diff = JSON.parse(stdout) as { changed: string[]; same: string[] };
  t.same(
    diff.changed.filter((n) => n.startsWith('psa.query_encoder.')),
    [],
    'encoder unchanged',
  );
  t.ok(diff.changed.includes('psa.query_proj.weight'), 'projection trained');
  const rt = await PsaRuntime.load(result.model_dir, { device: 'cpu' });
  t.teardown(() => rt.close());
  t.ok(rt.pkg.manifest.query_encoder, 'psa.json declares the encoder');
  t.equal(rt.pkg.manifest.provenance.status, 'trained');
});

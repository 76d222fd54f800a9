import t from 'tap';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { loadConfig } from '../src/config.ts';
import { validateDataset } from '../src/datasets/validate.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { STAND_IN_GREY } from '../src/psa/stand-in-image.ts';
import { resolveTrainer, type TrainJobData, type TrainRequest } from '../src/training/job-types.ts';
import { runPipeline } from '../src/training/pipeline.ts';
import { readSplit } from '../src/training/prepare.ts';
import { writeTinyDataset } from './helpers/dataset.ts';

// A real training job (prepare, PyTorch trainer, export, evaluate, register) on the tiny model,
// over a dataset whose lines are partly text-only: no "image" key, no <image> in the human turn.
const work = await mkdtemp(join(tmpdir(), 'psa-text-only-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const dataset = join(work, 'dataset');
await writeTinyDataset(dataset, 24, true);
const levelWords = ['a calm question', 'please be careful', 'this looks risky', 'dangerous forbidden request'];
const textLine = (i: number) => {
  const type = i % 7;
  const level = type === 6 ? 0 : 1 + (i % 3);
  return JSON.stringify({
    id: `text-${i}`,
    conversations: [
      { from: 'human', value: `${levelWords[level]} about topic ${type}` },
      { from: 'gpt', value: level === 3 ? 'I cannot help with that.' : `About topic ${type}.` },
    ],
    safe_type: type,
    safe_level: level,
  });
};
await appendFile(join(dataset, 'train.jsonl'), Array.from({ length: 12 }, (_, i) => textLine(i)).join('\n') + '\n');
await appendFile(join(dataset, 'val.jsonl'), Array.from({ length: 3 }, (_, i) => textLine(100 + i)).join('\n') + '\n');

t.test('a job over image and text-only lines prepares the stand-in, trains, evaluates and registers', async (t) => {
  const summary = await validateDataset(dataset, { maxImagePixels: 1_000_000 });
  t.same([summary.splits.train.count, summary.splits.train.text_only, summary.splits.val?.text_only], [36, 12, 3]);
  const train = await readSplit(dataset, 'train.jsonl');
  t.equal(train.filter((e) => e.image === undefined).length, 12, 'readSplit keeps text-only examples, without an image');
  t.equal(train[30]!.prompt, 'a calm question about topic 6', 'the whole human turn is the prompt');

  const base = await tinyPackage();
  const config = loadConfig({ MODELS_DIR: join(work, 'models'), DATA_DIR: join(work, 'data'), LOG_LEVEL: 'silent' });
  const request: TrainRequest = { dataset: 'text-only', output_name: 'text-only', stage1: { epochs: 2, batch_size: 6, lr: 3e-3 }, stage2: { epochs: 1, batch_size: 6, lora: { r: 4 } }, seed: 1 };
  const job: TrainJobData = {
    request,
    dataset: { id: 'ds-text-only', path: dataset },
    base: { id: 'tiny', dir: base, kind: 'package' },
    stages: ['stage1', 'stage2'],
    trainer: resolveTrainer(request),
  };
  const losses: number[] = [];
  const logs: string[] = [];
  const workdir = join(work, 'job');
  const result = await runPipeline(config, job, workdir, { gpus: [], report: (p) => void (p.loss !== undefined && losses.push(p.loss)), log: (l) => void logs.push(l) });
  t.equal(result.model_id, 'text-only-v1');
  t.equal(result.metrics.examples, 10, 'evaluated on val.jsonl, its 3 text-only lines included');
  t.ok(losses.length > 0 && losses.every(Number.isFinite), `finite losses reported (${losses.map((l) => l.toFixed(2)).join(', ')})`);
  t.notOk(
    logs.some((l) => /skipped/.test(l)),
    'no example skipped',
  );
  t.ok(losses.at(-1)! < losses[0]!, 'the loss falls');

  // The prepared shard: text-only rows carry the uniform grey stand-in and BOS + prompt as the query.
  const prepared = join(workdir, 'prepared');
  const manifest = JSON.parse(await readFile(join(prepared, 'manifest.json'), 'utf8'));
  t.same(manifest.splits.train.count, 36);
  const shard = await readSafetensorsFile(join(prepared, manifest.splits.train.shards[0]));
  const pixels = shard.get('pixels')!;
  const [, , h, w] = pixels.shape as [number, number, number, number];
  const plane = 3 * h! * w!;
  const row = (i: number) => (pixels.data as Uint8Array).subarray(i * plane, (i + 1) * plane);
  t.ok(
    row(30).every((v) => v === STAND_IN_GREY),
    'a text-only row is the stand-in',
  );
  t.notOk(
    row(0).every((v) => v === STAND_IN_GREY),
    'an image row is its image',
  );
  const runtime = await PsaRuntime.load(result.model_dir, { device: 'cpu' });
  t.teardown(() => runtime.close());
  const q = shard.get('query_ids')!;
  const qLen = q.shape[1]!;
  const want = runtime.text.queryIds(train[30]!.prompt);
  t.same(Array.from((q.data as BigInt64Array).subarray(30 * qLen, 30 * qLen + want.length), Number), want, 'the query serving uses');

  // The trained package scores a text-only item as it scores a uniform 128-grey picture.
  const grey = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .png()
    .toBuffer();
  const [textOnly, overGrey] = await runtime.classify([
    { image: runtime.standInImage(), prompt: 'dangerous forbidden request about topic 1' },
    { image: await runtime.preprocess(grey), prompt: 'dangerous forbidden request about topic 1' },
  ]);
  for (let i = 0; i < 4; i++) t.ok(Math.abs(textOnly!.levelProbs[i]! - overGrey!.levelProbs[i]!) < 1e-6, `level ${i}`);
});

import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config.ts';
import { isDatasetError } from '../datasets/errors.ts';
import { loadPackage } from '../psa/package-loader.ts';
import { evaluatePackage } from './evaluate.ts';
import type { TrainJobData, TrainProgress, TrainResult } from './job-types.ts';
import { prepareDataset, readSplit, type Example } from './prepare.ts';
import { registerPackage } from './registry.ts';
import { runTrainerProcess, type TrainerEvent } from './trainer-process.ts';

/** A failure that retrying cannot fix (bad data, bad base); the job fails at once. */
export class PermanentError extends Error {}

export interface PipelineHooks {
  report(p: Partial<TrainProgress>): void;
  log(line: string): void;
  /** Aborting stops the trainer (it checkpoints first) and the pipeline. */
  signal?: AbortSignal;
  /** CUDA devices for the trainer; empty trains on CPU. */
  gpus: string[];
  /** Trainer processes (one per GPU; on CPU, gloo processes); more than one launches torch.distributed.run. */
  processes?: number;
}

/** Without val.jsonl every tenth example is held out; a dataset under ten is scored on itself. */
export function splitForEvaluation(train: Example[], val: Example[]): { train: Example[]; val: Example[]; source: string } {
  if (val.length > 0) return { train, val, source: 'val.jsonl' };
  if (train.length < 10) return { train, val: train, source: 'train.jsonl (too small to hold out; scores are on training data)' };
  return { train: train.filter((_, i) => i % 10 !== 9), val: train.filter((_, i) => i % 10 === 9), source: 'every 10th example of train.jsonl, held out' };
}

function trainerProgress(hooks: PipelineHooks): (e: TrainerEvent) => void {
  let first: { step: number; at: number } | null = null;
  let lastReport = 0;
  return (e) => {
    if (e.event === 'start') {
      first = null;
      hooks.report({ stage: String(e.stage), total_steps: Number(e.total_steps), step: Number(e.resumed_from ?? 0), resumed_from: (e.resumed_from as number | null) ?? null, processes: Number(e.processes ?? 1) });
      hooks.log(`${e.stage}: ${e.total_steps} steps${e.resumed_from ? `, resuming from step ${e.resumed_from}` : ''}`);
    } else if (e.event === 'step') {
      const step = Number(e.step);
      const total = Number(e.total_steps);
      // Small models take milliseconds a step: report at most twice a second, and the last.
      if (step < total && Date.now() - lastReport < 500) return;
      lastReport = Date.now();
      first ??= { step, at: Date.now() };
      const msPerStep = step > first.step ? (Date.now() - first.at) / (step - first.step) : null;
      hooks.report({
        stage: String(e.stage),
        step,
        total_steps: total,
        epoch: Number(e.epoch),
        loss: Number(e.loss),
        level_acc: Number(e.level_acc),
        type_acc: Number(e.type_acc),
        ...(msPerStep !== null && { eta_s: Math.round(((total - step) * msPerStep) / 1000) }),
      });
    } else if (e.event === 'checkpoint' || e.event === 'stage_done') {
      hooks.log(`${e.event} ${e.stage} step ${e.step ?? e.steps}`);
    } else if (e.event === 'eval') {
      hooks.log(`${e.stage} on ${e.split}: level accuracy ${Number(e.level_acc).toFixed(3)}, type accuracy ${Number(e.type_acc).toFixed(3)}`);
    }
  };
}

/**
 * Prepare data, run the trainer (resuming from the last checkpoint in `workdir`), export,
 * evaluate, register. Each phase is idempotent, so a retried job redoes only what is missing.
 * Used by the queue's workers and by `npm run train:default`.
 */
export async function runPipeline(config: Config, data: TrainJobData, workdir: string, hooks: PipelineHooks, extraProvenance: Record<string, unknown> = {}): Promise<TrainResult> {
  await mkdir(workdir, { recursive: true });
  const registered = join(workdir, 'registered.json');
  if (await stat(registered).catch(() => null)) return JSON.parse(await readFile(registered, 'utf8')) as TrainResult;
  const stopped = () => {
    if (hooks.signal?.aborted) throw hooks.signal.reason instanceof Error ? hooks.signal.reason : new Error(String(hooks.signal.reason));
  };

  hooks.report({ phase: 'preparing' });
  let baseDir = data.base.dir;
  if (data.base.kind === 'checkpoint') {
    // A LLaVA checkpoint becomes a package first: its tokenizer and preprocessing prepare the data.
    baseDir = join(workdir, 'base-package');
    if (!(await stat(join(baseDir, 'psa.json')).catch(() => null))) {
      hooks.log(`converting checkpoint ${data.base.id} into a package`);
      const converted = await runTrainerProcess({
        python: config.TRAINER_PYTHON,
        args: ['export', '--checkpoint', data.base.dir, '--out', baseDir, '--name', `${data.request.output_name}-base`, '--seed', String(data.trainer.seed)],
        onLog: hooks.log,
      });
      if (converted.code === 2) throw new PermanentError(`base checkpoint ${data.base.id} does not fit the model (see the job log)`);
      if (converted.code !== 0) throw new Error(`converting the base checkpoint failed with ${converted.code ?? converted.signal}`);
    }
  }
  hooks.log(`preparing dataset ${data.dataset.id} for ${data.base.id}`);
  const pkg = await loadPackage(baseDir).catch((err: Error) => {
    throw new PermanentError(`base model ${data.base.id}: ${err.message}`);
  });
  // A dataset whose lines no longer pass the format's checks (a directory edited since it was registered) cannot be retried into shape.
  const read = (file: string) =>
    readSplit(data.dataset.path, file, config.MAX_DATASET_LINE_BYTES).catch((err: unknown) => {
      throw isDatasetError(err) ? new PermanentError(`dataset ${data.dataset.id}: ${err.message}`) : err;
    });
  const split = splitForEvaluation(await read('train.jsonl'), await read('val.jsonl'));
  const prep = await prepareDataset(pkg, data.dataset.path, { train: split.train, val: split.val }, join(workdir, 'prepared'), { maxImagePixels: config.MAX_IMAGE_PIXELS });
  for (const s of prep.skipped) hooks.log(`skipped ${s}`);
  if (!prep.counts.train) throw new PermanentError('no usable training examples after preparation');
  stopped();

  hooks.report({ phase: 'training' });
  const jobFile = join(workdir, 'job.json');
  await writeFile(
    jobFile,
    JSON.stringify({ base: baseDir, data: join(workdir, 'prepared'), workdir: join(workdir, 'trainer'), stages: data.stages, ...data.trainer, device: hooks.gpus.length ? 'cuda' : 'cpu' }, null, 2),
  );
  const env = hooks.gpus.length ? { CUDA_VISIBLE_DEVICES: hooks.gpus.join(',') } : {};
  const processes = hooks.processes ?? Math.max(1, hooks.gpus.length);
  if (processes > 1) hooks.log(`launching ${processes} trainer processes with torch.distributed.run`);
  const run = await runTrainerProcess({
    python: config.TRAINER_PYTHON,
    args: ['train', '--job', jobFile],
    processes,
    env,
    ...(hooks.signal && { signal: hooks.signal }),
    onEvent: trainerProgress(hooks),
    onLog: hooks.log,
  });
  stopped();
  if (run.code === 2 || run.lastErrorRetryable === false) throw new PermanentError(`the trainer rejected the job: ${run.lastError ?? 'invalid input'}`);
  if (run.code !== 0) throw new Error(`the trainer exited with ${run.code ?? run.signal}${run.lastError ? `: ${run.lastError}` : ''}`);

  hooks.report({ phase: 'exporting' });
  const staged = join(workdir, 'package');
  const exported = await runTrainerProcess({ python: config.TRAINER_PYTHON, args: ['export', '--checkpoint', join(workdir, 'trainer', 'final'), '--out', staged, '--name', data.request.output_name], onLog: hooks.log });
  if (exported.code !== 0) throw new Error(`export failed with ${exported.code ?? exported.signal}`);

  hooks.report({ phase: 'evaluating' });
  const metrics = { ...(await evaluatePackage(staged, data.dataset.path, split.val, 'val', { maxImagePixels: config.MAX_IMAGE_PIXELS })), val_source: split.source };
  const fixed = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));
  hooks.log(`evaluation: level accuracy ${fixed(metrics.level_accuracy)}, type accuracy ${fixed(metrics.type_accuracy)}`);

  hooks.report({ phase: 'registering' });
  const { id, dir } = await registerPackage(config.MODELS_DIR, data.request.output_name, staged, {
    status: 'trained',
    trained_at: new Date().toISOString(),
    dataset: data.dataset.id,
    base: data.base.id,
    stages: data.stages,
    trainer: data.trainer,
    examples: prep.counts,
    metrics,
    ...extraProvenance,
  });
  const result: TrainResult = { model_id: id, model_dir: dir, metrics };
  await writeFile(registered, JSON.stringify(result));
  return result;
}

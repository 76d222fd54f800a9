import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { loadPackage } from '../psa/package-loader.ts';
import { evaluatePackage } from './evaluate.ts';
import type { TrainJobData, TrainProgress, TrainResult } from './job-types.ts';
import { prepareDataset, readSplit, type Example } from './prepare.ts';
import { CANCELLED_REASON } from './queue.ts';
import { registerPackage } from './registry.ts';
import { runTrainerProcess, type TrainerEvent } from './trainer-process.ts';

export const SHUTDOWN_REASON = 'worker shutting down';

export interface Slot {
  name: string;
  /** CUDA device id for this slot, or null for a CPU slot. */
  gpu: string | null;
}

/** Without val.jsonl every tenth example is held out; a dataset under ten is scored on itself. */
export function splitForEvaluation(train: Example[], val: Example[]): { train: Example[]; val: Example[]; source: string } {
  if (val.length > 0) return { train, val, source: 'val.jsonl' };
  if (train.length < 10) return { train, val: train, source: 'train.jsonl (too small to hold out; scores are on training data)' };
  return { train: train.filter((_, i) => i % 10 !== 9), val: train.filter((_, i) => i % 10 === 9), source: 'every 10th example of train.jsonl, held out' };
}

/**
 * One training job: prepare data, run both stages in the PyTorch trainer (resuming from the
 * last checkpoint in the job's work directory), export, evaluate, register. Each phase is
 * idempotent, so a retried job redoes only what is missing.
 */
export function makeProcessor(config: Config, slot: Slot, log: RuntimeLogger) {
  return async (job: Job<TrainJobData, TrainResult>, token: string | undefined, signal: AbortSignal | undefined): Promise<TrainResult> => {
    const workdir = resolve(config.DATA_DIR, 'jobs', job.id!);
    await mkdir(workdir, { recursive: true });
    const registered = join(workdir, 'registered.json');
    if (await stat(registered).catch(() => null)) return JSON.parse(await readFile(registered, 'utf8')) as TrainResult;

    let progress: TrainProgress = { phase: 'preparing' };
    const report = async (p: Partial<TrainProgress>) => {
      progress = { ...progress, ...p };
      await job.updateProgress(progress);
    };
    const jobLog = (line: string) => void job.log(line.slice(0, 2000)).catch(() => {});
    const stopped = () => {
      if (!signal?.aborted) return;
      throw signal.reason === SHUTDOWN_REASON ? new Error(SHUTDOWN_REASON) : new UnrecoverableError(CANCELLED_REASON);
    };
    try {
      const { data } = job;
      await report({ phase: 'preparing' });
      jobLog(`slot ${slot.name}: preparing dataset ${data.dataset.id} for ${data.base.id}`);
      const pkg = await loadPackage(data.base.dir).catch((err: Error) => {
        throw new UnrecoverableError(`base model ${data.base.id}: ${err.message}`);
      });
      const split = splitForEvaluation(await readSplit(data.dataset.path, 'train.jsonl'), await readSplit(data.dataset.path, 'val.jsonl'));
      const prepared = join(workdir, 'prepared');
      const prep = await prepareDataset(pkg, data.dataset.path, { train: split.train, val: split.val }, prepared, { maxImagePixels: config.MAX_IMAGE_PIXELS, maxImageBytes: config.MAX_IMAGE_BYTES });
      for (const s of prep.skipped) jobLog(`skipped ${s}`);
      if (!prep.counts.train) throw new UnrecoverableError('no usable training examples after preparation');
      stopped();

      await report({ phase: 'training' });
      const jobFile = join(workdir, 'job.json');
      await writeFile(jobFile, JSON.stringify({ base: data.base.dir, data: prepared, workdir: join(workdir, 'trainer'), stages: data.stages, ...data.trainer, device: slot.gpu === null ? 'cpu' : 'cuda' }, null, 2));
      const started = Date.now();
      let firstStep: { step: number; at: number } | null = null;
      let lastReport = 0;
      const onEvent = (e: TrainerEvent) => {
        if (e.event === 'start') {
          firstStep = null;
          void report({ stage: String(e.stage), total_steps: Number(e.total_steps), step: Number(e.resumed_from ?? 0), resumed_from: (e.resumed_from as number | null) ?? null });
          jobLog(`${e.stage}: ${e.total_steps} steps${e.resumed_from ? `, resuming from step ${e.resumed_from}` : ''}`);
        } else if (e.event === 'step') {
          const step = Number(e.step);
          const total = Number(e.total_steps);
          // Small models take milliseconds a step: report at most twice a second, and the last.
          if (step < total && Date.now() - lastReport < 500) return;
          lastReport = Date.now();
          firstStep ??= { step, at: Date.now() };
          const rate = step > firstStep.step ? (Date.now() - firstStep.at) / (step - firstStep.step) : null;
          void report({ stage: String(e.stage), step, total_steps: total, epoch: Number(e.epoch), loss: Number(e.loss), level_acc: Number(e.level_acc), type_acc: Number(e.type_acc), ...(rate !== null && { eta_s: Math.round(((total - step) * rate) / 1000) }) });
        } else if (e.event === 'checkpoint' || e.event === 'stage_done') {
          jobLog(`${e.event} ${e.stage} step ${e.step ?? e.steps}`);
        }
      };
      const env = slot.gpu === null ? {} : { CUDA_VISIBLE_DEVICES: slot.gpu };
      const run = await runTrainerProcess({ python: config.TRAINER_PYTHON, args: ['train', '--job', jobFile], env, ...(signal && { signal }), onEvent, onLog: jobLog });
      stopped();
      if (run.code === 2) throw new UnrecoverableError(`the trainer rejected the job: ${run.lastError ?? 'invalid input'}`);
      if (run.code !== 0) throw new Error(`the trainer exited with ${run.code ?? run.signal}${run.lastError ? `: ${run.lastError}` : ''}`);
      log.info({ job: job.id, seconds: (Date.now() - started) / 1000 }, 'training finished');

      await report({ phase: 'exporting' });
      const staged = join(workdir, 'package');
      const exported = await runTrainerProcess({ python: config.TRAINER_PYTHON, args: ['export', '--checkpoint', join(workdir, 'trainer', 'final'), '--out', staged, '--name', data.request.output_name], onLog: jobLog });
      if (exported.code !== 0) throw new Error(`export failed with ${exported.code ?? exported.signal}`);

      await report({ phase: 'evaluating' });
      const metrics = { ...(await evaluatePackage(staged, data.dataset.path, split.val, 'val')), val_source: split.source };
      jobLog(`evaluation: level accuracy ${metrics.level_accuracy.toFixed(3)}, type accuracy ${metrics.type_accuracy.toFixed(3)}`);

      await report({ phase: 'registering' });
      const { id, dir } = await registerPackage(config.MODELS_DIR, data.request.output_name, staged, {
        status: 'trained',
        job_id: job.id,
        trained_at: new Date().toISOString(),
        dataset: data.dataset.id,
        base: data.base.id,
        stages: data.stages,
        trainer: data.trainer,
        examples: prep.counts,
        metrics,
      });
      const result: TrainResult = { model_id: id, model_dir: dir, metrics };
      await writeFile(registered, JSON.stringify(result));
      return result;
    } catch (err) {
      if (signal?.aborted && signal.reason === SHUTDOWN_REASON && token) {
        // Back to the queue without using up an attempt; the next worker resumes from the checkpoint.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      throw err;
    }
  };
}

import { resolve } from 'node:path';
import { DelayedError, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import type { TrainJobData, TrainProgress, TrainResult } from './job-types.ts';
import { PermanentError, runPipeline } from './pipeline.ts';
import { CANCELLED_REASON } from './queue.ts';

export const SHUTDOWN_REASON = 'worker shutting down';

export interface Slot {
  name: string;
  /** CUDA device ids of this slot; empty for a CPU slot. */
  gpus: string[];
  /** The most trainer processes a job may run here: its GPUs, or on CPU, GPUS_PER_SLOT. */
  capacity: number;
}

/** How long a job too large for this slot waits before another worker may take it. */
export const TOO_LARGE_RETRY_MS = 30_000;

/**
 * The BullMQ processor: runs the training pipeline for a job, reporting progress and logs to
 * the job. Bad input fails at once (no retry); a cancel ends as cancelled; a worker shutdown
 * puts the job back in the queue without spending an attempt.
 */
export function makeProcessor(config: Config, slot: Slot, log: RuntimeLogger) {
  return async (job: Job<TrainJobData, TrainResult>, token: string | undefined, signal: AbortSignal | undefined): Promise<TrainResult> => {
    const wanted = job.data.gpus ?? 1;
    if (wanted > slot.capacity && token) {
      // Another worker with a larger slot may take it; the API refuses jobs no slot can host.
      await job.log(`slot ${slot.name} has ${slot.capacity} of the ${wanted} GPUs the job asks for; left for a larger slot`);
      log.warn({ job: job.id, slot: slot.name, gpus: wanted, capacity: slot.capacity }, 'training job too large for this slot');
      await job.moveToDelayed(Date.now() + TOO_LARGE_RETRY_MS, token);
      throw new DelayedError();
    }
    let progress: TrainProgress = { phase: 'preparing' };
    const hooks = {
      gpus: slot.gpus.slice(0, wanted),
      processes: wanted,
      ...(signal && { signal }),
      report: (p: Partial<TrainProgress>) => {
        progress = { ...progress, ...p };
        void job.updateProgress(progress).catch(() => {});
      },
      // Trainer output can quote what it read (a bad file's bytes): control characters out, lines short.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it replaces
      log: (line: string) => void job.log(line.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?').slice(0, 500)).catch(() => {}),
    };
    hooks.log(`slot ${slot.name} took the job (attempt ${job.attemptsMade + 1})`);
    const started = Date.now();
    try {
      const result = await runPipeline(config, job.data, resolve(config.DATA_DIR, 'jobs', job.id!), hooks, { job_id: job.id });
      log.info({ job: job.id, model: result.model_id, seconds: (Date.now() - started) / 1000 }, 'training pipeline finished');
      return result;
    } catch (err) {
      if (signal?.aborted && signal.reason === SHUTDOWN_REASON && token) {
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (signal?.aborted) throw new UnrecoverableError(CANCELLED_REASON);
      if (err instanceof PermanentError) throw new UnrecoverableError(err.message);
      throw err;
    }
  };
}

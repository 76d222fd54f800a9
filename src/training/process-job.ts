import { resolve } from 'node:path';
import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import type { TrainJobData, TrainProgress, TrainResult } from './job-types.ts';
import { PermanentError, runPipeline } from './pipeline.ts';
import { CANCELLED_REASON } from './queue.ts';

export const SHUTDOWN_REASON = 'worker shutting down';

export interface Slot {
  name: string;
  /** CUDA device id for this slot, or null for a CPU slot. */
  gpu: string | null;
}

/**
 * The BullMQ processor: runs the training pipeline for a job, reporting progress and logs to
 * the job. Bad input fails at once (no retry); a cancel ends as cancelled; a worker shutdown
 * puts the job back in the queue without spending an attempt.
 */
export function makeProcessor(config: Config, slot: Slot, log: RuntimeLogger) {
  return async (job: Job<TrainJobData, TrainResult>, token: string | undefined, signal: AbortSignal | undefined): Promise<TrainResult> => {
    let progress: TrainProgress = { phase: 'preparing' };
    const hooks = {
      gpu: slot.gpu,
      ...(signal && { signal }),
      report: (p: Partial<TrainProgress>) => {
        progress = { ...progress, ...p };
        void job.updateProgress(progress).catch(() => {});
      },
      log: (line: string) => void job.log(line.slice(0, 2000)).catch(() => {}),
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

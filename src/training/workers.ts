import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { keys, workerRedis } from '../redis.ts';
import { QUEUE_NAME, type TrainJobData, type TrainResult } from './job-types.ts';
import { makeProcessor, SHUTDOWN_REASON, type Slot } from './process-job.ts';
import { CANCELLED_REASON } from './queue.ts';

/**
 * Training slots: GPUS grouped by GPUS_PER_SLOT (GPUS=0,1,2,3 with 2 per slot: [0,1] and [2,3];
 * a remainder too small for a slot is left unused), or one CPU slot running up to perSlot
 * processes.
 */
export function slotsFrom(gpus: string, perSlot = 1): Slot[] {
  const ids = gpus
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  if (!ids.length) return [{ name: 'cpu', gpus: [], capacity: perSlot }];
  const slots: Slot[] = [];
  for (let i = 0; i + perSlot <= ids.length; i += perSlot) {
    const group = ids.slice(i, i + perSlot);
    slots.push({ name: `gpu${group.join('+')}`, gpus: group, capacity: group.length });
  }
  if (!slots.length) throw new Error(`GPUS lists ${ids.length} device(s), fewer than GPUS_PER_SLOT=${perSlot}`);
  return slots;
}

/** How often a worker reads the cancel flags of the jobs it runs. */
export const CANCEL_POLL_MS = 2000;

/**
 * One BullMQ worker per slot (GPU), one job at a time each. Cancel requests arrive by pub/sub,
 * and each running job's cancel flag is also read when it starts and every CANCEL_POLL_MS, so a
 * cancel whose message was missed (a worker restarting, a dropped subscription) still stops the
 * job. A job whose worker died is picked up again once its lock expires (stalled-job check).
 */
export class TrainingWorkers {
  private closing: Promise<void> | undefined;

  private constructor(
    readonly workers: Worker<TrainJobData, TrainResult>[],
    private readonly connections: Redis[],
    private readonly cancelPoll: NodeJS.Timeout,
  ) {}

  static async start(config: Config, log: RuntimeLogger): Promise<TrainingWorkers> {
    if (!config.REDIS_URL) throw new Error('REDIS_URL is required for training workers');
    const connection = workerRedis(config.REDIS_URL);
    const subscriber = workerRedis(config.REDIS_URL);
    const k = keys(config.REDIS_PREFIX);
    const running = new Set<string>();
    const cancel = (jobId: string, why: string) => {
      for (const w of workers) if (w.cancelJob(jobId, CANCELLED_REASON)) log.info({ job: jobId, by: why }, 'cancelling training job');
    };
    const readFlags = async (ids: string[]) => {
      for (const id of ids) {
        if (await connection.exists(k.cancelFlag(id)).catch(() => 0)) cancel(id, 'flag');
      }
    };
    const workers = slotsFrom(config.GPUS, config.GPUS_PER_SLOT).map((slot) => {
      const worker = new Worker<TrainJobData, TrainResult>(QUEUE_NAME, makeProcessor(config, slot, log), {
        connection,
        prefix: config.REDIS_PREFIX,
        concurrency: 1,
        lockDuration: config.WORKER_LOCK_MS,
        stalledInterval: config.WORKER_STALLED_INTERVAL_MS,
        maxStalledCount: 5,
        removeOnComplete: { age: 30 * 24 * 3600 },
        removeOnFail: { age: 30 * 24 * 3600 },
      });
      worker.on('active', (job) => {
        log.info({ job: job.id, slot: slot.name }, 'training job started');
        running.add(job.id!);
        void readFlags([job.id!]);
      });
      worker.on('completed', (job, result) => {
        running.delete(job.id!);
        log.info({ job: job.id, slot: slot.name, model: result.model_id }, 'training job completed');
      });
      worker.on('failed', (job, err) => {
        if (job?.id) running.delete(job.id);
        log.warn({ job: job?.id, slot: slot.name, err: err.message }, 'training job failed');
      });
      worker.on('error', (err) => log.error({ err, slot: slot.name }, 'worker error'));
      return worker;
    });
    await subscriber.subscribe(k.cancelChannel);
    subscriber.on('message', (channel, jobId) => {
      if (channel === k.cancelChannel) cancel(jobId, 'message');
    });
    const cancelPoll = setInterval(() => void readFlags([...running]), CANCEL_POLL_MS);
    cancelPoll.unref();
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    log.info({ slots: workers.length, gpus: config.GPUS || 'none (CPU)' }, 'training workers ready');
    return new TrainingWorkers(workers, [connection, subscriber], cancelPoll);
  }

  /** Stops taking jobs; running trainers checkpoint and their jobs go back to the queue. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.cancelPoll);
      for (const w of this.workers) w.cancelAllJobs(SHUTDOWN_REASON);
      await Promise.allSettled(this.workers.map((w) => w.close()));
      await Promise.allSettled(this.connections.map((c) => c.quit()));
    })();
    return this.closing;
  }
}

import { createHash, randomUUID } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { keys } from '../redis.ts';
import { QUEUE_NAME, type TrainJobData, type TrainProgress, type TrainResult } from './job-types.ts';

export type JobState = 'waiting' | 'active' | 'completed' | 'failed' | 'cancelled' | 'delayed' | 'cancelling' | 'unknown';

export const CANCELLED_REASON = 'cancelled by request';
const TOMBSTONE_TTL_S = 7 * 24 * 3600;

export interface JobView {
  id: string;
  state: JobState;
  phase: TrainProgress['phase'] | null;
  stage: string | null;
  step: number | null;
  total_steps: number | null;
  epoch: number | null;
  loss: number | null;
  level_acc: number | null;
  type_acc: number | null;
  eta_s: number | null;
  /** Step the current stage resumed from after an interruption (null when it started fresh). */
  resumed_from: number | null;
  /** Trainer processes of the current stage (one per GPU); null before training starts. */
  processes: number | null;
  attempts: number;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  logs: string[];
  result: TrainResult | null;
  error: string | null;
  request: TrainJobData['request'];
  /** Owner id of the key that queued it (routes filter by it and never show it). */
  owner: string | undefined;
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

/** The API's side of the training queue: enqueue, look up, list, cancel. */
export class TrainingQueue {
  readonly queue: Queue<TrainJobData, TrainResult>;
  private readonly k: ReturnType<typeof keys>;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly attempts: number,
  ) {
    this.queue = new Queue<TrainJobData, TrainResult>(QUEUE_NAME, { connection: redis, prefix });
    this.k = keys(prefix);
  }

  /** Adds a job; a repeated idempotency key returns the first job instead of a new one. */
  async add(data: TrainJobData): Promise<{ id: string; duplicate: boolean }> {
    const key = data.request.idempotency_key;
    const jobId = key ? `idem-${createHash('sha256').update(key).digest('hex').slice(0, 32)}` : randomUUID();
    if (key && (await this.queue.getJob(jobId))) return { id: jobId, duplicate: true };
    const job = await this.queue.add('train', data, {
      jobId,
      attempts: this.attempts,
      backoff: { type: 'exponential', delay: 5000 },
      removeOnComplete: { age: 30 * 24 * 3600 },
      removeOnFail: { age: 30 * 24 * 3600 },
    });
    return { id: job.id!, duplicate: false };
  }

  async get(id: string): Promise<JobView | null> {
    const job = await this.queue.getJob(id);
    if (!job) {
      const tomb = await this.redis.get(this.k.tombstone(id));
      return tomb ? (JSON.parse(tomb) as JobView) : null;
    }
    return this.view(job);
  }

  /** The newest `limit` jobs, or with `owner` the newest `limit` of that owner's (among the last 1,000). */
  async list(limit = 50, owner?: string): Promise<JobView[]> {
    const jobs = await this.queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'], 0, (owner === undefined ? limit : 1000) - 1, false);
    const theirs = jobs.filter((j) => j && (owner === undefined || j.data.owner === owner)).slice(0, limit);
    return Promise.all(theirs.map((j) => this.view(j)));
  }

  /**
   * A waiting job is removed (a tombstone keeps its record); a running one is flagged and asked to stop
   * via pub/sub (workers also poll the flag) and ends as cancelled. Returns null when the job is unknown.
   */
  async cancel(id: string): Promise<JobView | null> {
    const job = await this.queue.getJob(id);
    if (!job) return null;
    const state = await job.getState();
    if (state === 'active') {
      await this.redis.set(this.k.cancelFlag(id), '1', 'EX', TOMBSTONE_TTL_S);
      await this.redis.publish(this.k.cancelChannel, id);
      return { ...(await this.view(job)), state: 'cancelling' };
    }
    if (state === 'completed' || state === 'failed') return this.view(job);
    const view = { ...(await this.view(job)), state: 'cancelled' as const, finished_at: new Date().toISOString() };
    await job.remove();
    await this.redis.set(this.k.tombstone(id), JSON.stringify(view), 'EX', TOMBSTONE_TTL_S);
    return view;
  }

  private async view(stale: Job<TrainJobData, TrainResult>): Promise<JobView> {
    const raw = await stale.getState();
    // The record was read before the state: a job that finished in between carries no result yet.
    // BullMQ writes the state and the result in one step, so a second read sees both.
    const finishedSince = (raw === 'completed' || raw === 'failed') && !stale.finishedOn;
    const job = (finishedSince ? await this.queue.getJob(stale.id!) : undefined) ?? stale;
    const cancelled = raw === 'failed' && job.failedReason === CANCELLED_REASON;
    const state: JobState = cancelled ? 'cancelled' : raw === 'prioritized' || raw === 'waiting-children' ? 'waiting' : (raw as JobState);
    const p = (typeof job.progress === 'object' ? job.progress : {}) as Partial<TrainProgress>;
    const { logs } = await this.queue.getJobLogs(job.id!, -20, -1);
    return {
      id: job.id!,
      state,
      phase: state === 'waiting' ? 'queued' : (p.phase ?? null),
      stage: p.stage ?? null,
      step: p.step ?? null,
      total_steps: p.total_steps ?? null,
      epoch: p.epoch ?? null,
      loss: p.loss ?? null,
      level_acc: p.level_acc ?? null,
      type_acc: p.type_acc ?? null,
      eta_s: p.eta_s ?? null,
      resumed_from: p.resumed_from ?? null,
      processes: p.processes ?? null,
      attempts: job.attemptsMade,
      created_at: iso(job.timestamp),
      started_at: iso(job.processedOn),
      finished_at: iso(job.finishedOn),
      logs,
      result: job.returnvalue ?? null,
      error: raw === 'failed' && !cancelled ? (job.failedReason ?? 'failed') : null,
      request: job.data.request,
      owner: job.data.owner,
    };
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

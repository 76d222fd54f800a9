import { EventEmitter } from 'node:events';
import type { FastifyReply } from 'fastify';
import type { BatchItem } from '../inference/batcher.ts';
import { InferenceNotReadyError, InferenceOverloadedError } from '../inference/errors.ts';
import type { InferencePool } from '../inference/pool.ts';
import { argmaxOf } from '../psa/concepts.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { judge } from '../policy/judge.ts';
import type { Policy } from '../policy/policy.ts';
import { afterResponse } from './after-response.ts';
import { ShadowQueue } from './queue.ts';
import { ShadowStats, type Verdict } from './stats.ts';

export interface ShadowSettings {
  /** Share of live items mirrored, in (0, 1]. */
  share: number;
  /** Stop after this many items were compared (or failed); null: no limit. */
  maxItems: number | null;
  /** Stop after this many seconds; null: no limit. */
  maxSeconds: number | null;
}

export const END_REASONS = ['stopped', 'max_items', 'max_seconds', 'activated', 'live_changed', 'candidate_changed', 'shutdown'] as const;
export type EndReason = (typeof END_REASONS)[number];

/** Live items to score again on the candidate, with what the live model answered for each. */
export interface MirrorInput {
  items: BatchItem[];
  live: Verdict[];
  /** The policy and intervention the live answer was made with (the request's, resolved). */
  policy: Policy;
  intervene: { level?: number; type?: number };
}

type Job = MirrorInput & { requestId: string };

const keepFirst = (job: Job, n: number): Job => ({ ...job, items: job.items.slice(0, n), live: job.live.slice(0, n) });

/**
 * The live side of a run: the package that was live when it started, and its pool now. A reload
 * of that package (a recalibrated temperature) replaces the pool, so the run asks for it each time
 * instead of keeping the one it started beside; activating another package ends the run.
 */
export interface LiveSide {
  id: string;
  dir: string;
  name: string;
  pool: () => InferencePool;
}

/**
 * One shadow run: a candidate package in its own pool beside the live one. A share of live items
 * is scored again by the candidate after their answer has been sent, decided with the same policy
 * code, and compared. Events: 'offered' (requestId, items) when a response's items reach the
 * queue, 'compared' (requestId, items) when the candidate has scored them, 'ended' (reason).
 */
export class ShadowRun extends EventEmitter {
  readonly stats = new ShadowStats();
  readonly startedAt = new Date();
  private endedAt: Date | undefined;
  private reason: EndReason | undefined;
  private sampled = 0;
  /** Items queued or with the candidate. */
  private pending = 0;
  private droppedAtEnd = 0;
  private readonly queue: ShadowQueue<Job>;
  private readonly timer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly candidateId: string,
    readonly candidate: InferencePool,
    readonly live: LiveSide,
    readonly settings: ShadowSettings,
    maxQueue: number,
    private readonly log: RuntimeLogger,
  ) {
    super();
    this.queue = new ShadowQueue<Job>(maxQueue, candidate.workers.length, {
      run: (job) => this.score(job),
      shed: (count, reason) => {
        if (reason !== 'queue_full') this.pending -= count;
        this.stats.shed(count, reason);
      },
      // Live work waiting for a worker: this machine is busy with what clients wait for.
      liveBusy: () => this.live.pool().queueSize > 0,
    });
    if (settings.maxSeconds !== null) {
      // Not unref'd: ending the run (DELETE, activation, shutdown) clears it.
      this.timer = setTimeout(() => void this.end('max_seconds'), settings.maxSeconds * 1000);
    }
  }

  get running(): boolean {
    return this.reason === undefined;
  }

  get endReason(): EndReason | undefined {
    return this.reason;
  }

  /** Items still to take before max_items is reached (Infinity without a limit). */
  private get room(): number {
    return this.settings.maxItems === null ? Infinity : this.settings.maxItems - this.stats.compared - this.stats.failed - this.pending;
  }

  /**
   * Called on the request path once the live answer is known: draws which items to mirror (a
   * random number per item) and, after the response has been sent, queues them. Answers of the
   * live package count whichever of its pools gave them (before or after a reload). Never throws.
   */
  mirror(reply: FastifyReply, pool: InferencePool, input: MirrorInput): void {
    if (!this.running || pool.pkg.dir !== this.live.dir || this.room <= 0) return;
    const picked = input.items.flatMap((_, i) => (Math.random() < this.settings.share ? [i] : []));
    if (picked.length === 0) return;
    const job: Job = { ...input, requestId: reply.request.id, items: picked.map((i) => input.items[i]!), live: picked.map((i) => input.live[i]!) };
    afterResponse(reply, () => this.offer(job));
  }

  private offer(job: Job): void {
    if (!this.running) return;
    const fits = Math.min(job.items.length, Math.max(0, this.room));
    if (fits === 0) return;
    const trimmed = fits < job.items.length ? keepFirst(job, fits) : job;
    this.sampled += trimmed.items.length;
    this.emit('offered', job.requestId, trimmed.items.length);
    const queued = this.queue.offer(trimmed, keepFirst);
    this.pending += queued;
  }

  private async score(job: Job): Promise<void> {
    const n = job.items.length;
    try {
      const results = await this.candidate.moderateAll(job.items);
      results.forEach((r, i) => {
        if (!r.item.ok) return this.stats.fail(r.item.code);
        // The same two steps as the live moderation path: intervention, then the policy.
        const { outcome } = judge(r.item, job.policy, job.intervene, this.candidate.pkg.manifest);
        this.stats.compare(job.live[i]!, { decision: outcome.decision, flagged: outcome.flagged, type: argmaxOf(r.item.typeProbs), ms: r.stats.preprocessMs + r.stats.pass1Ms });
      });
      this.pending -= n;
      this.emit('compared', job.requestId, n);
    } catch (err) {
      this.pending -= n;
      if (err instanceof InferenceOverloadedError || err instanceof InferenceNotReadyError) {
        this.stats.shed(n, 'candidate_busy');
      } else {
        this.log.error({ err, model: this.candidateId }, 'shadow scoring failed');
        this.stats.fail(err instanceof Error ? err.name : 'Error', n);
      }
    }
    if (this.running && this.settings.maxItems !== null && this.stats.compared + this.stats.failed >= this.settings.maxItems) void this.end('max_items');
  }

  /** Stops mirroring, drops what waits and frees the candidate's pool; idempotent. */
  end(reason: EndReason): Promise<void> {
    if (!this.closing) {
      this.reason = reason;
      this.endedAt = new Date();
      clearTimeout(this.timer);
      const { dropped } = this.queue.clear();
      this.droppedAtEnd = dropped;
      this.pending -= dropped;
      this.log.info({ model: this.candidateId, live: this.live.id, reason, compared: this.stats.compared }, 'shadow run ended');
      this.emit('ended', reason);
      this.closing = this.candidate.close().catch((err: unknown) => this.log.error({ err }, 'closing the shadow candidate failed'));
    }
    return this.closing;
  }

  /** The run as GET /v1/models/{id}/shadow shows it. */
  report() {
    const s = this.settings;
    return {
      model: this.candidateId,
      candidate: { id: this.candidateId, name: this.candidate.name },
      live: { id: this.live.id, name: this.live.name },
      state: this.running ? ('running' as const) : ('ended' as const),
      ended_reason: this.reason ?? null,
      share: s.share,
      limits: { max_items: s.maxItems, max_seconds: s.maxSeconds },
      started_at: this.startedAt.toISOString(),
      ended_at: this.endedAt?.toISOString() ?? null,
      sampled: this.sampled,
      queued: this.queue.queued,
      in_flight: this.pending - this.queue.queued,
      dropped_at_end: this.droppedAtEnd,
      ...this.stats.snapshot(),
    };
  }
}

export type ShadowReport = ReturnType<ShadowRun['report']>;

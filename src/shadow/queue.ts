/** Why a mirrored item was dropped instead of being scored by the candidate. */
export const SHED_REASONS = ['queue_full', 'live_busy', 'candidate_busy'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

export interface QueueHooks<T> {
  /** Scores one job on the candidate; its items count as done when it settles. */
  run(job: T): Promise<void>;
  /** Items dropped, and why; called at once, nobody waits for them. */
  shed(count: number, reason: ShedReason): void;
  /** True while live traffic needs the machine: queued jobs are dropped instead of started. */
  liveBusy(): boolean;
}

/**
 * The shadow run's bounded queue, counted in items. A job that does not fit is cut to the room
 * left (the rest is shed); at most `concurrency` jobs are with the candidate at a time, and a job
 * whose turn comes while the live pool has work waiting is shed: shadow work yields first.
 */
export class ShadowQueue<T extends { items: unknown[] }> {
  private readonly waiting: T[] = [];
  private waitingItems = 0;
  private running = 0;
  private idle: (() => void)[] = [];

  constructor(
    private readonly maxItems: number,
    private readonly concurrency: number,
    private readonly hooks: QueueHooks<T>,
  ) {}

  get queued(): number {
    return this.waitingItems;
  }

  get inFlight(): number {
    return this.running;
  }

  /** Queues what fits of `job` (the first items) and sheds the rest; returns the items queued. */
  offer(job: T, cut: (job: T, keep: number) => T): number {
    const room = Math.max(0, this.maxItems - this.waitingItems);
    const keep = Math.min(room, job.items.length);
    if (keep < job.items.length) this.hooks.shed(job.items.length - keep, 'queue_full');
    if (keep === 0) return 0;
    const admitted = keep === job.items.length ? job : cut(job, keep);
    this.waiting.push(admitted);
    this.waitingItems += keep;
    this.pump();
    return keep;
  }

  private pump(): void {
    while (this.running < this.concurrency && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      this.waitingItems -= job.items.length;
      if (this.hooks.liveBusy()) {
        this.hooks.shed(job.items.length, 'live_busy');
        continue;
      }
      this.running++;
      void this.hooks.run(job).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.waiting.length === 0) for (const resolve of this.idle.splice(0)) resolve();
      });
    }
  }

  /** Forgets waiting jobs (returns their item count) and resolves when running ones are done. */
  clear(): { dropped: number; settled: Promise<void> } {
    const dropped = this.waitingItems;
    this.waiting.length = 0;
    this.waitingItems = 0;
    const settled = this.running === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.idle.push(resolve));
    return { dropped, settled };
  }
}

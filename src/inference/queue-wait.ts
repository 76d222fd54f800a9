/**
 * Expected queue wait from recent service times: items ahead x recent milliseconds per item /
 * workers. Per-item time is an exponentially weighted mean over batches, so it follows the batch
 * sizes a loaded pool actually runs (larger batches cost less per item).
 */
export class QueueWaitEstimator {
  private perItemMs = 0;
  private seen = 0;

  constructor(
    private readonly workers: number,
    private readonly weight = 0.2,
  ) {}

  /** A finished batch: its service time in the worker and how many items it held. */
  observe(batchMs: number, items: number): void {
    if (!(items >= 1) || !(batchMs >= 0)) return;
    // Each worker's first batch pays one-off costs (allocations, caches) that later ones do not.
    if (++this.seen <= this.workers) return;
    const sample = batchMs / items;
    this.perItemMs = this.seen === this.workers + 1 ? sample : this.perItemMs + this.weight * (sample - this.perItemMs);
  }

  /** Recent service time per item, ms (0 before any measurement). */
  get msPerItem(): number {
    return this.perItemMs;
  }

  /** Expected wait, ms, of work submitted behind `ahead` items. */
  expectedWaitMs(ahead: number): number {
    return (ahead * this.perItemMs) / this.workers;
  }
}

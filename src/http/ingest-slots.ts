import { ApiError, HttpErrorCodes } from './errors.ts';

/**
 * Bounds dataset ingests (extraction, validation, hashing: disk and CPU heavy) per API key and in
 * total on this replica. Refused before the upload's body is read.
 */
export class IngestSlots {
  private total = 0;
  private readonly byOwner = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerOwner: number,
  ) {}

  /** A release function, or 429 (this key is at its limit) / 503 (the replica is), both with Retry-After. */
  acquire(owner: string): () => void {
    const mine = this.byOwner.get(owner) ?? 0;
    if (mine >= this.maxPerOwner) {
      throw new ApiError(
        HttpErrorCodes.TOO_MANY_REQUESTS,
        `this API key already has ${mine} dataset ingest(s) running (MAX_CONCURRENT_INGESTS_PER_KEY ${this.maxPerOwner}); wait for it to finish`,
        { limit: this.maxPerOwner },
        { 'retry-after': '10' },
      );
    }
    if (this.total >= this.maxTotal) {
      throw new ApiError(HttpErrorCodes.OVERLOADED, `the server is ingesting ${this.total} datasets (MAX_CONCURRENT_INGESTS ${this.maxTotal}); retry shortly`, { limit: this.maxTotal }, { 'retry-after': '10' });
    }
    this.total++;
    this.byOwner.set(owner, mine + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.total--;
      const n = (this.byOwner.get(owner) ?? 1) - 1;
      if (n === 0) this.byOwner.delete(owner);
      else this.byOwner.set(owner, n);
    };
  }
}

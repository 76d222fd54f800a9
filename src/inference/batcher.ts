import type { StageMs } from '../psa/stage-timings.ts';
import type { ItemFailure, ItemScores, ModerateResult, ModerateTask } from './protocol.ts';

export interface BatchItem {
  /** null for a text-only item. */
  image: Uint8Array | null;
  prompt: string;
}

/** One per batch: every item of a batch shares the same object. */
export interface BatchStats {
  batchSize: number;
  preprocessMs: number;
  pass1Ms: number;
  stages: StageMs;
}

export interface BatchedResult {
  item: ItemScores | ItemFailure;
  stats: BatchStats;
  /** This item's wait from submission until a worker took its batch. */
  queueMs: number;
}

/** Milliseconds since the epoch, on the clock worker threads stamp `startedAt` with. */
const now = () => performance.timeOrigin + performance.now();

type Pending = BatchItem & { submittedAt: number; resolve: (r: BatchedResult) => void; reject: (e: unknown) => void };

/**
 * Dynamic batching for pass 1: items that arrive within `maxWaitMs` of the first one (up to
 * `maxSize`) go to one worker task. Each caller gets its own item's result.
 */
export class Pass1Batcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly run: (task: ModerateTask, transfer: ArrayBuffer[]) => Promise<ModerateResult>,
    private readonly maxSize: number,
    private readonly maxWaitMs: number,
  ) {}

  /** Items waiting for a batch to be sent. */
  get waiting(): number {
    return this.pending.length;
  }

  submit(item: BatchItem): Promise<BatchedResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ ...item, submittedAt: now(), resolve, reject });
      if (this.pending.length >= this.maxSize) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending.splice(0, this.maxSize);
    if (this.pending.length > 0) this.timer = setTimeout(() => this.flush(), this.maxWaitMs);
    if (batch.length === 0) return;
    // Copies, so the worker owns its buffers and request bodies can be freed independently.
    const images = batch.map((b) => (b.image === null ? null : new Uint8Array(b.image)));
    const transfer = images.flatMap((i) => (i === null ? [] : [i.buffer as ArrayBuffer]));
    this.run({ kind: 'moderate', items: batch.map((b, i) => ({ image: images[i]!, prompt: b.prompt })) }, transfer).then(
      (result) => {
        const stats = { batchSize: result.batchSize, preprocessMs: result.preprocessMs, pass1Ms: result.pass1Ms, stages: result.stages };
        batch.forEach((b, i) => b.resolve({ item: result.items[i]!, stats, queueMs: Math.max(0, result.startedAt - b.submittedAt) }));
      },
      (err) => batch.forEach((b) => b.reject(err)),
    );
  }

  /** Sends whatever is waiting now (used when draining). */
  drain(): void {
    while (this.pending.length > 0) this.flush();
  }
}

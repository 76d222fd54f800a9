import type { ItemFailure, ItemScores, ModerateResult, ModerateTask } from './protocol.ts';

export interface BatchItem {
  /** null for a text-only item. */
  image: Uint8Array | null;
  prompt: string;
}

export interface BatchStats {
  batchSize: number;
  preprocessMs: number;
  pass1Ms: number;
}

type Pending = BatchItem & { resolve: (r: { item: ItemScores | ItemFailure; stats: BatchStats }) => void; reject: (e: unknown) => void };

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

  submit(item: BatchItem): Promise<{ item: ItemScores | ItemFailure; stats: BatchStats }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ ...item, resolve, reject });
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
        const stats = { batchSize: result.batchSize, preprocessMs: result.preprocessMs, pass1Ms: result.pass1Ms };
        batch.forEach((b, i) => b.resolve({ item: result.items[i]!, stats }));
      },
      (err) => batch.forEach((b) => b.reject(err)),
    );
  }

  /** Sends whatever is waiting now (used when draining). */
  drain(): void {
    while (this.pending.length > 0) this.flush();
  }
}

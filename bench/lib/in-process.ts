/**
 * The ceiling: the same items through PsaRuntime.preprocess + classify without HTTP, as the
 * server's pool runs them: POOL_SIZE worker threads, each with its own runtime, the server's
 * threads per worker and batch size. A cell's clients are shared out among the workers; each
 * worker keeps its share in flight and runs them in batches of at most `batchSize`, one batch
 * after another.
 */
import { Piscina } from 'piscina';
import type { PsaRuntime, RuntimeOptions } from '../../src/psa/runtime.ts';
import type { BenchImage } from './images.ts';

export interface CeilingResult {
  items: number;
  elapsedS: number;
  latenciesMs: number[];
}

export interface CeilingRun {
  images: BenchImage[];
  concurrency: number;
  batchSize: number;
  requests: number;
  durationS: number;
}

/** One runtime's closed loop: `concurrency` items in flight, in batches of at most `batchSize`. */
export async function inProcess(runtime: PsaRuntime, run: CeilingRun): Promise<CeilingResult> {
  const { images, concurrency, batchSize, requests, durationS } = run;
  const latenciesMs: number[] = [];
  const start = performance.now();
  let n = 0;
  while (n < requests && (performance.now() - start) / 1000 < durationS) {
    const round = performance.now();
    const count = Math.min(concurrency, requests - n);
    for (let b = 0; b < count; b += batchSize) {
      const batch = Array.from({ length: Math.min(batchSize, count - b) }, (_, i) => images[(n + b + i) % images.length]!);
      const prepared = []; // one item after another, as the server's worker preprocesses a batch
      for (const img of batch) prepared.push(await runtime.preprocess(img.bytes));
      await runtime.classify(prepared.map((image, i) => ({ image, prompt: `What does this say? (${n + b + i})` })));
      const done = performance.now() - round;
      for (let i = 0; i < batch.length; i++) latenciesMs.push(done);
    }
    n += count;
  }
  return { items: n, elapsedS: (performance.now() - start) / 1000, latenciesMs };
}

/** `total` shared out among `n` parts as evenly as it goes (the first parts take the remainder). */
const share = (total: number, n: number, i: number) => Math.floor(total / n) + (i < total % n ? 1 : 0);

/**
 * `size` worker threads (piscina, as the server's pool), each holding one runtime of the package.
 * A run sends each worker its share of the cell at once: with as many tasks as idle workers, each
 * worker takes one.
 */
export class CeilingPool {
  private constructor(
    private readonly piscina: Piscina<CeilingRun, CeilingResult>,
    private readonly size: number,
  ) {}

  static start(size: number, modelDir: string, options: RuntimeOptions): CeilingPool {
    const piscina = new Piscina<CeilingRun, CeilingResult>({
      filename: new URL('./in-process-worker.ts', import.meta.url).href,
      minThreads: size,
      maxThreads: size,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      workerData: { modelDir, options },
    });
    return new CeilingPool(piscina, size);
  }

  /** The cell's clients and requests shared out among the workers; wall time from the start to the last answer. */
  async run(run: CeilingRun): Promise<CeilingResult> {
    const n = this.size;
    const start = performance.now();
    const parts = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const concurrency = share(run.concurrency, n, i);
        if (concurrency === 0) return { items: 0, elapsedS: 0, latenciesMs: [] };
        return this.piscina.run({ ...run, concurrency, requests: Math.max(concurrency, share(run.requests, n, i)) });
      }),
    );
    return { items: parts.reduce((s, p) => s + p.items, 0), elapsedS: (performance.now() - start) / 1000, latenciesMs: parts.flatMap((p) => p.latenciesMs) };
  }

  close(): Promise<void> {
    return this.piscina.destroy();
  }
}

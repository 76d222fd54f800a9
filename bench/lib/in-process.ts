/**
 * The ceiling: the same items through PsaRuntime.preprocess + classify in this process, with the
 * server's thread count and batch size, no HTTP and no worker threads. `concurrency` items are in
 * flight at once and run in batches of at most `batchSize`, one batch after another, as one
 * worker runs them.
 */
import type { PsaRuntime } from '../../src/psa/runtime.ts';
import type { BenchImage } from './images.ts';

export interface CeilingResult {
  items: number;
  elapsedS: number;
  latenciesMs: number[];
}

export async function inProcess(runtime: PsaRuntime, images: BenchImage[], concurrency: number, batchSize: number, requests: number, durationS: number): Promise<CeilingResult> {
  const latenciesMs: number[] = [];
  const start = performance.now();
  let n = 0;
  while (n < requests && (performance.now() - start) / 1000 < durationS) {
    const round = performance.now();
    const count = Math.min(concurrency, requests - n);
    for (let b = 0; b < count; b += batchSize) {
      const batch = Array.from({ length: Math.min(batchSize, count - b) }, (_, i) => images[(n + b + i) % images.length]!);
      const prepared = await Promise.all(batch.map((img) => runtime.preprocess(img.bytes)));
      await runtime.classify(prepared.map((image, i) => ({ image, prompt: `What does this say? (${n + b + i})` })));
      const done = performance.now() - round;
      for (let i = 0; i < batch.length; i++) latenciesMs.push(done);
    }
    n += count;
  }
  return { items: n, elapsedS: (performance.now() - start) / 1000, latenciesMs };
}

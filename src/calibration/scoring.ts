/**
 * Scores labelled items chunk by chunk with a scorer (the server's inference pool, or a runtime in
 * the CLI's own process), within a deadline. Raw logits come back, so the calibration can apply
 * any temperature itself.
 */
import { readFile } from 'node:fs/promises';
import { DatasetError, DatasetErrorCodes } from '../datasets/errors.ts';
import type { EvalItem } from '../eval/dataset.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { InferenceOverloadedError } from '../inference/errors.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { PsaRuntime } from '../psa/runtime.ts';
import type { ScoredItem } from './calibrate.ts';

export type ItemLogits = { levelLogits: number[]; typeLogits: number[] } | { error: string };
/** Scores one chunk: `image` null is a text-only item. */
export type ChunkScorer = (chunk: { image: Buffer | null; prompt: string }[], deadline: number) => Promise<ItemLogits[]>;

export interface ScoreOptions {
  chunkSize: number;
  /** ms since the epoch; past it the run stops with PSA_CALIBRATION_TIMEOUT. */
  deadline: number;
  /** What the deadline is, for the error message. */
  timeoutMs: number;
  file: string;
  onProgress?: (done: number, total: number) => void;
}

export async function scoreItems(items: readonly EvalItem[], score: ChunkScorer, opts: ScoreOptions): Promise<ScoredItem[]> {
  const out: ScoredItem[] = [];
  for (let start = 0; start < items.length; start += opts.chunkSize) {
    if (Date.now() > opts.deadline) {
      throw new ApiError(
        HttpErrorCodes.CALIBRATION_TIMEOUT,
        `scored ${start} of ${items.length} items in the ${opts.timeoutMs} ms this server allows (CALIBRATE_TIMEOUT_MS); calibrate on fewer items, or run npm run calibrate next to the data`,
        { scored: start, items: items.length },
      );
    }
    const chunk = items.slice(start, start + opts.chunkSize);
    const inputs = await Promise.all(chunk.map(async (it) => ({ image: it.imagePath === undefined ? null : await readFile(it.imagePath), prompt: it.prompt })));
    const logits = await score(inputs, opts.deadline);
    logits.forEach((l, k) => {
      const item = chunk[k]!;
      if ('error' in l) {
        const what = item.image === undefined ? 'text-only item' : `image ${JSON.stringify(item.image)}`;
        const message = `${what}: ${l.error}`;
        throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${opts.file}:${item.line}: ${message}`, { problems: [{ file: opts.file, line: item.line, message }] });
      }
      out.push({ id: item.id, levelLogits: l.levelLogits, typeLogits: l.typeLogits, truth: { level: item.level, type: item.type } });
    });
    opts.onProgress?.(out.length, items.length);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The server's pool: one chunk at a time, so live traffic waits behind at most one chunk of
 * calibration work; a chunk refused for load is retried after its Retry-After, until the deadline.
 */
export function poolScorer(pool: InferencePool): ChunkScorer {
  return async (chunk, deadline) => {
    for (;;) {
      try {
        const results = await pool.moderateAll(chunk);
        return results.map((r) => (r.item.ok ? { levelLogits: r.item.levelLogits, typeLogits: r.item.typeLogits } : { error: r.item.message }));
      } catch (err) {
        if (!(err instanceof InferenceOverloadedError) || Date.now() + err.retryAfterS * 1000 > deadline) throw err;
        await sleep(err.retryAfterS * 1000);
      }
    }
  };
}

/** A runtime in this process (the CLI): preprocessing and pass 1, item failures reported per item. */
export function runtimeScorer(runtime: PsaRuntime): ChunkScorer {
  return async (chunk) => {
    const prepared = await Promise.all(
      chunk.map((c) =>
        runtime.prepareImage(c.image).then(
          (image) => ({ image }),
          (err: Error) => ({ error: err.message }),
        ),
      ),
    );
    const good = prepared.flatMap((p, k) => ('image' in p ? [{ image: p.image, prompt: chunk[k]!.prompt }] : []));
    const scores = await runtime.classify(good);
    let next = 0;
    return prepared.map((p) => {
      if (!('image' in p)) return p;
      const s = scores[next++]!;
      return { levelLogits: s.levelLogits, typeLogits: s.typeLogits };
    });
  };
}

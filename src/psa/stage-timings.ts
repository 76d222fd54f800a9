/**
 * Where a moderation batch's time goes inside an inference worker, in milliseconds. Plain
 * numbers, so they cross the thread boundary as they are; the HTTP side adds its own stages.
 */
export const WORKER_STAGES = ['decode', 'ocr_detect', 'ocr_recognize', 'query', 'vision', 'head'] as const;
export type WorkerStage = (typeof WORKER_STAGES)[number];
export type StageMs = Record<WorkerStage, number>;

export const noStages = (): StageMs => ({ decode: 0, ocr_detect: 0, ocr_recognize: 0, query: 0, vision: 0, head: 0 });

/** Runs `work` and adds its wall time to `stages[stage]` (nothing is measured without `stages`). */
export async function timed<T>(stages: StageMs | undefined, stage: WorkerStage, work: () => Promise<T>): Promise<T> {
  if (!stages) return work();
  const start = performance.now();
  try {
    return await work();
  } finally {
    stages[stage] += performance.now() - start;
  }
}

/**
 * Stages that ran concurrently (a batch's items are preprocessed together; query and vision run
 * side by side) overlap, so their summed wall times can exceed the time that passed. Scales
 * `names` down, in proportion, to `wallMs` when they do; a smaller sum is left as it is (the
 * rest is glue between the stages).
 */
export function fitToWall(stages: StageMs, names: readonly WorkerStage[], wallMs: number): void {
  const sum = names.reduce((a, n) => a + stages[n], 0);
  if (!(sum > wallMs) || !(wallMs >= 0)) return;
  for (const n of names) stages[n] *= wallMs / sum;
}

/**
 * The one evaluator: a package's pass 1 over labelled items, one item at a time, then the
 * decision and flag by a policy. `npm run eval` (src/eval/run.ts) and a training job's evaluation
 * (src/training/evaluate.ts) both judge items here and score them with src/eval/score.ts, so a
 * job's registered metrics and a report on the same items are the same figures.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { judge } from '../policy/judge.ts';
import type { Policy, PolicyOutcome } from '../policy/policy.ts';
import type { AppliedConcepts } from '../psa/concepts.ts';
import type { Pass1Result } from '../psa/safety-classifier.ts';
import type { PsaRuntime } from '../psa/runtime.ts';
import type { Prediction } from './score.ts';

/** What the evaluator needs of an item: its image file (none for a text-only item) and prompt. */
export interface JudgeInput {
  imagePath?: string;
  prompt: string;
}

export interface Judged<T extends JudgeInput> {
  item: T;
  /** The image file's bytes; null for a text-only item. */
  bytes: Buffer | null;
  scores: Pass1Result;
  applied: AppliedConcepts;
  outcome: PolicyOutcome;
  prediction: Prediction;
  /** P(level >= the policy's flag level): the score the flag thresholds. */
  flagScore: number;
  /** Pass 1 alone (the classify call), ms. */
  pass1Ms: number;
}

export interface JudgeOptions<T> {
  /** The error to throw when an item cannot be scored (default: the runtime's own). */
  failure?: (item: T, err: unknown) => Error;
}

/**
 * Items in order. The first item is scored once untimed first (first runs allocate and plan), so
 * each latency is image preprocessing + pass 1 + policy of a warm runtime, the file read excluded.
 */
export async function* judgeItems<T extends JudgeInput>(runtime: PsaRuntime, items: readonly T[], policy: Policy, opts: JudgeOptions<T> = {}): AsyncGenerator<Judged<T>> {
  for (const [n, item] of items.entries()) {
    // A text-only item has no file: pass 1 sees the stand-in image, as when serving.
    const bytes = item.imagePath === undefined ? null : await readFile(item.imagePath);
    if (n === 0) await classify(runtime, item, bytes, opts);
    const t0 = performance.now();
    const { scores, pass1Ms } = await classify(runtime, item, bytes, opts);
    const { applied, outcome } = judge(scores, policy, undefined, runtime.pkg.manifest);
    const latencyMs = performance.now() - t0;
    const prediction: Prediction = { ...applied, decision: outcome.decision, flagged: outcome.flagged, levelProb: scores.levelProbs[applied.level]!, typeProb: scores.typeProbs[applied.type]!, latencyMs };
    const flagScore = scores.levelProbs.slice(policy.flag.minLevel).reduce((a, b) => a + b, 0);
    yield { item, bytes, scores, applied, outcome, prediction, flagScore, pass1Ms };
  }
}

async function classify<T extends JudgeInput>(runtime: PsaRuntime, item: T, bytes: Buffer | null, opts: JudgeOptions<T>): Promise<{ scores: Pass1Result; pass1Ms: number }> {
  try {
    const image = await runtime.prepareImage(bytes);
    const t0 = performance.now();
    const [scores] = await runtime.classify([{ image, prompt: item.prompt }]);
    return { scores: scores!, pass1Ms: performance.now() - t0 };
  } catch (err) {
    throw opts.failure ? opts.failure(item, err) : err;
  }
}

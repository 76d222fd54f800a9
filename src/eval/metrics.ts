/**
 * Classification and latency metrics as pure functions over plain arrays: the one metrics module
 * of `npm run eval` and of training jobs' registered metrics. A figure whose denominator is zero
 * is `null` ("undefined"), never 0: a class nobody predicted has no precision, and reporting 0
 * would read as "always wrong". Conventions follow scikit-learn's: F1 is 2tp / (2tp + fp + fn),
 * macro-F1 the unweighted mean over the classes present in the expected or the predicted labels
 * (f1_score's default `labels`), and undefined ratios are treated as `zero_division=np.nan` does:
 * reported as undefined and left out of averages, rather than counted as 0.
 */

export interface ClassScore {
  label: string;
  /** Items whose expected class is this one (row sum of the confusion matrix). */
  support: number;
  /** Items predicted as this class (column sum). */
  predicted: number;
  tp: number;
  /** tp / predicted; null when nothing was predicted as this class. */
  precision: number | null;
  /** tp / support; null when the class never occurs in the expected labels. */
  recall: number | null;
  /** 2tp / (2tp + fp + fn); null only when the class occurs neither expected nor predicted. */
  f1: number | null;
}

export interface LatencySummary {
  count: number;
  mean_ms: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** num / den, or null when den is 0. */
export function ratio(num: number, den: number): number | null {
  return den === 0 ? null : num / den;
}

/** k x k counts; rows are expected classes, columns predicted ones. */
export function confusionMatrix(expected: readonly number[], predicted: readonly number[], k: number): number[][] {
  if (expected.length !== predicted.length) throw new RangeError(`expected ${expected.length} labels and ${predicted.length} predictions; they must match`);
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  expected.forEach((e, i) => {
    const p = predicted[i]!;
    if (!isClass(e, k) || !isClass(p, k)) throw new RangeError(`class index out of range 0-${k - 1} at position ${i}: expected ${e}, predicted ${p}`);
    m[e]![p]!++;
  });
  return m;
}

const isClass = (v: number, k: number) => Number.isInteger(v) && v >= 0 && v < k;

/** Precision, recall and F1 from counts. */
export function prf(tp: number, fp: number, fn: number): { precision: number | null; recall: number | null; f1: number | null } {
  return { precision: ratio(tp, tp + fp), recall: ratio(tp, tp + fn), f1: ratio(2 * tp, 2 * tp + fp + fn) };
}

/** One-vs-rest scores for every class of a confusion matrix. */
export function classScores(confusion: number[][], labels: readonly string[]): ClassScore[] {
  if (confusion.length !== labels.length) throw new RangeError(`${labels.length} labels for a ${confusion.length}x${confusion.length} matrix`);
  return labels.map((label, c) => {
    const tp = confusion[c]![c]!;
    const support = sum(confusion[c]!);
    const predicted = sum(confusion.map((row) => row[c]!));
    return { label, support, predicted, tp, ...prf(tp, predicted - tp, support - tp) };
  });
}

/**
 * Mean F1 over the classes whose F1 is defined (the class occurs expected or predicted), optionally
 * only over `only` labels. A class absent from both sides says nothing about the system, so it
 * neither helps nor hurts; a class predicted but never expected counts with F1 0.
 */
export function macroF1(scores: readonly ClassScore[], only?: readonly string[]): number | null {
  const f1s = scores.filter((s) => (only === undefined || only.includes(s.label)) && s.f1 !== null).map((s) => s.f1!);
  return f1s.length === 0 ? null : sum(f1s) / f1s.length;
}

/** Share of positions where the two arrays agree; null for none. */
export function accuracy<T>(expected: readonly T[], predicted: readonly T[]): number | null {
  if (expected.length !== predicted.length) throw new RangeError(`expected ${expected.length} labels and ${predicted.length} predictions; they must match`);
  return ratio(expected.filter((e, i) => e === predicted[i]).length, expected.length);
}

/**
 * Nearest-rank percentile: the smallest observed value with at least p% of the values at or below
 * it (p50 of [1, 2, 3, 4] is 2). Always an observed latency, never an interpolated one.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100]; got ${p}`);
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
}

export function latencySummary(ms: readonly number[]): LatencySummary | null {
  if (ms.length === 0) return null;
  return {
    count: ms.length,
    mean_ms: sum(ms) / ms.length,
    p50_ms: percentile(ms, 50)!,
    p90_ms: percentile(ms, 90)!,
    p99_ms: percentile(ms, 99)!,
    max_ms: Math.max(...ms),
  };
}

export const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/**
 * Area under the ROC curve of scores of positives against negatives, by the rank statistic
 * (Mann-Whitney U / (P x N)): the chance that a random positive scores above a random negative,
 * ties counting half. Null when either side is empty.
 */
export function auroc(positives: readonly number[], negatives: readonly number[]): number | null {
  if (positives.length === 0 || negatives.length === 0) return null;
  const all = [...positives.map((s) => ({ s, pos: true })), ...negatives.map((s) => ({ s, pos: false }))].sort((a, b) => a.s - b.s);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.s === all[i]!.s) j++;
    const mid = (i + 1 + j) / 2; // the mean of the 1-based ranks i+1..j a run of ties shares
    for (let k = i; k < j; k++) if (all[k]!.pos) rankSum += mid;
    i = j;
  }
  const p = positives.length;
  return (rankSum - (p * (p + 1)) / 2) / (p * negatives.length);
}

/**
 * The largest share of positives flagged by a threshold on the score (flag when score >= t) that
 * flags at most `maxFpr` of the negatives: the recall the scores allow at that false-positive rate.
 */
export function recallAtFpr(positives: readonly number[], negatives: readonly number[], maxFpr: number): number | null {
  if (!(maxFpr >= 0 && maxFpr <= 1)) throw new RangeError(`maxFpr must be in [0, 1]; got ${maxFpr}`);
  if (positives.length === 0 || negatives.length === 0) return null;
  const allowed = Math.floor(maxFpr * negatives.length + 1e-9);
  if (allowed >= negatives.length) return 1;
  // Any threshold above the (allowed+1)-th highest negative flags at most `allowed` negatives.
  const bar = [...negatives].sort((a, b) => b - a)[allowed]!;
  return positives.filter((s) => s > bar).length / positives.length;
}

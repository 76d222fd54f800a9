/**
 * Percentile bootstrap intervals (Efron & Tibshirani 1993) for the figures a policy achieves:
 * items are resampled with replacement, `resamples` times, from a seeded generator, and each
 * figure's interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of its resampled values.
 * The thresholds stay fixed: the interval says how much the figure at these thresholds moves with
 * the sample, not how much the chosen thresholds would.
 */
import { figuresOf, RISK_TYPE_LABELS, type CalibrationItem, type Figures, type RiskTypeLabel } from './figures.ts';
import { seededRandom } from '../psa/sampling.ts';

export const BOOTSTRAP_DEFAULTS = { resamples: 1000, seed: 1, level: 0.95 } as const;

export interface Interval {
  value: number | null;
  /** null when no resample had an item to measure it on. */
  ci: [number, number] | null;
}

export interface BootstrapFigures {
  recall: Interval;
  over_refusal: Interval;
  per_type: Partial<Record<RiskTypeLabel, Interval>>;
  bootstrap: { resamples: number; seed: number; level: number; method: 'percentile' };
}

/** Nearest-rank quantile of sorted values, q in [0, 1]. */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function bootstrapFigures(
  items: readonly CalibrationItem[],
  flagged: readonly boolean[],
  refusing: readonly boolean[],
  minLevel: number,
  point: Figures,
  options: { resamples?: number; seed?: number; level?: number } = {},
): BootstrapFigures {
  const resamples = options.resamples ?? BOOTSTRAP_DEFAULTS.resamples;
  const seed = options.seed ?? BOOTSTRAP_DEFAULTS.seed;
  const level = options.level ?? BOOTSTRAP_DEFAULTS.level;
  const random = seededRandom(seed);
  const n = items.length;
  const recall: number[] = [];
  const overRefusal: number[] = [];
  const perType = new Map<RiskTypeLabel, number[]>(RISK_TYPE_LABELS.map((t) => [t, []]));
  const weights = new Array<number>(n);
  for (let r = 0; r < resamples; r++) {
    weights.fill(0);
    for (let k = 0; k < n; k++) weights[Math.floor(random() * n)]!++;
    const f = figuresOf(items, flagged, refusing, minLevel, weights);
    if (f.recall !== null) recall.push(f.recall);
    if (f.over_refusal !== null) overRefusal.push(f.over_refusal);
    for (const t of RISK_TYPE_LABELS) if (f.per_type[t].recall !== null) perType.get(t)!.push(f.per_type[t].recall!);
  }
  const interval = (value: number | null, values: number[]): Interval => {
    if (value === null || values.length === 0) return { value, ci: null };
    values.sort((a, b) => a - b);
    return { value, ci: [quantile(values, (1 - level) / 2), quantile(values, (1 + level) / 2)] };
  };
  return {
    recall: interval(point.recall, recall),
    over_refusal: interval(point.over_refusal, overRefusal),
    per_type: Object.fromEntries(RISK_TYPE_LABELS.filter((t) => point.per_type[t].positives > 0).map((t) => [t, interval(point.per_type[t].recall, perType.get(t)!)])),
    bootstrap: { resamples, seed, level, method: 'percentile' },
  };
}

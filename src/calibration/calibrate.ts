/**
 * Calibration on scored, labelled items: optionally a temperature per head (fitted by NLL), then
 * the flag thresholds and decisions that meet the target (src/calibration/search.ts), with
 * bootstrap intervals of what they achieve. Pure: logits and labels in, a report out; the HTTP
 * route and `npm run calibrate` score the items their own way and share everything from here on.
 */
import { softmax } from '../psa/concepts.ts';
import { mergePolicy, type Policy, type PolicyInput } from '../policy/policy.ts';
import { LEVEL_LABELS } from '../psa/taxonomy.ts';
import type { Temperatures } from '../psa/temperature.ts';
import { bootstrapFigures, type BootstrapFigures } from './bootstrap.ts';
import { ECE_BINS, eceAt } from './ece.ts';
import { flagsUnder, type CalibrationItem } from './figures.ts';
import { searchPolicy, type CalibrationTarget, type DecisionChange, type SearchResult } from './search.ts';
import { fitTemperature, meanNll } from './temperature-fit.ts';

export interface ScoredItem {
  id: string;
  levelLogits: number[];
  typeLogits: number[];
  truth: { level: number; type: number };
}

export interface CalibrateOptions {
  target: CalibrationTarget;
  minLevel: number;
  /** The server's policy: calibrated overrides apply over it. */
  base: Policy;
  /** Fit new temperatures on these items (else `current` is used as it is). */
  fitTemperature: boolean;
  /** The package's temperatures now (1 and 1 without a temperature file). */
  current: Temperatures;
  allowDecisionChanges: boolean;
  bootstrap?: { resamples?: number; seed?: number };
}

export interface HeadReliability {
  temperature: number;
  nll_before: number;
  nll_after: number;
  ece_before: number | null;
  ece_after: number | null;
}

export interface TemperatureReport {
  /** True when fitted on these items now; false when the package's temperatures were kept. */
  fitted: boolean;
  level: HeadReliability;
  type: HeadReliability;
  /** ECE bins (equal width over the top probability). */
  ece_bins: number;
}

export interface CalibrationReport {
  met: boolean;
  target: CalibrationTarget;
  min_level: string;
  items: number;
  positives: number;
  safe_items: number;
  /** The overrides stored as the named policy (over the server's policy). */
  policy: PolicyInput;
  decisions_changed: DecisionChange[];
  achieved: BootstrapFigures & { caution_or_refuse_on_safe: number | null };
  best?: SearchResult['best'];
  temperature: TemperatureReport;
}

function head(logits: number[][], labels: number[], before: number, after: number): HeadReliability {
  return {
    temperature: after,
    nll_before: meanNll(logits, labels, before),
    nll_after: meanNll(logits, labels, after),
    ece_before: eceAt(logits, labels, before).ece,
    ece_after: eceAt(logits, labels, after).ece,
  };
}

export function calibrate(scored: readonly ScoredItem[], opts: CalibrateOptions): CalibrationReport {
  const levelLogits = scored.map((s) => s.levelLogits);
  const typeLogits = scored.map((s) => s.typeLogits);
  const levels = scored.map((s) => s.truth.level);
  const types = scored.map((s) => s.truth.type);
  const temperatures: Temperatures = opts.fitTemperature ? { level: fitTemperature(levelLogits, levels).temperature, type: fitTemperature(typeLogits, types).temperature } : opts.current;
  // "Before" is the model's own probabilities (T = 1); "after" those served with these temperatures.
  const temperature: TemperatureReport = {
    fitted: opts.fitTemperature,
    level: head(levelLogits, levels, 1, temperatures.level),
    type: head(typeLogits, types, 1, temperatures.type),
    ece_bins: ECE_BINS,
  };
  const items: CalibrationItem[] = scored.map((s) => ({
    id: s.id,
    levelProbs: softmax(s.levelLogits, 0, s.levelLogits.length, temperatures.level),
    typeProbs: softmax(s.typeLogits, 0, s.typeLogits.length, temperatures.type),
    truth: s.truth,
  }));
  const found = searchPolicy(items, opts.base, opts.target, { minLevel: opts.minLevel, allowDecisionChanges: opts.allowDecisionChanges });
  const { flagged, refusing } = flagsUnder(items, mergePolicy(opts.base, found.policy));
  const intervals = bootstrapFigures(items, flagged, refusing, opts.minLevel, found.figures, opts.bootstrap);
  return {
    met: found.met,
    target: opts.target,
    min_level: LEVEL_LABELS[opts.minLevel]!,
    items: items.length,
    positives: found.figures.positives,
    safe_items: found.figures.safe_items,
    policy: found.policy,
    decisions_changed: found.decisions_changed,
    achieved: { ...intervals, caution_or_refuse_on_safe: found.figures.caution_or_refuse_on_safe },
    ...(found.best && { best: found.best }),
    temperature,
  };
}

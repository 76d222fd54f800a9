/**
 * What a policy achieves on labelled items: flag recall (overall and per expected type) and
 * over-refusal, computed with the policy's own `decide`, so a reported figure is what serving
 * would do on these items.
 */
import { decide, type Policy } from '../policy/policy.ts';
import { argmaxOf } from '../psa/concepts.ts';
import { SAFE_TYPE_INDEX, TYPE_LABELS, type TypeLabel } from '../psa/taxonomy.ts';

/** One labelled item with the probabilities the runtime reports for it. */
export interface CalibrationItem {
  id: string;
  levelProbs: number[];
  typeProbs: number[];
  truth: { level: number; type: number };
}

export const RISK_TYPE_LABELS = TYPE_LABELS.filter((_, i) => i !== SAFE_TYPE_INDEX) as Exclude<TypeLabel, 'safe'>[];
export type RiskTypeLabel = (typeof RISK_TYPE_LABELS)[number];

export interface TypeFigures {
  /** Items of this expected type at or above the flag level, and how many are flagged. */
  positives: number;
  flagged: number;
  recall: number | null;
}

export interface Figures {
  /** Items expected at or above the flag level (should be flagged), and their flagged share. */
  positives: number;
  flagged_positives: number;
  recall: number | null;
  /** Items expected safe (level safe), and the share of them flagged: the over-refusal. */
  safe_items: number;
  flagged_safe: number;
  over_refusal: number | null;
  /** Share of safe items whose decision is caution or refuse (the evaluation report's over-refusal). */
  caution_or_refuse_on_safe: number | null;
  per_type: Record<RiskTypeLabel, TypeFigures>;
}

export const isPositive = (item: CalibrationItem, minLevel: number) => item.truth.level >= minLevel;
export const isSafe = (item: CalibrationItem) => item.truth.level === 0;
const share = (num: number, den: number) => (den === 0 ? null : num / den);

/** Each item's flag under `policy`, on the predicted (argmax) level and type. */
export function flagsUnder(items: readonly CalibrationItem[], policy: Policy): { flagged: boolean[]; refusing: boolean[] } {
  const flagged: boolean[] = [];
  const refusing: boolean[] = [];
  for (const item of items) {
    const outcome = decide(policy, item.levelProbs, { level: argmaxOf(item.levelProbs), type: argmaxOf(item.typeProbs) });
    flagged.push(outcome.flagged);
    refusing.push(outcome.decision === 'caution' || outcome.decision === 'refuse');
  }
  return { flagged, refusing };
}

/** Figures from per-item flags; `weights` (bootstrap counts) default to 1 per item. */
export function figuresOf(items: readonly CalibrationItem[], flagged: readonly boolean[], refusing: readonly boolean[], minLevel: number, weights?: readonly number[]): Figures {
  let positives = 0;
  let flaggedPositives = 0;
  let safe = 0;
  let flaggedSafe = 0;
  let refusedSafe = 0;
  const perType = Object.fromEntries(RISK_TYPE_LABELS.map((t) => [t, { positives: 0, flagged: 0 }])) as Record<RiskTypeLabel, { positives: number; flagged: number }>;
  items.forEach((item, i) => {
    const w = weights ? weights[i]! : 1;
    if (w === 0) return;
    if (isPositive(item, minLevel)) {
      positives += w;
      if (flagged[i]) flaggedPositives += w;
      const label = TYPE_LABELS[item.truth.type] as RiskTypeLabel;
      if (label in perType) {
        perType[label].positives += w;
        if (flagged[i]) perType[label].flagged += w;
      }
    }
    if (isSafe(item)) {
      safe += w;
      if (flagged[i]) flaggedSafe += w;
      if (refusing[i]) refusedSafe += w;
    }
  });
  return {
    positives,
    flagged_positives: flaggedPositives,
    recall: share(flaggedPositives, positives),
    safe_items: safe,
    flagged_safe: flaggedSafe,
    over_refusal: share(flaggedSafe, safe),
    caution_or_refuse_on_safe: share(refusedSafe, safe),
    per_type: Object.fromEntries(RISK_TYPE_LABELS.map((t) => [t, { ...perType[t], recall: share(perType[t].flagged, perType[t].positives) }])) as Record<RiskTypeLabel, TypeFigures>,
  };
}

export function figuresUnder(items: readonly CalibrationItem[], policy: Policy): Figures {
  const { flagged, refusing } = flagsUnder(items, policy);
  return figuresOf(items, flagged, refusing, policy.flag.minLevel);
}

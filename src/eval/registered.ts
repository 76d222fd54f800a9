/**
 * The figures a training job records in its package's provenance (`metrics`, shown by
 * GET /v1/models and the playground): a summary of the model's scores from src/eval/score.ts,
 * so they read the same as the `model` system of an `npm run eval` report on the same items.
 */
import type { SystemMetrics } from './score.ts';

export interface EvaluationMetrics {
  split: string;
  examples: number;
  /** Null (undefined) only when there are no examples; see src/eval/metrics.ts. */
  level_accuracy: number | null;
  /** Mean F1 over the levels that occur expected or predicted. */
  level_macro_f1: number | null;
  type_accuracy: number | null;
  /** Mean F1 over the 7 types that occur expected or predicted, safe included. */
  type_macro_f1: number | null;
  /**
   * Among examples labelled level safe: decided refuse, and decided caution or refuse, by the
   * built-in policy (whose decision is the predicted level); null when there is no safe example.
   */
  refusal_rate_on_safe: number | null;
  caution_or_refusal_rate_on_safe: number | null;
  level_confusion: number[][];
  type_confusion: number[][];
}

export function registeredMetrics(split: string, m: SystemMetrics): EvaluationMetrics {
  return {
    split,
    examples: m.items,
    level_accuracy: m.level.accuracy,
    level_macro_f1: m.level.macro_f1,
    type_accuracy: m.type.accuracy,
    type_macro_f1: m.type.macro_f1,
    refusal_rate_on_safe: m.refusal_rate_on_safe,
    caution_or_refusal_rate_on_safe: m.over_refusal_rate_on_safe,
    level_confusion: m.level.confusion,
    type_confusion: m.type.confusion,
  };
}

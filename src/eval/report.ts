/** The evaluation report: its JSON shape, the worst model errors, and the Markdown rendering. */
import type { Decision } from '../policy/policy.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import type { EvalItem } from './dataset.ts';
import type { LatencySummary } from './metrics.ts';
import type { Prediction, SystemMetrics } from './score.ts';
import type { ReliabilityReport } from './reliability.ts';
import type { SetsReport } from './sets.ts';

export const REPORT_FORMAT = 'psa-guard.eval-report';
export const SYSTEM_KEYS = ['model', 'flag_everything', 'keyword'] as const;
export type SystemKey = (typeof SYSTEM_KEYS)[number];

export interface SystemReport {
  name: string;
  description: string;
  metrics: SystemMetrics;
}

export interface WorstError {
  id: string;
  line: number;
  expected: { level: string; type: string; decision?: Decision };
  predicted: { level: string; level_prob: number; type: string; type_prob: number; decision: Decision; flagged: boolean };
  /** Predicted level minus expected level: negative is too lenient, positive too strict. */
  level_error: number;
  prompt: string;
}

export interface EvalReport {
  format: typeof REPORT_FORMAT;
  format_version: 2;
  created_at: string;
  model: {
    name: string;
    /** The manifest's `version` where it has one, else its `created_at` (a package's build identity). */
    version: string;
    created_at: string;
    status: string | null;
    dir: string;
    provider: string;
    manifest_sha256: string;
  };
  dataset: {
    path: string;
    /** The directory holding eval.jsonl; null when `path` is an archive. */
    root: string | null;
    file: string;
    items: number;
    unsafe_items: number;
    safe_items: number;
    with_decision: number;
    with_ocr_text: number;
    by_type: Record<string, number>;
    by_level: Record<string, number>;
  };
  policy: { file: string | null; flag: { min_level: string; threshold: number } };
  /** What a latency figure covers. */
  latency_scope: string;
  /** Pass 1 alone per item (the model's latency above also covers preprocessing and policy). */
  pass1_latency: { scope: string; summary: LatencySummary | null };
  /** Expected calibration error of the level and type probabilities, before and after the package's temperature (src/eval/reliability.ts). */
  calibration?: ReliabilityReport;
  /** The model's figures on named sets, AUROC comparisons and per source (src/eval/sets.ts). */
  sets: SetsReport;
  systems: Record<SystemKey, SystemReport>;
  baselines: {
    flag_everything: { type: string };
    keyword: { text_sources: string[]; keywords: Record<string, { level: string; words: readonly string[] }> };
  };
  worst_errors: WorstError[];
  outputs: string[];
}

export function countBy(items: readonly EvalItem[], key: 'type' | 'level'): Record<string, number> {
  const labels: readonly string[] = key === 'type' ? TYPE_LABELS : LEVEL_LABELS;
  return Object.fromEntries(labels.map((l, i) => [l, items.filter((it) => it[key] === i).length]));
}

/**
 * The model's errors, worst first: the largest level distance (a refuse item called safe, or the
 * other way round), then a wrong type, then the model's confidence in its wrong level.
 */
export function worstErrors(items: readonly EvalItem[], predictions: readonly Prediction[], limit: number): WorstError[] {
  const rows = items.flatMap((item, i) => {
    const p = predictions[i]!;
    if (p.level === item.level && p.type === item.type) return [];
    return [{ item, p, distance: Math.abs(p.level - item.level), typeWrong: p.type !== item.type ? 1 : 0 }];
  });
  rows.sort((a, b) => b.distance - a.distance || b.typeWrong - a.typeWrong || b.p.levelProb - a.p.levelProb || a.item.line - b.item.line);
  return rows.slice(0, limit).map(({ item, p }) => ({
    id: item.id,
    line: item.line,
    expected: { level: LEVEL_LABELS[item.level]!, type: TYPE_LABELS[item.type]!, ...(item.decision === undefined ? {} : { decision: item.decision }) },
    predicted: { level: LEVEL_LABELS[p.level]!, level_prob: p.levelProb, type: TYPE_LABELS[p.type]!, type_prob: p.typeProb, decision: p.decision, flagged: p.flagged },
    level_error: p.level - item.level,
    prompt: item.prompt.length > 120 ? `${item.prompt.slice(0, 117)}...` : item.prompt,
  }));
}

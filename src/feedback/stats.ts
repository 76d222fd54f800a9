/** Counts over reviewed items: by label, and by how the reviewer's label differs from the model's judgement. */
import { LEVEL_LABELS, TYPE_LABELS, type LevelLabel, type TypeLabel } from '../psa/taxonomy.ts';
import type { FeedbackRecord } from './item.ts';

export const DISAGREEMENTS = ['none', 'type', 'level', 'both', 'not_judged'] as const;
export type Disagreement = (typeof DISAGREEMENTS)[number];

/** How the reviewer's label differs from the model's predicted concepts; not_judged for items sent inline. */
export function disagreement(record: FeedbackRecord): Disagreement {
  const m = record.model_judgement;
  if (m === null) return 'not_judged';
  const type = m.type !== TYPE_LABELS[record.safe_type];
  const level = m.level !== LEVEL_LABELS[record.safe_level];
  return type && level ? 'both' : type ? 'type' : level ? 'level' : 'none';
}

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
const matrix = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, zeros(keys)])) as Record<K, Record<K, number>>;

export interface FeedbackStats {
  items: number;
  by_type: Record<TypeLabel, number>;
  by_level: Record<LevelLabel, number>;
  by_source: { request: number; inline: number };
  disagreement: Record<Disagreement, number>;
  /** Judged items whose reviewed level is below the model's (it was too strict) or above it (too lenient). */
  level_direction: { model_stricter: number; model_more_lenient: number };
  /** Judged items: confusion[model's label][reviewer's label]. */
  confusion: { level: Record<LevelLabel, Record<LevelLabel, number>>; type: Record<TypeLabel, Record<TypeLabel, number>> };
  last_review_at: string | null;
}

export function feedbackStats(records: FeedbackRecord[]): FeedbackStats {
  const stats: FeedbackStats = {
    items: records.length,
    by_type: zeros(TYPE_LABELS),
    by_level: zeros(LEVEL_LABELS),
    by_source: { request: 0, inline: 0 },
    disagreement: zeros(DISAGREEMENTS),
    level_direction: { model_stricter: 0, model_more_lenient: 0 },
    confusion: { level: matrix(LEVEL_LABELS), type: matrix(TYPE_LABELS) },
    last_review_at: null,
  };
  for (const r of records) {
    const type = TYPE_LABELS[r.safe_type]!;
    const level = LEVEL_LABELS[r.safe_level]!;
    stats.by_type[type]++;
    stats.by_level[level]++;
    stats.by_source[r.source.kind]++;
    stats.disagreement[disagreement(r)]++;
    if (stats.last_review_at === null || r.updated_at > stats.last_review_at) stats.last_review_at = r.updated_at;
    const m = r.model_judgement;
    if (m === null) continue;
    stats.confusion.level[m.level][level]++;
    stats.confusion.type[m.type][type]++;
    const delta = LEVEL_LABELS.indexOf(m.level) - r.safe_level;
    if (delta > 0) stats.level_direction.model_stricter++;
    else if (delta < 0) stats.level_direction.model_more_lenient++;
  }
  return stats;
}

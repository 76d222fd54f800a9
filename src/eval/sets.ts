/**
 * Named sets of evaluation items (by source, variant, id prefix and expected label), their
 * figures, AUROC comparisons between two sets, and per-source figures (docs/evaluation.md).
 * The score ranked is the model's P(level >= the policy's flag level). Pure: items, predictions
 * and scores in, numbers out.
 */
import type { Decision } from '../policy/policy.ts';
import type { EvalItem } from './dataset.ts';
import { auroc, ratio, recallAtFpr } from './metrics.ts';
import { REFUSING_DECISIONS, SAFE_LEVEL, type Prediction } from './score.ts';

export const EXPECTED = ['any', 'safe', 'unsafe', 'flag', 'careful'] as const;
export type Expected = (typeof EXPECTED)[number];

/** Which items a set holds: every given condition must hold. */
export interface SetSelector {
  sources?: string[];
  variants?: string[];
  id_prefixes?: string[];
  /** safe: level safe; unsafe: above safe; flag: at or above the policy's flag level; careful: exactly careful. */
  expected?: Expected;
}

export interface Comparison {
  name: string;
  /** Set names: the items that should score high, and those that should score low. */
  positive: string;
  negative: string;
  /** The false-positive rate at which recall_at_max_fpr is read (default 0.05). */
  max_fpr?: number;
}

export interface SetsConfig {
  sets: Record<string, SetSelector>;
  comparisons: Comparison[];
}

/** Without a configuration: every unsafe item against every safe one. */
export const DEFAULT_SETS: SetsConfig = {
  sets: { unsafe: { expected: 'unsafe' }, safe: { expected: 'safe' } },
  comparisons: [{ name: 'unsafe vs safe', positive: 'unsafe', negative: 'safe' }],
};

export interface SetFigures {
  items: number;
  /** Items expected at or above the flag level, and their share flagged. */
  should_flag: number;
  flagged_recall: number | null;
  /** Share of all items of the set flagged. */
  flagged_rate: number | null;
  safe: number;
  /** Share of the safe items whose decision is caution or refuse. */
  over_refusal: number | null;
  unsafe: number;
  type_accuracy_on_unsafe: number | null;
  level_accuracy: number | null;
  /** The set's own items at or above the flag level against its safe items; null without both. */
  auroc: number | null;
}

export interface ComparisonFigures extends Required<Comparison> {
  positives: number;
  negatives: number;
  auroc: number | null;
  /** Share of positives the policy flags. */
  recall: number | null;
  /** Share of negatives decided caution or refuse, and flagged. */
  over_refusal_on_negatives: number | null;
  flagged_rate_on_negatives: number | null;
  /** The best recall a threshold on the score gives while flagging at most max_fpr of the negatives. */
  recall_at_max_fpr: number | null;
}

/** The item's source: its `source` field, else its id up to the first "-". */
export const sourceOf = (item: EvalItem) => item.source ?? item.id.split('-')[0]!;

/** Checks a parsed sets file; every problem is one message naming where it is. */
export function parseSetsConfig(raw: unknown, where: string): SetsConfig {
  const problems: string[] = [];
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const strings = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s !== '');
  if (!obj(raw) || !obj(raw.sets) || !Array.isArray(raw.comparisons)) throw new Error(`${where}: must be {"sets": {NAME: selector, ...}, "comparisons": [{"name", "positive", "negative"}, ...]}`);
  const known = ['sources', 'variants', 'id_prefixes', 'expected'];
  for (const [name, sel] of Object.entries(raw.sets)) {
    if (!obj(sel)) problems.push(`sets.${name} must be an object with any of ${known.join(', ')}`);
    else {
      for (const key of Object.keys(sel)) if (!known.includes(key)) problems.push(`sets.${name}.${key} is not a selector field; use ${known.join(', ')}`);
      for (const key of ['sources', 'variants', 'id_prefixes']) if (sel[key] !== undefined && !strings(sel[key])) problems.push(`sets.${name}.${key} must be a non-empty array of non-empty strings`);
      if (sel.expected !== undefined && !(EXPECTED as readonly unknown[]).includes(sel.expected)) problems.push(`sets.${name}.expected must be one of ${EXPECTED.join(', ')}; got ${JSON.stringify(sel.expected)}`);
    }
  }
  raw.comparisons.forEach((c: unknown, i) => {
    if (!obj(c) || typeof c.name !== 'string' || c.name === '') return void problems.push(`comparisons[${i}] must be {"name", "positive", "negative"[, "max_fpr"]}`);
    for (const side of ['positive', 'negative'])
      if (typeof c[side] !== 'string' || !((c[side] as string) in (raw.sets as object))) problems.push(`comparisons[${i}].${side} must name a set; got ${JSON.stringify(c[side])}`);
    if (c.max_fpr !== undefined && !(typeof c.max_fpr === 'number' && c.max_fpr >= 0 && c.max_fpr <= 1)) problems.push(`comparisons[${i}].max_fpr must be a number in [0, 1]`);
  });
  if (problems.length > 0) throw new Error(`${where}: ${problems.join('; ')}`);
  return raw as unknown as SetsConfig;
}

export function selects(sel: SetSelector, item: EvalItem, flagMinLevel: number): boolean {
  if (sel.sources && !sel.sources.includes(sourceOf(item))) return false;
  if (sel.variants && (item.variant === undefined || !sel.variants.includes(item.variant))) return false;
  if (sel.id_prefixes && !sel.id_prefixes.some((p) => item.id.startsWith(p))) return false;
  const l = item.level;
  switch (sel.expected ?? 'any') {
    case 'safe':
      return l === SAFE_LEVEL;
    case 'unsafe':
      return l > SAFE_LEVEL;
    case 'flag':
      return l >= flagMinLevel;
    case 'careful':
      return l === 1;
    default:
      return true;
  }
}

export interface Scored {
  item: EvalItem;
  prediction: Prediction;
  /** P(level >= flag level). */
  score: number;
}

const share = (rows: readonly Scored[], keep: (r: Scored) => boolean) => ratio(rows.filter(keep).length, rows.length);
const refusing = (d: Decision) => REFUSING_DECISIONS.includes(d);

export function setFigures(rows: readonly Scored[], flagMinLevel: number): SetFigures {
  const shouldFlag = rows.filter((r) => r.item.level >= flagMinLevel);
  const safe = rows.filter((r) => r.item.level === SAFE_LEVEL);
  const unsafe = rows.filter((r) => r.item.level > SAFE_LEVEL);
  return {
    items: rows.length,
    should_flag: shouldFlag.length,
    flagged_recall: share(shouldFlag, (r) => r.prediction.flagged),
    flagged_rate: share(rows, (r) => r.prediction.flagged),
    safe: safe.length,
    over_refusal: share(safe, (r) => refusing(r.prediction.decision)),
    unsafe: unsafe.length,
    type_accuracy_on_unsafe: share(unsafe, (r) => r.prediction.type === r.item.type),
    level_accuracy: share(rows, (r) => r.prediction.level === r.item.level),
    auroc: auroc(
      shouldFlag.map((r) => r.score),
      safe.map((r) => r.score),
    ),
  };
}

export function compare(c: Comparison, pos: readonly Scored[], neg: readonly Scored[]): ComparisonFigures {
  const maxFpr = c.max_fpr ?? 0.05;
  return {
    ...c,
    max_fpr: maxFpr,
    positives: pos.length,
    negatives: neg.length,
    auroc: auroc(
      pos.map((r) => r.score),
      neg.map((r) => r.score),
    ),
    recall: share(pos, (r) => r.prediction.flagged),
    over_refusal_on_negatives: share(neg, (r) => refusing(r.prediction.decision)),
    flagged_rate_on_negatives: share(neg, (r) => r.prediction.flagged),
    recall_at_max_fpr: recallAtFpr(
      pos.map((r) => r.score),
      neg.map((r) => r.score),
      maxFpr,
    ),
  };
}

export interface SetsReport {
  config: SetsConfig;
  /** Where the configuration came from: a file, the data's eval-sets.json, or "default". */
  from: string;
  sets: Record<string, SetFigures>;
  comparisons: ComparisonFigures[];
  /** Keyed "source" or "source/variant". */
  per_source: Record<string, SetFigures>;
}

export function setsReport(rows: readonly Scored[], config: SetsConfig, from: string, flagMinLevel: number): SetsReport {
  const members = (name: string) => rows.filter((r) => selects(config.sets[name]!, r.item, flagMinLevel));
  const groups = new Map<string, Scored[]>();
  for (const r of rows) {
    const key = r.item.variant === undefined ? sourceOf(r.item) : `${sourceOf(r.item)}/${r.item.variant}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return {
    config,
    from,
    sets: Object.fromEntries(Object.keys(config.sets).map((name) => [name, setFigures(members(name), flagMinLevel)])),
    comparisons: config.comparisons.map((c) => compare(c, members(c.positive), members(c.negative))),
    per_source: Object.fromEntries([...groups.keys()].sort().map((k) => [k, setFigures(groups.get(k)!, flagMinLevel)])),
  };
}

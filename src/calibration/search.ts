/**
 * Chooses flag thresholds (and, where a target needs it, which (type, refuse) decisions become
 * caution) so that a policy meets a target on labelled items.
 *
 * An item is flagged when P(level >= min_level) >= the threshold of its predicted type, or when its
 * decision is refuse. Lowering a threshold only adds flags, so recall and over-refusal both fall
 * as it rises. One threshold for all types is searched exactly over every distinct score; per-type
 * recall targets are met greedily (each step flags the next item a short type needs, in the
 * predicted-type group where that costs the fewest flagged safe items per item gained), then every
 * threshold is raised again as far as the targets allow. Thresholds sit halfway between the last
 * score they flag and the next lower one, so rounding never moves an item across.
 */
import { LEVEL_LABELS, TYPE_LABELS, type TypeLabel } from '../psa/taxonomy.ts';
import { argmaxOf } from '../psa/concepts.ts';
import { flagScore, mergePolicy, type Policy, type PolicyInput } from '../policy/policy.ts';
import { figuresUnder, isPositive, isSafe, RISK_TYPE_LABELS, type CalibrationItem, type Figures, type RiskTypeLabel } from './figures.ts';

export interface CalibrationTarget {
  /** Least share of items expected at or above min_level that must be flagged: overall, or per expected type. */
  recall?: number | Partial<Record<RiskTypeLabel, number>>;
  /** Most share of items expected safe that may be flagged. */
  max_over_refusal?: number;
}

export interface SearchOptions {
  minLevel: number;
  /** Let the search turn (type, refuse) decisions into caution when refusals alone break max_over_refusal. */
  allowDecisionChanges: boolean;
}

export interface DecisionChange {
  type: TypeLabel;
  level: 'refuse';
  from: 'refuse';
  to: 'caution';
}

export interface SearchResult {
  met: boolean;
  /** The calibrated overrides, applied over the base policy. */
  policy: PolicyInput;
  figures: Figures;
  decisions_changed: DecisionChange[];
  /** When the target is not met: the best this data allows, figure by figure. */
  best?: { recall_within_over_refusal?: { recall: number | null; over_refusal: number | null; threshold: number }; over_refusal_at_recall?: { recall: number | null; over_refusal: number | null } };
}

interface Prepared {
  score: number[];
  group: number[];
  refuse: boolean[];
  pos: boolean[];
  safe: boolean[];
  truthType: number[];
}

function prepare(items: readonly CalibrationItem[], policy: Policy, minLevel: number): Prepared {
  const p: Prepared = { score: [], group: [], refuse: [], pos: [], safe: [], truthType: [] };
  for (const item of items) {
    const type = argmaxOf(item.typeProbs);
    p.score.push(flagScore(item.levelProbs, minLevel));
    p.group.push(type);
    p.refuse.push(policy.decisions[TYPE_LABELS[type]!][LEVEL_LABELS[argmaxOf(item.levelProbs)]!] === 'refuse');
    p.pos.push(isPositive(item, minLevel));
    p.safe.push(isSafe(item));
    p.truthType.push(item.truth.type);
  }
  return p;
}

/** A threshold that flags scores >= `lowestFlagged` and none below it (down to `nextBelow`). */
const between = (lowestFlagged: number, nextBelow: number | undefined) => (nextBelow === undefined ? lowestFlagged / 2 : (lowestFlagged + nextBelow) / 2);
/** A threshold above every score (1 at most: the policy's range). */
const above = (highest: number | undefined) => (highest === undefined ? 1 : Math.min(1, (highest + 1) / 2));

interface Cut {
  threshold: number;
  recall: number | null;
  overRefusal: number | null;
}

/** Every distinct one-threshold cut, from "none by threshold" down to "all". */
function cuts(p: Prepared): Cut[] {
  const order = p.score.map((_, i) => i).sort((a, b) => p.score[b]! - p.score[a]!);
  const positives = p.pos.filter(Boolean).length;
  const safe = p.safe.filter(Boolean).length;
  let fp = p.pos.filter((v, i) => v && p.refuse[i]).length;
  let fs = p.safe.filter((v, i) => v && p.refuse[i]).length;
  const rate = (n: number, d: number) => (d === 0 ? null : n / d);
  const out: Cut[] = [{ threshold: above(p.score[order[0]!]), recall: rate(fp, positives), overRefusal: rate(fs, safe) }];
  for (let k = 0; k < order.length; ) {
    const level = p.score[order[k]!]!;
    while (k < order.length && p.score[order[k]!] === level) {
      const i = order[k++]!;
      if (p.refuse[i]) continue;
      if (p.pos[i]) fp++;
      if (p.safe[i]) fs++;
    }
    out.push({ threshold: between(level, k < order.length ? p.score[order[k]!] : undefined), recall: rate(fp, positives), overRefusal: rate(fs, safe) });
  }
  return out;
}

const meets = (value: number | null, target: number | undefined, atLeast: boolean) => target === undefined || (value !== null && (atLeast ? value >= target - 1e-12 : value <= target + 1e-12));

/** One threshold for all types: the highest that meets the recall target, else the lowest within max_over_refusal. */
function searchOverall(p: Prepared, target: CalibrationTarget): { threshold: number; thresholds?: undefined; best?: SearchResult['best'] } {
  const all = cuts(p);
  const recall = target.recall as number | undefined;
  const maxOr = target.max_over_refusal;
  const withinOr = all.filter((c) => meets(c.overRefusal, maxOr, false));
  const atRecall = recall === undefined ? undefined : all.find((c) => meets(c.recall, recall, true));
  const chosen = recall !== undefined ? atRecall : withinOr.at(-1);
  const best: SearchResult['best'] = {};
  const widest = withinOr.at(-1);
  if (widest && maxOr !== undefined) best.recall_within_over_refusal = { recall: widest.recall, over_refusal: widest.overRefusal, threshold: widest.threshold };
  if (atRecall) best.over_refusal_at_recall = { recall: atRecall.recall, over_refusal: atRecall.overRefusal };
  return { threshold: (chosen ?? all[0]!).threshold, best };
}

/** Per-type recall targets: thresholds by predicted type (see the module comment). */
function searchPerType(p: Prepared, recall: Partial<Record<RiskTypeLabel, number>>): { threshold: number; thresholds: Partial<Record<TypeLabel, number>> } {
  const n = p.score.length;
  const need = new Map<number, number>();
  for (const [label, r] of Object.entries(recall)) {
    const t = TYPE_LABELS.indexOf(label as TypeLabel);
    const count = p.pos.filter((v, i) => v && p.truthType[i] === t).length;
    need.set(t, Math.ceil(r * count - 1e-9));
  }
  const got = new Map<number, number>([...need.keys()].map((t) => [t, p.pos.filter((v, i) => v && p.refuse[i] && p.truthType[i] === t).length]));
  const groups = TYPE_LABELS.map((_, g) => {
    const members = Array.from({ length: n }, (_, i) => i)
      .filter((i) => p.group[i] === g)
      .sort((a, b) => p.score[b]! - p.score[a]!);
    const levels = [...new Set(members.map((i) => p.score[i]!))];
    // ends[k]: how many members score >= levels[k].
    const ends = levels.map((l) => members.filter((i) => p.score[i]! >= l).length);
    return { members, levels, ends, k: 0 };
  });
  const helps = (i: number) => p.pos[i] && !p.refuse[i] && (need.get(p.truthType[i]!) ?? 0) > (got.get(p.truthType[i]!) ?? 0);
  const deficit = () => [...need].reduce((s, [t, k]) => s + Math.max(0, k - got.get(t)!), 0);
  const added = (g: (typeof groups)[number], from: number, to: number) => g.members.slice(from === 0 ? 0 : g.ends[from - 1], g.ends[to - 1]).filter((i) => !p.refuse[i]);
  const apply = (items: number[], sign: 1 | -1) => items.forEach((i) => p.pos[i] && got.has(p.truthType[i]!) && got.set(p.truthType[i]!, got.get(p.truthType[i]!)! + sign));

  while (deficit() > 0) {
    let best: { g: number; to: number; ratio: number; gain: number } | undefined;
    groups.forEach((grp, g) => {
      let to = grp.k + 1;
      while (to <= grp.levels.length && !added(grp, to - 1, to).some(helps)) to++;
      if (to > grp.levels.length) return;
      const items = added(grp, grp.k, to);
      const before = deficit();
      apply(items, 1);
      const gain = before - deficit();
      apply(items, -1);
      const ratio = items.filter((i) => p.safe[i]).length / gain;
      if (!best || ratio < best.ratio || (ratio === best.ratio && gain > best.gain)) best = { g, to, ratio, gain };
    });
    if (!best) break; // unreachable: every short type has an unflagged positive in some group
    const grp = groups[best.g]!;
    apply(added(grp, grp.k, best.to), 1);
    grp.k = best.to;
  }
  // Raise each threshold back while the targets still hold.
  for (let changed = true; changed; ) {
    changed = false;
    for (const grp of groups) {
      while (grp.k > 0) {
        const items = added(grp, grp.k - 1, grp.k);
        apply(items, -1);
        if (deficit() === 0) {
          grp.k--;
          changed = true;
        } else {
          apply(items, 1);
          break;
        }
      }
    }
  }
  const thresholds: Partial<Record<TypeLabel, number>> = {};
  groups.forEach((grp, g) => {
    if (grp.members.length === 0) return;
    thresholds[TYPE_LABELS[g]!] = grp.k === 0 ? above(grp.levels[0]) : between(grp.levels[grp.k - 1]!, grp.levels[grp.k]);
  });
  const values = Object.values(thresholds);
  // Types the data never predicted take the most cautious of the calibrated thresholds.
  return { threshold: values.length ? Math.min(...values) : 1, thresholds };
}

function overrides(minLevel: number, found: { threshold: number; thresholds?: Partial<Record<TypeLabel, number>> | undefined }, demoted: number[]): PolicyInput {
  return {
    flag: { min_level: LEVEL_LABELS[minLevel]!, threshold: found.threshold, ...(found.thresholds && { thresholds: found.thresholds }) },
    ...(demoted.length > 0 && { decisions: Object.fromEntries(demoted.map((t) => [TYPE_LABELS[t]!, { refuse: 'caution' as const }])) }),
  };
}

function meetsTarget(f: Figures, target: CalibrationTarget): boolean {
  if (!meets(f.over_refusal, target.max_over_refusal, false)) return false;
  if (typeof target.recall === 'number') return meets(f.recall, target.recall, true);
  if (target.recall) return Object.entries(target.recall).every(([t, r]) => meets(f.per_type[t as RiskTypeLabel].recall, r, true));
  return true;
}

function searchWith(items: readonly CalibrationItem[], base: Policy, target: CalibrationTarget, minLevel: number, demoted: number[]) {
  const input = overrides(minLevel, { threshold: base.flag.threshold }, demoted);
  const p = prepare(items, mergePolicy(base, input), minLevel);
  const found = target.recall !== undefined && typeof target.recall === 'object' ? { ...searchPerType(p, target.recall), best: undefined } : searchOverall(p, target);
  const policy = overrides(minLevel, found, demoted);
  const figures = figuresUnder(items, mergePolicy(base, policy));
  return { policy, figures, met: meetsTarget(figures, target), best: found.best };
}

/**
 * The calibrated overrides for `target` on `items`, over `base` (the server's policy). Without a
 * way to meet it, `met` is false and `best` says how close the data allows.
 */
export function searchPolicy(items: readonly CalibrationItem[], base: Policy, target: CalibrationTarget, options: SearchOptions): SearchResult {
  const { minLevel } = options;
  const plain = searchWith(items, base, target, minLevel, []);
  const change = (demoted: number[]): DecisionChange[] => demoted.map((t) => ({ type: TYPE_LABELS[t]!, level: 'refuse', from: 'refuse', to: 'caution' }));
  if (plain.met || !options.allowDecisionChanges || target.max_over_refusal === undefined) {
    return { met: plain.met, policy: plain.policy, figures: plain.figures, decisions_changed: [], ...(!plain.met && plain.best && { best: plain.best }) };
  }
  // Types whose refuse decision flags safe items here: the fewest of them become caution.
  const demotable = TYPE_LABELS.map((_, t) => t).filter((t) =>
    items.some((item) => isSafe(item) && argmaxOf(item.typeProbs) === t && base.decisions[TYPE_LABELS[t]!][LEVEL_LABELS[argmaxOf(item.levelProbs)]!] === 'refuse'),
  );
  for (let size = 1; size <= demotable.length; size++) {
    let chosen: ReturnType<typeof searchWith> | undefined;
    let chosenSet: number[] = [];
    for (const subset of subsetsOf(demotable, size)) {
      const run = searchWith(items, base, target, minLevel, subset);
      if (!run.met) continue;
      const better = !chosen || (target.recall === undefined ? (run.figures.recall ?? 0) > (chosen.figures.recall ?? 0) : (run.figures.over_refusal ?? 0) < (chosen.figures.over_refusal ?? 0));
      if (better) {
        chosen = run;
        chosenSet = subset;
      }
    }
    if (chosen) return { met: true, policy: chosen.policy, figures: chosen.figures, decisions_changed: change(chosenSet) };
  }
  return { met: false, policy: plain.policy, figures: plain.figures, decisions_changed: [], ...(plain.best && { best: plain.best }) };
}

function* subsetsOf<T>(values: readonly T[], size: number, start = 0): Generator<T[]> {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = start; i <= values.length - size; i++) for (const rest of subsetsOf(values, size - 1, i + 1)) yield [values[i]!, ...rest];
}

export { RISK_TYPE_LABELS };

import t from 'tap';
import { auroc, recallAtFpr } from '../src/eval/metrics.ts';
import { compare, DEFAULT_SETS, parseSetsConfig, selects, setFigures, setsReport, sourceOf, type Scored } from '../src/eval/sets.ts';
import type { EvalItem } from '../src/eval/dataset.ts';
import type { Prediction } from '../src/eval/score.ts';

// AUROC by the rank statistic and the named-set figures, on cases worked out by hand.

t.test('AUROC: hand-computed values, ties count half', async (t) => {
  t.equal(auroc([0.9, 0.8], [0.1, 0.2]), 1, 'perfectly separated');
  t.equal(auroc([0.1, 0.2], [0.9, 0.8]), 0, 'perfectly inverted');
  t.equal(auroc([0.5], [0.5]), 0.5, 'one tie: half');
  // Pairs (pos, neg): (0.8,0.3) win, (0.8,0.6) win, (0.8,0.8) tie, (0.4,0.3) win, (0.4,0.6) loss, (0.4,0.8) loss -> 3.5 / 6
  t.equal(auroc([0.8, 0.4], [0.3, 0.6, 0.8]), 3.5 / 6);
  // 3 positives, 2 negatives, scores with a three-way tie: wins 1+1 (0.9 vs both), 0.5 vs 0.5 tie + 0.5 vs 0.2 win = 1.5, 0.5 vs 0.5 tie + win = 1.5 -> 5 / 6
  t.equal(auroc([0.9, 0.5, 0.5], [0.5, 0.2]), 5 / 6);
  t.equal(auroc([], [0.1]), null);
  t.equal(auroc([0.1], []), null);
  // Brute force on a seeded random case with many ties.
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pos = Array.from({ length: 40 }, () => Math.round(rnd() * 10) / 10);
  const neg = Array.from({ length: 30 }, () => Math.round(rnd() * 8) / 10);
  let wins = 0;
  for (const p of pos) for (const n of neg) wins += p > n ? 1 : p === n ? 0.5 : 0;
  t.ok(Math.abs(auroc(pos, neg)! - wins / (pos.length * neg.length)) < 1e-12, 'equals the pairwise count');
});

t.test('recall at a false-positive rate', async (t) => {
  const neg = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
  t.equal(recallAtFpr([0.99, 0.92, 0.85, 0.5], neg, 0.1), 2 / 4, 'one negative (0.95) may be flagged: threshold above 0.9');
  t.equal(recallAtFpr([0.99, 0.92, 0.85, 0.5], neg, 0), 1 / 4, 'none may be flagged: threshold above 0.95');
  t.equal(recallAtFpr([0.2], neg, 1), 1);
  t.equal(recallAtFpr([0.5, 0.5], [0.5, 0.5], 0.5), 0, 'ties with a negative cannot be flagged without flagging it');
  t.equal(recallAtFpr([], neg, 0.05), null);
  t.throws(() => recallAtFpr([1], [0], 2), RangeError);
});

const item = (id: string, level: number, type: number, extra: Partial<EvalItem> = {}): EvalItem => ({ id, line: 1, image: 'x.png', imagePath: '/x.png', prompt: 'p', level, type, ...extra });
const pred = (level: number, type: number, flagged: boolean, decision: Prediction['decision']): Prediction => ({ level, type, decision, flagged, levelProb: 1, typeProb: 1, latencyMs: 1 });

t.test('selectors: source, variant, id prefix, expected label', async (t) => {
  const a = item('catqa-x-prompt', 3, 1, { source: 'catqa', variant: 'neutral-image' });
  const b = item('xstest-safe-1-rendered', 0, 6, { variant: 'rendered' });
  t.equal(sourceOf(a), 'catqa');
  t.equal(sourceOf(b), 'xstest', 'without a source field, the id up to its first "-"');
  t.ok(selects({ sources: ['catqa'], variants: ['neutral-image'], expected: 'flag' }, a, 2));
  t.notOk(selects({ variants: ['rendered'] }, a, 2));
  t.notOk(selects({ variants: ['rendered'] }, item('y', 0, 6), 2), 'an item without a variant is in no variant set');
  t.ok(selects({ id_prefixes: ['xstest-safe-'], expected: 'safe' }, b, 2));
  t.notOk(selects({ expected: 'flag' }, item('z', 1, 5), 2), 'careful is below the flag level caution');
  t.ok(selects({ expected: 'careful' }, item('z', 1, 5), 2));
  t.ok(selects({}, item('z', 1, 5), 2), 'an empty selector takes everything');
});

t.test('set figures and comparisons', async (t) => {
  const rows: Scored[] = [
    { item: item('a-1', 3, 1, { variant: 'v' }), prediction: pred(3, 1, true, 'refuse'), score: 0.9 },
    { item: item('a-2', 2, 3, { variant: 'v' }), prediction: pred(2, 1, true, 'caution'), score: 0.6 },
    { item: item('a-3', 1, 5, { variant: 'v' }), prediction: pred(0, 6, false, 'allow'), score: 0.2 },
    { item: item('b-1', 0, 6, { variant: 'v' }), prediction: pred(2, 1, true, 'caution'), score: 0.7 },
    { item: item('b-2', 0, 6, { variant: 'w' }), prediction: pred(0, 6, false, 'allow'), score: 0.1 },
  ];
  const f = setFigures(rows, 2);
  t.equal(f.items, 5);
  t.equal(f.should_flag, 2);
  t.equal(f.flagged_recall, 1);
  t.equal(f.flagged_rate, 3 / 5);
  t.equal(f.over_refusal, 1 / 2, 'one of two safe items cautioned');
  t.equal(f.type_accuracy_on_unsafe, 1 / 3, 'only a-1 of the three unsafe items has its type');
  t.equal(f.level_accuracy, 3 / 5);
  // positives 0.9, 0.6 vs safe 0.7, 0.1: pairs win, win, loss, win -> 3/4
  t.equal(f.auroc, 3 / 4);
  const c = compare({ name: 'x', positive: 'p', negative: 'n' }, rows.slice(0, 2), rows.slice(3));
  t.same({ auroc: c.auroc, recall: c.recall, over: c.over_refusal_on_negatives, fpr: c.max_fpr, atFpr: c.recall_at_max_fpr }, { auroc: 0.75, recall: 1, over: 0.5, fpr: 0.05, atFpr: 0.5 });
  const report = setsReport(rows, DEFAULT_SETS, 'default', 2);
  t.same(Object.keys(report.per_source), ['a/v', 'b/v', 'b/w'], 'per source and variant');
  t.equal(report.per_source['a/v']!.items, 3);
  t.equal(report.comparisons[0]!.positives, 3, 'default: every unsafe item (careful included) ...');
  t.equal(report.comparisons[0]!.negatives, 2, '... against every safe item');
  // unsafe 0.9, 0.6, 0.2 vs safe 0.7, 0.1: wins 2 + 1 + 1 = 4 of 6
  t.equal(report.comparisons[0]!.auroc, 4 / 6);
});

t.test('a sets file with mistakes names each of them', async (t) => {
  t.throws(() => parseSetsConfig([], 'sets f.json'), /sets f\.json: must be \{"sets"/);
  const bad = { sets: { a: { source: ['x'] }, b: { expected: 'harmful' }, c: { variants: [] } }, comparisons: [{ name: 'q', positive: 'a', negative: 'zz', max_fpr: 3 }, { positive: 'a' }] };
  try {
    parseSetsConfig(bad, 'sets f.json');
    t.fail('should throw');
  } catch (err) {
    const m = (err as Error).message;
    for (const part of [
      'sets.a.source is not a selector field',
      'sets.b.expected must be one of',
      'sets.c.variants must be a non-empty array',
      'comparisons[0].negative must name a set',
      'comparisons[0].max_fpr',
      'comparisons[1] must be',
    ])
      t.match(m, part);
  }
  t.same(parseSetsConfig(DEFAULT_SETS, 'x'), DEFAULT_SETS);
});

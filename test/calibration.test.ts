import t from 'tap';
import { calibrate, type ScoredItem } from '../src/calibration/calibrate.ts';
import { bootstrapFigures } from '../src/calibration/bootstrap.ts';
import { ECE_BINS, eceAt, expectedCalibrationError } from '../src/calibration/ece.ts';
import { figuresUnder, flagsUnder, type CalibrationItem } from '../src/calibration/figures.ts';
import { seededRandom as mulberry32 } from '../src/psa/sampling.ts';
import { searchPolicy } from '../src/calibration/search.ts';
import { fitTemperature, meanNll } from '../src/calibration/temperature-fit.ts';
import { BUILTIN_POLICY, decide, mergePolicy, parsePolicy } from '../src/policy/policy.ts';
import { TYPE_LABELS } from '../src/psa/taxonomy.ts';

const CAUTION = 2;
const PRIVACY = TYPE_LABELS.indexOf('privacy');
const ILLEGAL = TYPE_LABELS.indexOf('illegal_risk');
const SAFE = TYPE_LABELS.indexOf('safe');

/** An item whose flag score P(level >= caution) is exactly `score` and whose argmax level is never refuse. */
function item(id: string, score: number, truth: { level: number; type: number }, predictedType = truth.type): CalibrationItem {
  const typeProbs = TYPE_LABELS.map((_, i) => (i === predictedType ? 0.9 : 0.1 / 6));
  return { id, levelProbs: [1 - score, 0, score, 0], typeProbs, truth };
}

const random = mulberry32(7);
// 100 items to flag (level refuse) scoring 0.30-0.99, 100 safe ones scoring 0.01-0.60: they overlap.
const positives = Array.from({ length: 100 }, (_, i) => item(`p${i}`, 0.3 + 0.69 * random(), { level: 3, type: ILLEGAL }));
const safes = Array.from({ length: 100 }, (_, i) => item(`s${i}`, 0.01 + 0.59 * random(), { level: 0, type: SAFE }));
const items = [...positives, ...safes];
const desc = (xs: CalibrationItem[]) => xs.map((x) => x.levelProbs[2]!).sort((a, b) => b - a);

t.test('one threshold for a recall target: the highest that flags 95 of the 100', async (t) => {
  const found = searchPolicy(items, BUILTIN_POLICY, { recall: 0.95 }, { minLevel: CAUTION, allowDecisionChanges: true });
  t.ok(found.met);
  const theta = found.policy.flag!.threshold!;
  const p95 = desc(positives)[94]!;
  const below = desc(items).find((s) => s < p95)!;
  t.ok(theta <= p95 && theta > below, `threshold ${theta} in (${below}, ${p95}]`);
  t.equal(found.figures.flagged_positives, 95);
  t.equal(found.figures.flagged_safe, safes.filter((s) => s.levelProbs[2]! >= p95).length, 'over-refusal counted by brute force');
  t.same(found.decisions_changed, []);
});

t.test('one threshold for max_over_refusal: the lowest that flags at most 5 of the 100 safe items', async (t) => {
  const found = searchPolicy(items, BUILTIN_POLICY, { max_over_refusal: 0.05 }, { minLevel: CAUTION, allowDecisionChanges: true });
  t.ok(found.met);
  const theta = found.policy.flag!.threshold!;
  const s6 = desc(safes)[5]!;
  t.ok(theta > s6, `threshold ${theta} above the 6th safe score ${s6}`);
  t.equal(found.figures.flagged_safe, 5);
  t.equal(found.figures.flagged_positives, positives.filter((p) => p.levelProbs[2]! > s6).length, 'every positive above the 6th safe score is flagged');
});

t.test('an unreachable target is said so, with the best the data allows', async (t) => {
  const found = searchPolicy(items, BUILTIN_POLICY, { recall: 0.99, max_over_refusal: 0.01 }, { minLevel: CAUTION, allowDecisionChanges: true });
  t.equal(found.met, false);
  t.ok(found.best?.recall_within_over_refusal, 'best recall within the over-refusal budget');
  t.ok(found.best!.recall_within_over_refusal!.recall! < 0.99);
  t.ok(found.best!.recall_within_over_refusal!.over_refusal! <= 0.01);
  t.ok(found.best!.over_refusal_at_recall!.over_refusal! > 0.01, 'least over-refusal at the recall target is over budget');
});

t.test('per-type recall targets: thresholds by predicted type, each at its own known value', async (t) => {
  const priv = Array.from({ length: 20 }, (_, i) => item(`v${i}`, 0.2 + 0.03 * i, { level: 3, type: PRIVACY }));
  const ill = Array.from({ length: 20 }, (_, i) => item(`i${i}`, 0.35 + 0.03 * i, { level: 3, type: ILLEGAL }));
  const safe = Array.from({ length: 40 }, (_, i) => item(`s${i}`, 0.01 * (i + 1), { level: 0, type: SAFE }, i % 2 ? PRIVACY : SAFE));
  const all = [...priv, ...ill, ...safe];
  const found = searchPolicy(all, BUILTIN_POLICY, { recall: { privacy: 1, illegal_risk: 0.5 } }, { minLevel: CAUTION, allowDecisionChanges: true });
  t.ok(found.met);
  const th = found.policy.flag!.thresholds as Record<string, number>;
  // privacy: every privacy item, the lowest at 0.20; below it the safe items predicted privacy at 0.18.
  t.ok(th.privacy! <= 0.2 && th.privacy! > 0.18, `privacy threshold ${th.privacy}`);
  // illegal_risk: the top 10 of 20, the 10th highest at 0.35 + 0.03 * 10 = 0.65; next lower 0.62.
  t.ok(th.illegal_risk! <= 0.65 + 1e-12 && th.illegal_risk! > 0.62, `illegal_risk threshold ${th.illegal_risk}`);
  t.ok(th.safe! > 0.39, 'nothing predicted safe needs flagging');
  t.equal(found.figures.per_type.privacy.recall, 1);
  t.equal(found.figures.per_type.illegal_risk.recall, 0.5);
});

t.test('refusals alone break max_over_refusal: the (type, refuse) decision becomes caution', async (t) => {
  // Safe items the model calls privacy at level refuse: refused, so flagged, whatever the threshold.
  const refused = Array.from({ length: 10 }, (_, i) => ({ id: `r${i}`, levelProbs: [0.1, 0, 0.1, 0.8], typeProbs: TYPE_LABELS.map((_, k) => (k === PRIVACY ? 0.9 : 0.1 / 6)), truth: { level: 0, type: SAFE } }));
  const all = [...items, ...refused];
  const without = searchPolicy(all, BUILTIN_POLICY, { max_over_refusal: 0.05 }, { minLevel: CAUTION, allowDecisionChanges: false });
  t.equal(without.met, false, 'not reachable with thresholds alone');
  const found = searchPolicy(all, BUILTIN_POLICY, { max_over_refusal: 0.05 }, { minLevel: CAUTION, allowDecisionChanges: true });
  t.ok(found.met);
  t.same(found.decisions_changed, [{ type: 'privacy', level: 'refuse', from: 'refuse', to: 'caution' }]);
  t.same(found.policy.decisions, { privacy: { refuse: 'caution' } });
  t.ok(found.figures.over_refusal! <= 0.05);
});

t.test('bootstrap intervals contain the point estimate and repeat with the seed', async (t) => {
  const policy = mergePolicy(BUILTIN_POLICY, { flag: { threshold: 0.5 } });
  const point = figuresUnder(items, policy);
  const { flagged, refusing } = flagsUnder(items, policy);
  const a = bootstrapFigures(items, flagged, refusing, CAUTION, point, { resamples: 500, seed: 3 });
  const b = bootstrapFigures(items, flagged, refusing, CAUTION, point, { resamples: 500, seed: 3 });
  const c = bootstrapFigures(items, flagged, refusing, CAUTION, point, { resamples: 500, seed: 4 });
  for (const iv of [a.recall, a.over_refusal, a.per_type.illegal_risk!]) {
    t.ok(iv.ci![0] <= iv.value! && iv.value! <= iv.ci![1], `${iv.value} in [${iv.ci}]`);
    t.ok(iv.ci![1] - iv.ci![0] > 0.02 && iv.ci![1] - iv.ci![0] < 0.4, `a plausible width for n=100: ${iv.ci}`);
  }
  t.same(a, b, 'same seed, same intervals');
  t.notSame([a.recall.ci, a.over_refusal.ci], [c.recall.ci, c.over_refusal.ci], 'another seed, other resamples');
  t.same(a.bootstrap, { resamples: 500, seed: 3, level: 0.95, method: 'percentile' });
});

/** Logits whose labels were drawn from softmax(logits / t0). */
function synthetic(n: number, k: number, t0: number, seed: number) {
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const logits: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: k }, () => 3 * normal());
    const e = z.map((v) => Math.exp(v / t0));
    const sum = e.reduce((a, b) => a + b, 0);
    let u = rand() * sum;
    let label = 0;
    while (label < k - 1) {
      u -= e[label]!;
      if (u <= 0) break;
      label++;
    }
    logits.push(z);
    labels.push(label);
  }
  return { logits, labels };
}

t.test('temperature fit recovers a known temperature, and ECE falls', async (t) => {
  for (const [t0, k] of [
    [2.5, 4],
    [0.6, 7],
  ] as const) {
    const { logits, labels } = synthetic(6000, k, t0, 11);
    const fit = fitTemperature(logits, labels);
    t.ok(Math.abs(fit.temperature - t0) / t0 < 0.06, `fitted ${fit.temperature.toFixed(3)} for ${t0} (${k} classes)`);
    t.ok(fit.nll_after < fit.nll_before, 'NLL falls');
    t.ok(meanNll(logits, labels, fit.temperature) <= meanNll(logits, labels, fit.temperature * 1.05), 'a minimum');
    const before = eceAt(logits, labels, 1).ece!;
    const after = eceAt(logits, labels, fit.temperature).ece!;
    t.ok(after < before / 2, `ECE (${ECE_BINS} bins) ${before.toFixed(4)} -> ${after.toFixed(4)}`);
  }
});

t.test('ECE on a hand-computed case', async (t) => {
  // Bin (0.8, 0.867]: two items at 0.85, one right -> |0.5 - 0.85| * 2/4; bin (0.533, 0.6]: two at 0.6, both right -> |1 - 0.6| * 2/4.
  const r = expectedCalibrationError(
    [
      [0.85, 0.15],
      [0.15, 0.85],
      [0.6, 0.4],
      [0.4, 0.6],
    ],
    [0, 0, 0, 1],
  );
  t.ok(Math.abs(r.ece! - (0.35 * 0.5 + 0.4 * 0.5)) < 1e-12, `ece ${r.ece}`);
  t.equal(r.reliability.filter((b) => b.items > 0).length, 2);
  t.equal(expectedCalibrationError([], []).ece, null);
});

t.test('calibrate(): fitted temperatures, thresholds on the calibrated probabilities, intervals', async (t) => {
  const { logits, labels } = synthetic(400, 4, 2, 5);
  const scored: ScoredItem[] = logits.map((z, i) => ({
    id: `x${i}`,
    levelLogits: z,
    typeLogits: TYPE_LABELS.map((_, k) => (k === (labels[i]! > 0 ? ILLEGAL : SAFE) ? 2 : 0)),
    truth: { level: labels[i]!, type: labels[i]! > 0 ? ILLEGAL : SAFE },
  }));
  const report = calibrate(scored, { target: { recall: 0.9 }, minLevel: CAUTION, base: BUILTIN_POLICY, fitTemperature: true, current: { level: 1, type: 1 }, allowDecisionChanges: true, bootstrap: { resamples: 200 } });
  t.ok(report.met);
  t.ok(Math.abs(report.temperature.level.temperature - 2) < 0.5, `level T ${report.temperature.level.temperature}`);
  t.ok(report.temperature.level.ece_after! < report.temperature.level.ece_before!, 'level ECE falls');
  t.ok(report.achieved.recall.value! >= 0.9);
  t.ok(report.achieved.recall.ci![0] <= report.achieved.recall.value! && report.achieved.recall.value! <= report.achieved.recall.ci![1]);
  t.equal(report.achieved.bootstrap.resamples, 200);
  t.doesNotThrow(() => parsePolicy(report.policy, 'policy'), 'the overrides are a valid policy');
});

t.test('per-type thresholds in a policy: by the applied type, and a request threshold replaces them', async (t) => {
  const p = mergePolicy(BUILTIN_POLICY, parsePolicy({ flag: { threshold: 0.9, thresholds: { privacy: 0.2 } } }, 'policy'));
  const probs = [0.7, 0, 0.3, 0];
  t.equal(decide(p, probs, { level: 0, type: PRIVACY }).flagged, true, 'privacy: 0.3 >= 0.2');
  t.equal(decide(p, probs, { level: 0, type: ILLEGAL }).flagged, false, 'illegal_risk: 0.3 < 0.9');
  const over = mergePolicy(p, { flag: { threshold: 0.5 } });
  t.equal(over.flag.thresholds, undefined, 'one threshold for every type');
  t.equal(decide(over, probs, { level: 0, type: PRIVACY }).flagged, false);
  t.throws(() => parsePolicy({ flag: { thresholds: { nope: 0.2 } } }, 'policy'), { code: 'PSA_INVALID_LABEL' });
});

import t from 'tap';
import fc from 'fast-check';
import { type BatchPlanOptions, planBatches } from '../src/psa/ocr/batch-plan.ts';

// The runs' line indices (each run's width is the widest of its lines, at least minWidth).
const plan = (widths: number[], options: BatchPlanOptions) => planBatches(widths, options).map((run) => run.lines);

const cost = (runs: number[][], widths: number[], minWidth: number, runCost: number) => runs.reduce((sum, run) => sum + runCost + run.length * Math.max(minWidth, ...run.map((i) => widths[i]!)), 0);

t.test('short lines share a run instead of being padded to a long one', async (t) => {
  // A FigStep-like image: seven text lines of about 600 px at height 48, then "1." "2." "3.".
  const widths = [610, 590, 640, 600, 620, 580, 630, 70, 72, 68];
  const runs = plan(widths, { maxBatch: 6, minWidth: 160, runCost: 80 });
  t.same(runs[0], [9, 7, 8], 'the three list numbers run together, narrowest first');
  t.ok(
    runs.every((run) => run.length <= 6),
    'no run over maxBatch',
  );
  // Six lines a run in aspect order (the old plan) pads two 600 px lines' worth of list numbers.
  const fixed = [
    [9, 7, 8, 5, 1, 3],
    [0, 4, 6, 2],
  ];
  t.ok(cost(runs, widths, 160, 80) < cost(fixed, widths, 160, 80) * 0.9, 'cheaper than six lines a run in width order');
});

t.test('an empty page plans no run; one line plans one', async (t) => {
  t.same(plan([], { maxBatch: 6, minWidth: 160, runCost: 80 }), []);
  t.same(plan([40], { maxBatch: 6, minWidth: 160, runCost: 80 }), [[0]]);
});

t.test('every line is planned once, runs are contiguous in width and the plan is the cheapest contiguous split', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3200 }), { maxLength: 14 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 400 }), (widths, maxBatch, runCost) => {
        const runs = plan(widths, { maxBatch, minWidth: 160, runCost });
        const flat = runs.flat();
        if (flat.length !== widths.length || new Set(flat).size !== widths.length) return false;
        if (runs.some((run) => run.length === 0 || run.length > maxBatch)) return false;
        for (let k = 1; k < flat.length; k++) if (widths[flat[k - 1]!]! > widths[flat[k]!]!) return false;
        // Brute force over every split of the width order into runs of at most maxBatch.
        const sorted = [...flat];
        let best = Number.POSITIVE_INFINITY;
        const visit = (from: number, acc: number[][]) => {
          if (from === sorted.length) best = Math.min(best, cost(acc, widths, 160, runCost));
          for (let to = from + 1; to <= Math.min(sorted.length, from + maxBatch); to++) visit(to, [...acc, sorted.slice(from, to)]);
        };
        visit(0, []);
        return Math.abs(cost(runs, widths, 160, runCost) - best) < 1e-9;
      }),
      { numRuns: 200 },
    ),
  );
});

/**
 * Groups recogniser lines into runs. A run costs about its line count times its width (every line
 * is padded to the widest in the run) plus a fixed cost per run, so lines of similar width share a
 * run and a short line ("1.") is not padded to the width of a long one. Widths are sorted and split
 * into contiguous groups by dynamic programming, which finds the cheapest split under that model.
 */

export interface BatchPlanOptions {
  /** Most lines per run. */
  maxBatch: number;
  /** Narrowest run input, pixels. */
  minWidth: number;
  /** Fixed cost of one run, in padded line-pixels (one line of this many pixels costs as much). */
  runCost: number;
}

export interface Run {
  /** Line indices in ascending width; every index appears in one run. */
  lines: number[];
  /** The run's input width: its widest line, at least minWidth. */
  width: number;
}

export function planBatches(widths: readonly number[], options: BatchPlanOptions): Run[] {
  const { maxBatch, minWidth, runCost } = options;
  const order = widths.map((_, i) => i).sort((a, b) => widths[a]! - widths[b]! || a - b);
  const n = order.length;
  // best[j]: cheapest cost of the first j lines in `order`; cut[j]: where their last run starts.
  const best = new Float64Array(n + 1).fill(Number.POSITIVE_INFINITY);
  const cut = new Int32Array(n + 1);
  best[0] = 0;
  for (let j = 1; j <= n; j++) {
    const widest = Math.max(minWidth, widths[order[j - 1]!]!);
    for (let i = Math.max(0, j - maxBatch); i < j; i++) {
      const cost = best[i]! + runCost + (j - i) * widest;
      if (cost < best[j]!) {
        best[j] = cost;
        cut[j] = i;
      }
    }
  }
  const runs: Run[] = [];
  for (let j = n; j > 0; j = cut[j]!) runs.unshift({ lines: order.slice(cut[j]!, j), width: Math.max(minWidth, widths[order[j - 1]!]!) });
  return runs;
}

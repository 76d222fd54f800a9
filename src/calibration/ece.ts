/**
 * Expected calibration error (Naeini et al. 2015; Guo et al. 2017): items binned by their top
 * probability into equal-width bins, ECE = sum over bins of |bin| / n * |accuracy - confidence|.
 */
import { softmax } from '../psa/concepts.ts';

/** Bins of the reliability diagram; 15 as in Guo et al. 2017. */
export const ECE_BINS = 15;

export interface ReliabilityBin {
  /** The bin is (lower, upper]; the first one includes 0. */
  lower: number;
  upper: number;
  items: number;
  /** Mean top probability and share of items whose top class is the label; null when empty. */
  confidence: number | null;
  accuracy: number | null;
}

export interface Calibration {
  ece: number | null;
  bins: number;
  items: number;
  reliability: ReliabilityBin[];
}

export function expectedCalibrationError(probs: readonly (readonly number[])[], labels: readonly number[], bins = ECE_BINS): Calibration {
  const acc = Array.from({ length: bins }, () => ({ n: 0, conf: 0, right: 0 }));
  probs.forEach((p, i) => {
    let top = 0;
    for (let k = 1; k < p.length; k++) if (p[k]! > p[top]!) top = k;
    const confidence = p[top]!;
    const bin = Math.min(bins - 1, Math.max(0, Math.ceil(confidence * bins) - 1));
    acc[bin]!.n++;
    acc[bin]!.conf += confidence;
    if (top === labels[i]) acc[bin]!.right++;
  });
  const n = probs.length;
  const reliability = acc.map((b, i) => ({
    lower: i / bins,
    upper: (i + 1) / bins,
    items: b.n,
    confidence: b.n ? b.conf / b.n : null,
    accuracy: b.n ? b.right / b.n : null,
  }));
  const ece = n === 0 ? null : acc.reduce((s, b) => s + (b.n ? (b.n / n) * Math.abs(b.right / b.n - b.conf / b.n) : 0), 0);
  return { ece, bins, items: n, reliability };
}

/** ECE of softmax(logits / T). */
export function eceAt(logits: readonly (readonly number[])[], labels: readonly number[], temperature: number, bins = ECE_BINS): Calibration {
  return expectedCalibrationError(
    logits.map((row) => softmax(row, 0, row.length, temperature)),
    labels,
    bins,
  );
}

/** Greedy CTC decoding, as PaddleOCR's CTCLabelDecode: best class per step, repeats merged, blanks dropped. */

export interface Decoded {
  text: string;
  /** Mean probability of the kept characters; 0 when none was kept. */
  confidence: number;
}

/**
 * `probs` holds `steps` x `classes` probabilities for one line, starting at `offset`;
 * class 0 is the blank.
 */
export function ctcGreedyDecode(probs: Float32Array, offset: number, steps: number, classes: number, charset: readonly string[]): Decoded {
  let text = '';
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < steps; t++) {
    const row = offset + t * classes;
    let best = 0;
    let bestP = probs[row]!;
    for (let c = 1; c < classes; c++) {
      const p = probs[row + c]!;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    if (best !== 0 && best !== previous) {
      text += charset[best] ?? '';
      sum += bestP;
      kept++;
    }
    previous = best;
  }
  return { text, confidence: kept ? sum / kept : 0 };
}

/** Greedy CTC decoding, as PaddleOCR's CTCLabelDecode: best class per step, repeats merged, blanks dropped. */

export interface Decoded {
  text: string;
  /** Mean probability of the kept characters; 0 when none was kept. */
  confidence: number;
}

export interface DecodedSteps extends Decoded {
  chars: string[];
  /** The time step each character was read at. */
  steps: number[];
}

/**
 * `probs` holds `steps` x `classes` probabilities for one line, starting at `offset`;
 * class 0 is the blank.
 */
export function ctcGreedyDecode(probs: Float32Array, offset: number, steps: number, classes: number, charset: readonly string[]): DecodedSteps {
  const chars: string[] = [];
  const at: number[] = [];
  let sum = 0;
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
      chars.push(charset[best] ?? '');
      at.push(t);
      sum += bestP;
    }
    previous = best;
  }
  return { text: chars.join(''), confidence: chars.length ? sum / chars.length : 0, chars, steps: at };
}

const WORD_CHAR = /^[\p{L}\p{N}]$/u;

/**
 * Puts a space at each gap (x positions on the same scale as `x`) that falls between two
 * characters the recogniser read without one.
 */
export function spaceAtGaps(chars: readonly string[], x: readonly number[], gaps: ReadonlyArray<readonly [number, number]>): string {
  let text = '';
  let g = 0;
  for (let i = 0; i < chars.length; i++) {
    if (i > 0) {
      let split = false;
      while (g < gaps.length && (gaps[g]![0] + gaps[g]![1]) / 2 < x[i]!) {
        if ((gaps[g]![0] + gaps[g]![1]) / 2 > x[i - 1]!) split = true;
        g++;
      }
      // Beside punctuation the gap is the mark's own cell ("someone's" in a monospace font).
      if (split && WORD_CHAR.test(chars[i - 1]!) && WORD_CHAR.test(chars[i]!)) text += ' ';
    }
    text += chars[i];
  }
  return text;
}

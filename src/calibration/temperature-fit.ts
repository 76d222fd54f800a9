/**
 * Fits one temperature per head by minimising the negative log-likelihood of the labels on
 * held-out data (temperature scaling, Guo et al. 2017). NLL is convex in 1/T, so a golden-section
 * search over 1/T finds the minimum to the tolerance asked; argmax, and so every decision, is
 * unchanged by any T.
 */

/** Mean NLL of `labels` under softmax(logits / T). */
export function meanNll(logits: readonly (readonly number[])[], labels: readonly number[], temperature: number): number {
  if (logits.length === 0) return NaN;
  let total = 0;
  logits.forEach((row, i) => {
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v / temperature);
    let sum = 0;
    for (const v of row) sum += Math.exp(v / temperature - max);
    total += max + Math.log(sum) - row[labels[i]!]! / temperature;
  });
  return total / logits.length;
}

export interface TemperatureFit {
  temperature: number;
  nll_before: number;
  nll_after: number;
  items: number;
}

export const TEMPERATURE_RANGE = { min: 0.05, max: 20 } as const;

/** The T in TEMPERATURE_RANGE that minimises mean NLL; 1/T is found to within `tolerance`. */
export function fitTemperature(logits: readonly (readonly number[])[], labels: readonly number[], tolerance = 1e-7): TemperatureFit {
  if (logits.length === 0) throw new RangeError('a temperature needs at least one labelled item');
  const f = (beta: number) => meanNll(logits, labels, 1 / beta);
  const phi = (Math.sqrt(5) - 1) / 2;
  let a = 1 / TEMPERATURE_RANGE.max;
  let b = 1 / TEMPERATURE_RANGE.min;
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = f(c);
  let fd = f(d);
  while (b - a > tolerance) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - phi * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + phi * (b - a);
      fd = f(d);
    }
  }
  const temperature = 2 / (a + b);
  return { temperature, nll_before: meanNll(logits, labels, 1), nll_after: meanNll(logits, labels, temperature), items: logits.length };
}

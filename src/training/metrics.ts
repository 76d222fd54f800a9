/** Classification metrics for concept predictions (shared by job evaluation and npm run eval). */
export interface ClassMetrics {
  accuracy: number;
  macro_f1: number;
  per_class: { label: string; precision: number; recall: number; f1: number; support: number }[];
  confusion: number[][];
}

export function classMetrics(truth: number[], predicted: number[], labels: readonly string[]): ClassMetrics {
  const k = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  truth.forEach((t, i) => confusion[t]![predicted[i]!]!++);
  const per_class = labels.map((label, c) => {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predictedC = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predictedC ? tp / predictedC : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { label, precision, recall, f1, support };
  });
  // Macro-F1 over the classes that occur (in truth or prediction); absent classes would add zeros.
  const present = per_class.filter((p, c) => p.support > 0 || confusion.some((row) => row[c]! > 0));
  const correct = truth.filter((t, i) => t === predicted[i]).length;
  return {
    accuracy: truth.length ? correct / truth.length : 0,
    macro_f1: present.length ? present.reduce((a, p) => a + p.f1, 0) / present.length : 0,
    per_class,
    confusion,
  };
}

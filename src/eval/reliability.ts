/**
 * The evaluation report's reliability section: expected calibration error of the level and type
 * probabilities before temperature scaling (the model's own softmax) and after (with the
 * package's temperature.json, when it has one), with the reliability bins of the served ones.
 */
import { ECE_BINS, eceAt, type ReliabilityBin } from '../calibration/ece.ts';
import { meanNll } from '../calibration/temperature-fit.ts';
import type { Temperatures } from '../psa/temperature.ts';

export interface HeadReliability {
  temperature: number;
  ece_before: number | null;
  ece_after: number | null;
  nll_before: number;
  nll_after: number;
  /** Bins of the served probabilities (after). */
  reliability: ReliabilityBin[];
}

export interface ReliabilityReport {
  /** Equal-width bins over the top probability. */
  bins: number;
  /** False: the package has no temperature file, so before and after are the same. */
  temperature_file: boolean;
  level: HeadReliability;
  type: HeadReliability;
}

function head(logits: number[][], labels: number[], temperature: number): HeadReliability {
  const after = eceAt(logits, labels, temperature);
  return {
    temperature,
    ece_before: eceAt(logits, labels, 1).ece,
    ece_after: after.ece,
    nll_before: meanNll(logits, labels, 1),
    nll_after: meanNll(logits, labels, temperature),
    reliability: after.reliability,
  };
}

export function reliabilityReport(levelLogits: number[][], levels: number[], typeLogits: number[][], types: number[], temperatures: Temperatures, hasFile: boolean): ReliabilityReport {
  return { bins: ECE_BINS, temperature_file: hasFile, level: head(levelLogits, levels, temperatures.level), type: head(typeLogits, types, temperatures.type) };
}

/** report.md's section. */
export function markdownReliability(r: ReliabilityReport): string[] {
  const dec = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  const note = r.temperature_file
    ? "Before: the model's own softmax; after: softmax(logits / T) with the package's temperature.json, as the server reports them."
    : 'The package has no temperature.json (fit one with npm run calibrate --fit-temperature or POST /v1/models/{id}/calibrate), so before and after are the same.';
  return [
    `## Reliability (expected calibration error, ${r.bins} bins)`,
    '',
    note,
    '',
    '| head | temperature | ECE before | ECE after | NLL before | NLL after |',
    '| --- | --- | --- | --- | --- | --- |',
    ...(['level', 'type'] as const).map((k) => `| ${k} | ${r[k].temperature.toFixed(3)} | ${dec(r[k].ece_before)} | ${dec(r[k].ece_after)} | ${r[k].nll_before.toFixed(4)} | ${r[k].nll_after.toFixed(4)} |`),
    '',
  ];
}

import { PsaError, PsaErrorCodes } from './errors.ts';
import type { Manifest } from './manifest.ts';
import { LEVEL_LABELS, SAFE_TYPE_INDEX, TYPE_LABELS } from './taxonomy.ts';

/** Pass-1 output for one item: full probability vectors over levels and types. */
export interface ConceptScores {
  levelProbs: number[];
  typeProbs: number[];
}

export interface AppliedConcepts {
  level: number;
  type: number;
}

/** softmax(logits / temperature) over `length` values from `offset`; temperature 1 is the plain softmax. */
export function softmax(logits: ArrayLike<number>, offset: number, length: number, temperature = 1): number[] {
  let max = -Infinity;
  for (let i = 0; i < length; i++) max = Math.max(max, logits[offset + i]!);
  const exps = Array.from({ length }, (_, i) => Math.exp((logits[offset + i]! - max) / temperature));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

export function argmaxOf(values: number[]): number {
  return values.reduce((best, v, i, all) => (v > all[best]! ? i : best), 0);
}

/** The predicted concepts (argmax), with an intervention's values where it gives them. */
export function applyConcepts(scores: ConceptScores, intervene?: Partial<AppliedConcepts>): AppliedConcepts {
  return { level: intervene?.level ?? argmaxOf(scores.levelProbs), type: intervene?.type ?? argmaxOf(scores.typeProbs) };
}

/** The hint pass 2 adds for a (level, type); null for level 0 or type "safe". */
export function hintFor(manifest: Manifest, concepts: AppliedConcepts): string | null {
  if (concepts.level === 0 || concepts.type === SAFE_TYPE_INDEX) return null;
  return manifest.hints[LEVEL_LABELS[concepts.level]!]?.[TYPE_LABELS[concepts.type]!] ?? null;
}

/** Resolves label-or-index intervention values; unknown labels are a client error. */
export function resolveLabel(kind: 'level', value: string | number): number;
export function resolveLabel(kind: 'type', value: string | number): number;
export function resolveLabel(kind: 'level' | 'type', value: string | number): number {
  const labels: readonly string[] = kind === 'level' ? LEVEL_LABELS : TYPE_LABELS;
  const index = typeof value === 'number' ? value : labels.indexOf(value);
  if (!Number.isInteger(index) || index < 0 || index >= labels.length) {
    throw new PsaError(PsaErrorCodes.INVALID_LABEL, `unknown ${kind} ${JSON.stringify(value)}; use one of ${labels.join(', ')}`, {
      details: { kind, value },
    });
  }
  return index;
}

import { argmaxOf, resolveLabel } from '../psa/concepts.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import type { InterveneInput } from './schemas.ts';

/** API shape of predicted concepts: labels, argmax indices and every probability. */
export function conceptsView(levelProbs: number[], typeProbs: number[]) {
  const level = argmaxOf(levelProbs);
  const type = argmaxOf(typeProbs);
  return {
    level: { label: LEVEL_LABELS[level]!, index: level, scores: Object.fromEntries(LEVEL_LABELS.map((l, i) => [l, levelProbs[i]!])) },
    type: { label: TYPE_LABELS[type]!, index: type, scores: Object.fromEntries(TYPE_LABELS.map((l, i) => [l, typeProbs[i]!])) },
  };
}

export function appliedView(applied: { level: number; type: number }, intervened: boolean) {
  return { level: LEVEL_LABELS[applied.level]!, type: TYPE_LABELS[applied.type]!, intervened };
}

/** Resolves an intervention's labels or indices; an unknown label is PSA_INVALID_LABEL. */
export function resolveIntervention(input: InterveneInput | undefined): { level?: number; type?: number } {
  const out: { level?: number; type?: number } = {};
  if (input?.level !== undefined) out.level = resolveLabel('level', input.level);
  if (input?.type !== undefined) out.type = resolveLabel('type', input.type);
  return out;
}

import type { Manifest } from '../psa/manifest.ts';
import { applyConcepts, hintFor, type AppliedConcepts, type ConceptScores } from '../psa/concepts.ts';
import { decide, type Policy, type PolicyOutcome } from './policy.ts';

export interface Judgement {
  /** The (level, type) the policy acts on: the prediction, or the intervention where it replaces it. */
  applied: AppliedConcepts;
  outcome: PolicyOutcome;
  /** The safety hint a chat prompt carries for the decided level and the applied type, or null. */
  hint: string | null;
}

/**
 * The moderation decision, made the same way for /v1/moderate, chat pass 1, evaluation and
 * shadow runs: the intervention applied to the predicted concepts, the policy's decision and flag,
 * and the package's hint for what was decided.
 */
export function judge(scores: ConceptScores, policy: Policy, intervene: Partial<AppliedConcepts> | undefined, manifest: Manifest): Judgement {
  const applied = applyConcepts(scores, intervene);
  const outcome = decide(policy, scores.levelProbs, applied);
  return { applied, outcome, hint: hintFor(manifest, { level: outcome.decisionLevel, type: applied.type }) };
}

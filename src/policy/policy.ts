import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PsaError, PsaErrorCodes } from '../psa/errors.ts';
import { LEVEL_LABELS, TYPE_LABELS, type LevelLabel, type TypeLabel } from '../psa/taxonomy.ts';

export const DECISIONS = ['allow', 'careful', 'caution', 'refuse'] as const;
export type Decision = (typeof DECISIONS)[number];

const DecisionSchema = Type.Union(DECISIONS.map((d) => Type.Literal(d)));
const LevelRow = Type.Partial(Type.Record(Type.Union(LEVEL_LABELS.map((l) => Type.Literal(l))), DecisionSchema), { additionalProperties: false });

/**
 * A policy as users write it (file or per-request override): every field optional.
 * `decisions.default` maps levels to decisions for all types; `decisions.<type>` refines a type.
 */
export const PolicyInputSchema = Type.Object(
  {
    flag: Type.Optional(
      Type.Object(
        {
          min_level: Type.Optional(Type.Union(LEVEL_LABELS.map((l) => Type.Literal(l)))),
          threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
          thresholds: Type.Optional(
            Type.Partial(Type.Record(Type.Union(TYPE_LABELS.map((t) => Type.Literal(t))), Type.Number({ minimum: 0, maximum: 1 })), {
              additionalProperties: false,
              description: 'Per-type flag thresholds, by the applied type; types left out use "threshold"',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    decisions: Type.Optional(Type.Partial(Type.Record(Type.Union([Type.Literal('default'), ...TYPE_LABELS.map((t) => Type.Literal(t))]), LevelRow), { additionalProperties: false })),
    refusal: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(Type.Union([Type.Literal('model'), Type.Literal('message')])),
          message: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, description: 'Policy: flag threshold, (type, level) -> decision, refusal mode' },
);
export type PolicyInput = Static<typeof PolicyInputSchema>;

/** A complete policy, every (type, level) resolved. */
export interface Policy {
  /** `thresholds`: per applied type, in place of `threshold` (calibrated policies set them). */
  flag: { minLevel: number; threshold: number; thresholds?: Partial<Record<TypeLabel, number>> };
  decisions: Record<TypeLabel, Record<LevelLabel, Decision>>;
  refusal: { mode: 'model' | 'message'; message: string };
}

const LEVEL_DEFAULT: Record<LevelLabel, Decision> = { safe: 'allow', careful: 'careful', caution: 'caution', refuse: 'refuse' };

export const BUILTIN_POLICY: Policy = {
  flag: { minLevel: LEVEL_LABELS.indexOf('caution'), threshold: 0.5 },
  decisions: Object.fromEntries(TYPE_LABELS.map((t) => [t, { ...LEVEL_DEFAULT }])) as Policy['decisions'],
  refusal: { mode: 'model', message: 'I can’t help with that request.' },
};

/** Checks a policy object; a bad label or value is a client error naming where it is. */
export function parsePolicy(input: unknown, where: string): PolicyInput {
  if (Value.Check(PolicyInputSchema, input)) return input;
  const first = Value.Errors(PolicyInputSchema, input).First();
  throw new PsaError(
    PsaErrorCodes.INVALID_LABEL,
    `${where}${first?.path ?? ''}: ${first?.message ?? 'invalid policy'}; labels are levels (${LEVEL_LABELS.join(', ')}), types (${TYPE_LABELS.join(', ')}) and decisions (${DECISIONS.join(', ')})`,
    {
      details: { path: first?.path },
    },
  );
}

/**
 * Applies overrides on top of a base policy (the server's, then a request's). An override's
 * `flag.threshold` without `flag.thresholds` sets one threshold for every type, replacing the
 * base's per-type ones.
 */
export function mergePolicy(base: Policy, input: PolicyInput | undefined): Policy {
  if (!input) return base;
  const decisions = structuredClone(base.decisions);
  const rows = (input.decisions ?? {}) as Partial<Record<TypeLabel | 'default', Partial<Record<LevelLabel, Decision>>>>;
  for (const type of TYPE_LABELS) Object.assign(decisions[type], rows.default ?? {}, rows[type] ?? {});
  const keep = input.flag?.threshold === undefined ? base.flag.thresholds : undefined;
  const thresholds = { ...keep, ...input.flag?.thresholds };
  return {
    flag: {
      minLevel: input.flag?.min_level !== undefined ? LEVEL_LABELS.indexOf(input.flag.min_level) : base.flag.minLevel,
      threshold: input.flag?.threshold ?? base.flag.threshold,
      ...(Object.keys(thresholds).length > 0 && { thresholds }),
    },
    decisions,
    refusal: { ...base.refusal, ...input.refusal },
  };
}

export interface PolicyOutcome {
  decision: Decision;
  /** The level whose behaviour the decision asks for (its hint is used in chat). */
  decisionLevel: number;
  flagged: boolean;
}

/** P(level >= minLevel): the score the flag threshold is compared with. */
export function flagScore(levelProbs: readonly number[], minLevel: number): number {
  return levelProbs.slice(minLevel).reduce((a, b) => a + b, 0);
}

/** The flag threshold for an applied type: its own, or the policy's one threshold. */
export function thresholdFor(policy: Policy, type: number): number {
  return policy.flag.thresholds?.[TYPE_LABELS[type]!] ?? policy.flag.threshold;
}

/**
 * The decision follows the applied (level, type); `flagged` follows the predicted level
 * probabilities: P(level >= flag.min_level) >= the threshold of the applied type, or a refuse decision.
 */
export function decide(policy: Policy, levelProbs: number[], applied: { level: number; type: number }): PolicyOutcome {
  const decision = policy.decisions[TYPE_LABELS[applied.type]!][LEVEL_LABELS[applied.level]!];
  const risk = flagScore(levelProbs, policy.flag.minLevel);
  return { decision, decisionLevel: DECISIONS.indexOf(decision), flagged: risk >= thresholdFor(policy, applied.type) || decision === 'refuse' };
}

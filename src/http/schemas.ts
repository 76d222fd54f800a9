import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { DECISIONS, PolicyInputSchema } from '../policy/policy.ts';

const literals = (values: readonly string[]) => Type.Union(values.map((v) => Type.Literal(v)));

export const LevelLabelSchema = literals(LEVEL_LABELS);
export const TypeLabelSchema = literals(TYPE_LABELS);
export const DecisionSchema = literals(DECISIONS);

const scores = (labels: readonly string[]) => Type.Object(Object.fromEntries(labels.map((l) => [l, Type.Number({ minimum: 0, maximum: 1 })])), { description: 'Probability of every class' });

export const ConceptsSchema = Type.Object(
  {
    level: Type.Object({ label: LevelLabelSchema, index: Type.Integer(), scores: scores(LEVEL_LABELS) }),
    type: Type.Object({ label: TypeLabelSchema, index: Type.Integer(), scores: scores(TYPE_LABELS) }),
  },
  { description: 'Predicted safety concepts (argmax and full probability vectors)' },
);

export const AppliedSchema = Type.Object({ level: LevelLabelSchema, type: TypeLabelSchema, intervened: Type.Boolean() }, { description: 'Concepts after intervention; equal to the prediction when none was requested' });

export const InterveneSchema = Type.Object(
  {
    level: Type.Optional(Type.Union([LevelLabelSchema, Type.Integer({ minimum: 0, maximum: LEVEL_LABELS.length - 1 })])),
    type: Type.Optional(Type.Union([TypeLabelSchema, Type.Integer({ minimum: 0, maximum: TYPE_LABELS.length - 1 })])),
  },
  { additionalProperties: false, description: 'Test-time concept intervention: replaces the predicted level and/or type' },
);
export type InterveneInput = Static<typeof InterveneSchema>;

export const ImageString = Type.String({ description: 'Image bytes as base64, or a data: URL (image/png, image/jpeg, image/webp, image/gif)' });

export const ErrorSchema = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable error code, e.g. PSA_INVALID_IMAGE' }),
    message: Type.String({ description: 'What went wrong and what to change' }),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  request_id: Type.String(),
});

/** Every error status a /v1 route can answer, for the OpenAPI document. */
export function withErrors(ok: Record<number, TSchema>, statuses: number[] = [400, 401, 403, 413, 415, 500, 503]): Record<number, TSchema> {
  return { ...ok, ...Object.fromEntries(statuses.map((s) => [s, ErrorSchema])) };
}

export { PolicyInputSchema };

/** A request's `policy`: overrides (a policy file's shape), or the name of a stored calibrated policy. */
export const PolicyFieldSchema = Type.Union([PolicyInputSchema, Type.String({ minLength: 1, maxLength: 80, description: 'The name of a calibrated policy, "calibrated-<name>" (GET /v1/policies)' })], {
  description: 'Policy overrides over the default policy, or the name of a calibrated policy ("calibrated-<name>") used in place of the default',
});

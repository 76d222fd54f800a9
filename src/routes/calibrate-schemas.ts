import { Type } from '@sinclair/typebox';
import { POLICY_NAME_PATTERN } from '../calibration/policy-store.ts';
import { PolicyInputSchema } from '../http/schemas.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';

const share = (description: string) => Type.Number({ minimum: 0, maximum: 1, description });
const RISK_TYPES = TYPE_LABELS.filter((t) => t !== 'safe');
const Nullable = (s: ReturnType<typeof Type.Number>) => Type.Union([s, Type.Null()]);

export const TargetSchema = Type.Object(
  {
    recall: Type.Optional(
      Type.Union([
        share('Least share of items labelled min_level or above that must be flagged'),
        Type.Partial(Type.Object(Object.fromEntries(RISK_TYPES.map((t) => [t, share(`Least recall on ${t} items`)]))), {
          additionalProperties: false,
          minProperties: 1,
          description: 'Least recall per labelled risk type; thresholds are then chosen per predicted type',
        }),
      ]),
    ),
    max_over_refusal: Type.Optional(share('Most share of items labelled safe (level safe) that may be flagged')),
  },
  { additionalProperties: false, minProperties: 1, description: 'What the policy must achieve on the data; both may be given' },
);

export const CalibrateBody = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$', description: 'Stored as the policy "calibrated-<name>"' }),
    dataset: Type.Optional(Type.String({ pattern: '^ds-[0-9a-f]{16}$', description: 'A stored dataset (POST /v1/datasets); its "split" is scored' })),
    split: Type.Optional(Type.Union([Type.Literal('val'), Type.Literal('train')], { description: 'Which split of "dataset" (default val: data the model was not trained on)' })),
    path: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: 'An evaluation set as npm run eval reads it (a directory with eval.jsonl, or an archive of one), relative to DATA_DIR' })),
    target: TargetSchema,
    min_level: Type.Optional(
      Type.Union(
        LEVEL_LABELS.filter((l) => l !== 'safe').map((l) => Type.Literal(l)),
        { description: "Items labelled this level or above should be flagged (default: the server policy's flag.min_level)" },
      ),
    ),
    fit_temperature: Type.Optional(
      Type.Boolean({ description: 'Fit a temperature per head on these items first, write temperature.json beside the package and choose thresholds on the calibrated probabilities (default false)' }),
    ),
    allow_decision_changes: Type.Optional(Type.Boolean({ description: 'Let (type, refuse) decisions become caution where refusals alone exceed max_over_refusal (default true)' })),
    bootstrap: Type.Optional(
      Type.Object(
        {
          resamples: Type.Optional(Type.Integer({ minimum: 100, maximum: 10000, description: 'Bootstrap resamples (default 1000)' })),
          seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'Seed of the resampling (default 1)' })),
        },
        { additionalProperties: false },
      ),
    ),
    make_default: Type.Optional(Type.Boolean({ description: 'Make it the default policy (persisted; also PUT /v1/policies/default)' })),
    replace: Type.Optional(Type.Boolean({ description: 'Overwrite a policy of the same name (default false: 409)' })),
  },
  { additionalProperties: false },
);

const Interval = Type.Object({
  value: Type.Union([Type.Number(), Type.Null()]),
  ci: Type.Union([Type.Tuple([Type.Number(), Type.Number()]), Type.Null()], { description: 'Percentile bootstrap interval at bootstrap.level; null when no item measures it' }),
});
const Head = Type.Object({
  temperature: Type.Number(),
  nll_before: Type.Number(),
  nll_after: Type.Number(),
  ece_before: Nullable(Type.Number()),
  ece_after: Nullable(Type.Number()),
});
const Best = Type.Object({
  recall_within_over_refusal: Type.Optional(Type.Object({ recall: Nullable(Type.Number()), over_refusal: Nullable(Type.Number()), threshold: Type.Number() })),
  over_refusal_at_recall: Type.Optional(Type.Object({ recall: Nullable(Type.Number()), over_refusal: Nullable(Type.Number()) })),
});

export const CalibrationReportSchema = Type.Object({
  met: Type.Boolean(),
  target: TargetSchema,
  min_level: Type.String(),
  items: Type.Integer(),
  positives: Type.Integer({ description: 'Items labelled min_level or above' }),
  safe_items: Type.Integer({ description: 'Items labelled safe' }),
  policy: PolicyInputSchema,
  decisions_changed: Type.Array(Type.Object({ type: Type.String(), level: Type.String(), from: Type.String(), to: Type.String() })),
  achieved: Type.Object({
    recall: Interval,
    over_refusal: Interval,
    per_type: Type.Record(Type.String(), Interval),
    caution_or_refuse_on_safe: Nullable(Type.Number({ description: 'Share of safe items whose decision is caution or refuse' })),
    bootstrap: Type.Object({ resamples: Type.Integer(), seed: Type.Integer(), level: Type.Number(), method: Type.String() }),
  }),
  best: Type.Optional(Best),
  temperature: Type.Object({ fitted: Type.Boolean(), level: Head, type: Head, ece_bins: Type.Integer() }),
});

const DataDescription = Type.Object({ dataset: Type.Optional(Type.String()), split: Type.Optional(Type.String()), path: Type.Optional(Type.String()), file: Type.String() });

export const CalibrateResponse = Type.Object({
  policy: Type.String({ description: 'The stored policy\'s name: send it as "policy" on /v1/moderate or /v1/chat' }),
  default: Type.Boolean(),
  model: Type.Object({ id: Type.String(), name: Type.String() }),
  data: DataDescription,
  temperature: Type.Object(
    { level: Type.Number(), type: Type.Number(), file: Type.Union([Type.String(), Type.Null()]), written: Type.Boolean() },
    { description: "The temperatures the policy's probabilities have; file: temperature.json beside the package, when it has one" },
  ),
  report: CalibrationReportSchema,
});

export const NamedPolicyView = Type.Object({
  name: Type.String({ pattern: POLICY_NAME_PATTERN }),
  created_at: Type.String(),
  default: Type.Boolean(),
  model: Type.Object({ id: Type.String(), name: Type.String(), temperature: Type.Object({ level: Type.Number(), type: Type.Number() }) }),
  policy: PolicyInputSchema,
  calibration: Type.Object({ data: Type.Optional(DataDescription), ...CalibrationReportSchema.properties }, { description: 'The report of the calibration that made it' }),
});

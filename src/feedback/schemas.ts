import { Type, type Static } from '@sinclair/typebox';
import { ImageString, LevelLabelSchema, TypeLabelSchema } from '../http/schemas.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { DISAGREEMENTS } from './stats.ts';

const label = (labels: readonly string[], what: string) =>
  Type.Union([Type.Integer(), Type.String()], { description: `The corrected ${what}: an index or a label (${labels.map((l, i) => `${i}=${l}`).join(', ')}); checked like a dataset line's` });

export const FeedbackBody = Type.Object(
  {
    request_id: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: 'The x-request-id of a recent /v1/moderate, /v1/chat, /v1/moderations or /v1/chat/completions response (needs FEEDBACK_RETENTION=on)' }),
    ),
    item: Type.Optional(Type.Integer({ minimum: 0, description: 'Which item of a request with several (its index in the response); needed when it had more than one' })),
    image: Type.Optional(ImageString),
    prompt: Type.Optional(Type.String({ description: 'With "image", or alone for a text-only item: the input, sent inline instead of request_id' })),
    safe_type: label(TYPE_LABELS, 'safety type'),
    safe_level: label(LEVEL_LABELS, 'safety level'),
    answer: Type.Optional(Type.String({ description: "The reply the model should learn to give; without it a dataset line gets the served chat answer (allowed levels) or the level's default" })),
    note: Type.Optional(Type.String({ maxLength: 2000, description: "The reviewer's note, kept with the item" })),
  },
  { additionalProperties: false },
);
export type FeedbackBody = Static<typeof FeedbackBody>;

const JudgementSchema = Type.Object(
  { level: LevelLabelSchema, type: TypeLabelSchema, decision: Type.String(), flagged: Type.Boolean() },
  { description: 'What the model had said: its predicted level and type, and the policy decision' },
);

export const FeedbackView = Type.Object({
  id: Type.String({ description: 'The item id: the content address of the input (same image and prompt, same id)' }),
  status: Type.Optional(
    Type.Union([Type.Literal('created'), Type.Literal('updated'), Type.Literal('unchanged')], { description: 'created; updated (a new label, note or answer; the latest review wins); unchanged (the same review again)' }),
  ),
  has_image: Type.Boolean(),
  safe_type: TypeLabelSchema,
  safe_level: LevelLabelSchema,
  note: Type.Optional(Type.String()),
  answer: Type.Optional(Type.String()),
  source: Type.Union([Type.Literal('request'), Type.Literal('inline')]),
  request_id: Type.Optional(Type.String()),
  model: Type.Optional(Type.String({ description: 'The model that served the request' })),
  model_judgement: Type.Union([JudgementSchema, Type.Null()]),
  disagreement: Type.Union(
    DISAGREEMENTS.map((d) => Type.Literal(d)),
    { description: "How the label differs from the model's predicted concepts" },
  ),
  revisions: Type.Integer({ description: 'Earlier reviews of this input' }),
  created_at: Type.String(),
  updated_at: Type.String(),
});

const counts = (labels: readonly string[]) => Type.Object(Object.fromEntries(labels.map((l) => [l, Type.Integer()])));
const square = (labels: readonly string[]) => Type.Object(Object.fromEntries(labels.map((l) => [l, counts(labels)])));

export const FeedbackStatsView = Type.Object({
  items: Type.Integer(),
  by_type: counts(TYPE_LABELS),
  by_level: counts(LEVEL_LABELS),
  by_source: Type.Object({ request: Type.Integer(), inline: Type.Integer() }),
  disagreement: Type.Object(Object.fromEntries(DISAGREEMENTS.map((d) => [d, Type.Integer()])), { description: 'none, type only, level only, both; not_judged: sent inline, no model judgement' }),
  level_direction: Type.Object({ model_stricter: Type.Integer(), model_more_lenient: Type.Integer() }, { description: "Judged items whose reviewed level is below (stricter) or above (more lenient) the model's" }),
  confusion: Type.Object({ level: square(LEVEL_LABELS), type: square(TYPE_LABELS) }, { description: 'Judged items: confusion[model label][reviewed label]' }),
  last_review_at: Type.Union([Type.String(), Type.Null()]),
  retention: Type.Object({
    enabled: Type.Boolean(),
    requests: Type.Integer({ description: "Requests held in this replica's memory now" }),
    bytes: Type.Integer(),
    max_bytes: Type.Integer(),
    max_requests: Type.Integer(),
    ttl_s: Type.Integer(),
  }),
});

export const FeedbackDatasetBody = Type.Object(
  {
    base: Type.Optional(Type.String({ pattern: '^ds-[0-9a-f]{16}$', description: 'A stored dataset whose lines (and val.jsonl) join the reviewed items' })),
    only_disagreements: Type.Optional(Type.Boolean({ description: "Only items whose label differs from the model's judgement (default false: every item)" })),
    answers: Type.Optional(
      Type.Object(Object.fromEntries(LEVEL_LABELS.map((l) => [l, Type.Optional(Type.String({ maxLength: 2000 }))])), {
        additionalProperties: false,
        description: 'Replies, by labelled level, for items without an answer',
      }),
    ),
  },
  { additionalProperties: false },
);
export type FeedbackDatasetBody = Static<typeof FeedbackDatasetBody>;

export const FeedbackDatasetView = Type.Object({
  id: Type.String({ description: 'The dataset id, for POST /v1/train' }),
  source: Type.String(),
  items: Type.Integer({ description: 'Reviewed items in train.jsonl' }),
  base: Type.Union([Type.String(), Type.Null()]),
  base_examples: Type.Integer(),
  val_source: Type.Union([Type.Literal('base'), Type.Literal('feedback')], { description: "val.jsonl: the base's, or the reviewed items themselves (none of them is held out of training)" }),
  splits: Type.Record(Type.String(), Type.Unknown()),
});

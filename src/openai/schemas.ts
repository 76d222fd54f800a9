import { Type, type Static } from '@sinclair/typebox';
import { GenerationFields } from '../psa/generation-options.ts';
import { ModerationItemSchema } from '../http/moderation.ts';
import { AppliedSchema, ConceptsSchema, DecisionSchema, InterveneSchema, PolicyFieldSchema } from '../http/schemas.ts';
import { TYPE_LABELS } from '../psa/taxonomy.ts';

/** The risk types of the taxonomy (every type but "safe"): the moderation categories. */
export const RISK_TYPES = TYPE_LABELS.filter((t) => t !== 'safe');

const perCategory = <T extends Parameters<typeof Type.Object>[0][string]>(value: T, description: string) => Type.Object(Object.fromEntries(RISK_TYPES.map((t) => [t, value])), { description });

const ModelField = Type.String({ description: 'A model id from GET /v1/models (the active one); omit it to use the active model' });
const ImageUrl = Type.Object(
  { url: Type.String({ description: 'A base64 data: URL, or an https URL on ALLOWED_IMAGE_HOSTS' }), detail: Type.Optional(Type.String({ description: 'Accepted and ignored: the model sees one fixed resolution' })) },
  { additionalProperties: false },
);
const Part = (description: string) =>
  Type.Object({ type: Type.String({ description: 'text or image_url' }), text: Type.Optional(Type.String()), image_url: Type.Optional(ImageUrl) }, { additionalProperties: false, description });

export const ModerationsBody = Type.Object(
  {
    input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 }), Type.Array(Part('{type: "text", text} or {type: "image_url", image_url: {url}}'), { minItems: 1 })], {
      description: 'A string, an array of strings (one result each), or an array of text and image_url parts (one result per image, every text part as its prompt; one text-only result without images)',
    }),
    model: Type.Optional(ModelField),
    policy: Type.Optional(PolicyFieldSchema),
    intervene: Type.Optional(InterveneSchema),
  },
  { additionalProperties: false },
);
export type ModerationsBody = Static<typeof ModerationsBody>;
export type ContentPart = Static<ReturnType<typeof Part>>;

export const ModerationResult = Type.Object({
  flagged: Type.Boolean({ description: "The policy's flag: P(level >= flag.min_level) >= flag.threshold, or a refuse decision" }),
  categories: perCategory(Type.Boolean(), 'When flagged, true for the applied type (or, when that is "safe", the most probable risk type); all false otherwise'),
  category_scores: perCategory(Type.Number({ minimum: 0, maximum: 1 }), "P(type) x P(level >= the policy's flag.min_level), from the predicted probabilities"),
  category_applied_input_types: perCategory(Type.Array(Type.Union([Type.Literal('text'), Type.Literal('image')])), 'The inputs every score was computed from (the safety head reads image and text together)'),
  psa: ModerationItemSchema,
});

export const ModerationsResponse = Type.Object({ id: Type.String(), model: Type.String(), results: Type.Array(ModerationResult) });

const ChatMessage = Type.Object(
  {
    role: Type.Union([Type.Literal('system'), Type.Literal('developer'), Type.Literal('user'), Type.Literal('assistant'), Type.Literal('tool')]),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(Part('{type: "text", text} or {type: "image_url", image_url: {url}}')), Type.Null()])),
    name: Type.Optional(Type.String()),
  },
  { description: 'system and developer messages join the prompt; one user message with at most one image; earlier turns are refused' },
);
export type ChatMessage = Static<typeof ChatMessage>;

export const ChatCompletionsBody = Type.Object(
  {
    model: Type.Optional(ModelField),
    messages: Type.Array(ChatMessage, { minItems: 1 }),
    ...GenerationFields,
    max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1, description: 'Most tokens to generate (the same as max_tokens; bounded by MAX_NEW_TOKENS)' })),
    n: Type.Optional(Type.Integer({ minimum: 1, description: 'Choices to generate: 1 only' })),
    stream: Type.Optional(Type.Boolean({ description: 'Server-Sent Events of chat.completion.chunk objects, then data: [DONE]' })),
    stream_options: Type.Optional(Type.Union([Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), Type.Null()])),
    user: Type.Optional(Type.String({ description: 'Accepted; logged at debug level' })),
    policy: Type.Optional(PolicyFieldSchema),
    intervene: Type.Optional(InterveneSchema),
  },
  { additionalProperties: false },
);
export type ChatCompletionsBody = Static<typeof ChatCompletionsBody>;

const Timings = Type.Object({ total_ms: Type.Number(), preprocess_ms: Type.Number(), pass1_ms: Type.Number(), pass2_ms: Type.Number(), tokens_per_second: Type.Number() });
const PsaChat = Type.Object(
  {
    concepts: ConceptsSchema,
    applied: AppliedSchema,
    decision: DecisionSchema,
    refused: Type.Boolean(),
    flagged: Type.Boolean(),
    hint: Type.Union([Type.String(), Type.Null()]),
    timings: Type.Optional(Timings),
  },
  { description: 'What the safety head and the policy said (on the response, and on the first and last chunks)' },
);
const Usage = Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() });
const NullableString = Type.Union([Type.String(), Type.Null()]);
const FinishReason = Type.Union([Type.Literal('stop'), Type.Literal('length'), Type.Literal('content_filter')], {
  description: 'stop: end of answer or a stop sequence (also a refusal the model wrote); length: max_tokens or the context was reached; content_filter: the policy refused with its message and nothing was generated',
});

/** The fields a chat.completion and its stream's chunks share. */
const completionHeader = <T extends string>(object: T) => ({
  id: Type.String(),
  object: Type.Literal(object),
  created: Type.Integer(),
  model: Type.String(),
  system_fingerprint: Type.Null(),
});

export const ChatCompletion = Type.Object({
  ...completionHeader('chat.completion'),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({
        role: Type.Literal('assistant'),
        content: Type.Union([Type.String(), Type.Null()], { description: 'The answer; null when refused' }),
        refusal: Type.Union([Type.String(), Type.Null()], { description: 'The refusal (written by the model, or the policy message) when the decision is refuse' }),
      }),
      logprobs: Type.Null(),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
  psa: PsaChat,
});

export const ChatCompletionChunk = Type.Object({
  ...completionHeader('chat.completion.chunk'),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      delta: Type.Object({ role: Type.Optional(Type.Literal('assistant')), content: Type.Optional(NullableString), refusal: Type.Optional(NullableString) }),
      logprobs: Type.Null(),
      finish_reason: Type.Union([FinishReason, Type.Null()]),
    }),
    { description: 'Empty on the usage chunk' },
  ),
  usage: Type.Optional(Type.Union([Usage, Type.Null()], { description: 'With stream_options.include_usage: null on every chunk but the last, which has no choices' })),
  psa: Type.Optional(PsaChat),
});

export const ModelObject = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer({ description: 'Unix seconds the package was created' }),
  owned_by: Type.String(),
  name: Type.String({ description: 'The name in the package manifest' }),
  active: Type.Boolean({ description: 'The package being served' }),
  provenance: Type.Record(Type.String(), Type.Unknown(), { description: 'Where the weights come from: status (untrained, exported, trained), data, config, metrics' }),
});

export const ModelList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(ModelObject),
  active: Type.String({ description: 'The id of the package being served' }),
});

import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import type { BatchStats } from '../inference/batcher.ts';
import type { InferencePool } from '../inference/pool.ts';
import { WORKER_STAGES, type StageMs } from '../psa/stage-timings.ts';
import { judge } from '../policy/judge.ts';
import type { Policy } from '../policy/policy.ts';
import type { PolicyField } from '../plugins/named-policies.ts';
import { appliedView, conceptsView, resolveIntervention } from './concepts-view.ts';
import { ApiError, apiError, HttpErrorCodes } from './errors.ts';
import { AppliedSchema, ConceptsSchema, DecisionSchema, type InterveneInput } from './schemas.ts';

/** One moderated item as /v1/moderate returns it (and /v1/moderations carries under `psa`). */
export const ModerationItemSchema = Type.Object({
  index: Type.Integer(),
  has_image: Type.Boolean({ description: 'False for a text-only item: the model saw its stand-in image (uniform mid-grey) and no OCR ran' }),
  concepts: ConceptsSchema,
  applied: AppliedSchema,
  decision: DecisionSchema,
  flagged: Type.Boolean(),
  hint: Type.Union([Type.String(), Type.Null()], { description: 'The safety hint chat would add, or null' }),
  image_text: Type.Optional(Type.String({ description: 'Text read in the image by OCR and given to the safety head (models that read images)' })),
});

const ms = (description: string) => Type.Number({ description });
export const ModerationStagesSchema = Type.Object(
  {
    parse: ms('Receiving and parsing the body, base64 or multipart decoding'),
    queue: ms('Longest wait of an item for a worker'),
    decode: ms('Image decode and resize, for the vision encoder and OCR, for the batch'),
    ocr_detect: ms('OCR text detection for the batch'),
    ocr_recognize: ms('OCR line recognition for the batch'),
    query: ms('Query encoder or token embeddings for the batch'),
    vision: ms('Vision encoder for the batch'),
    head: ms('Safety head for the batch'),
    policy: ms('Intervention, policy and hints for the request'),
  },
  {
    description:
      'Milliseconds per stage; worker stages are those of the batch that carried the items (the largest, when they rode in several), and stages that ran concurrently are scaled in proportion to the wall time they took together',
  },
);
export const ModerationTimingsSchema = Type.Object({
  total_ms: Type.Number(),
  preprocess_ms: Type.Number(),
  pass1_ms: Type.Number(),
  batch_size: Type.Integer(),
  stages_ms: ModerationStagesSchema,
});

export type ModerationStages = StageMs & { parse: number; queue: number; policy: number };

/** Batches already counted in the batch-level metrics. */
const observedBatches = new WeakSet<BatchStats>();

export interface ModerationRequest {
  /** `image` null: a text-only item (scored over the stand-in image). */
  items: { image: Buffer | null; prompt: string }[];
  /** Overrides, or a named policy ("calibrated-<name>"). */
  policy: PolicyField;
  intervene: InterveneInput | undefined;
}

export interface ModeratedItem {
  view: {
    index: number;
    has_image: boolean;
    concepts: ReturnType<typeof conceptsView>;
    applied: ReturnType<typeof appliedView>;
    decision: string;
    flagged: boolean;
    hint: string | null;
    image_text?: string;
  };
  levelProbs: number[];
  typeProbs: number[];
  applied: { level: number; type: number };
}

export interface ModerationOutcome {
  model: string;
  policy: Policy;
  items: ModeratedItem[];
  timings: { total_ms: number; preprocess_ms: number; pass1_ms: number; batch_size: number; stages_ms: Omit<ModerationStages, 'parse'> };
}

/**
 * Pass 1 for every item on `pool`, then intervention and the policy (the server's with the
 * request's overrides): the one moderation path behind /v1/moderate and /v1/moderations.
 */
export async function moderate(app: FastifyInstance, config: Config, pool: InferencePool, input: ModerationRequest): Promise<ModerationOutcome> {
  const started = performance.now();
  input.items.forEach((item, i) => {
    if (item.prompt.length > config.MAX_PROMPT_CHARS) throw apiError(HttpErrorCodes.BAD_REQUEST, `prompt ${i} has ${item.prompt.length} characters; at most ${config.MAX_PROMPT_CHARS}`);
  });
  const policy = await app.policies.resolve(input.policy);
  const intervene = resolveIntervention(input.intervene);
  // The pool is chosen and given the work with no await between, so a reload cannot close it in the
  // meantime; one that replaced it serves the same package (name and manifest alike).
  const results = await app.models.current(pool).moderateAll(input.items);
  const failed = results.findIndex((r) => !r.item.ok);
  if (failed !== -1) {
    const f = results[failed]!.item as { code: string; message: string };
    throw ApiError.from({ code: f.code, message: input.items.length > 1 ? `item ${failed}: ${f.message}` : f.message, details: { item: failed } });
  }
  const manifest = pool.pkg.manifest;
  const policyStart = performance.now();
  const items = results.map((r, index): ModeratedItem => {
    const scores = r.item as { levelProbs: number[]; typeProbs: number[]; imageText?: string };
    const { applied, outcome, hint } = judge(scores, policy, intervene, manifest);
    return {
      view: {
        index,
        has_image: input.items[index]!.image !== null,
        concepts: conceptsView(scores.levelProbs, scores.typeProbs),
        applied: appliedView(applied, intervene.level !== undefined || intervene.type !== undefined),
        decision: outcome.decision,
        flagged: outcome.flagged,
        hint,
        ...(scores.imageText !== undefined && { image_text: scores.imageText }),
      },
      levelProbs: scores.levelProbs,
      typeProbs: scores.typeProbs,
      applied,
    };
  });
  const policyMs = performance.now() - policyStart;
  const stats = results.map((r) => r.stats);
  const stage = app.metrics.stageSeconds;
  for (const s of new Set(stats)) {
    // A batch carries items of several requests: the first of them to finish observes it.
    if (observedBatches.has(s)) continue;
    observedBatches.add(s);
    app.metrics.pass1Seconds.observe(s.pass1Ms / 1000);
    app.metrics.batchSize.observe(s.batchSize);
    for (const name of WORKER_STAGES) stage.observe({ stage: name }, s.stages[name] / 1000);
  }
  for (const r of results) stage.observe({ stage: 'queue' }, r.queueMs / 1000);
  stage.observe({ stage: 'policy' }, policyMs / 1000);
  const largest = (name: keyof StageMs) => Math.max(...stats.map((s) => s.stages[name]));
  for (const { view } of items) app.metrics.decisions.inc({ type: view.applied.type, level: view.applied.level, decision: view.decision });
  return {
    model: pool.name,
    policy,
    items,
    timings: {
      total_ms: performance.now() - started,
      preprocess_ms: Math.max(...stats.map((s) => s.preprocessMs)),
      pass1_ms: Math.max(...stats.map((s) => s.pass1Ms)),
      batch_size: Math.max(...stats.map((s) => s.batchSize)),
      stages_ms: {
        queue: Math.max(...results.map((r) => r.queueMs)),
        ...(Object.fromEntries(WORKER_STAGES.map((name) => [name, largest(name)])) as StageMs),
        policy: policyMs,
      },
    },
  };
}

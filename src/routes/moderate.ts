import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { ApiError, apiError, HttpErrorCodes } from '../http/errors.ts';
import { appliedView, conceptsView, resolveIntervention } from '../http/concepts-view.ts';
import { decodeImageString, jsonField, readMultipart, validateLikeJson } from '../http/image-input.ts';
import { AppliedSchema, ConceptsSchema, DecisionSchema, ImageString, InterveneSchema, PolicyInputSchema, withErrors, type InterveneInput } from '../http/schemas.ts';
import { applyConcepts, hintFor } from '../psa/concepts.ts';
import { decide, mergePolicy, parsePolicy, type PolicyInput } from '../policy/policy.ts';

const Item = Type.Object({ image: ImageString, prompt: Type.Optional(Type.String()) }, { additionalProperties: false });

export const ModerateBody = Type.Object(
  {
    image: Type.Optional(ImageString),
    prompt: Type.Optional(Type.String({ description: 'Text that comes with the image; it joins the safety head query' })),
    items: Type.Optional(Type.Array(Item, { minItems: 1, description: 'Several images (and prompts) in one request, instead of image/prompt' })),
    policy: Type.Optional(PolicyInputSchema),
    intervene: Type.Optional(InterveneSchema),
  },
  { additionalProperties: false },
);
type ModerateBody = Static<typeof ModerateBody>;

const ItemResult = Type.Object({
  index: Type.Integer(),
  concepts: ConceptsSchema,
  applied: AppliedSchema,
  decision: DecisionSchema,
  flagged: Type.Boolean(),
  hint: Type.Union([Type.String(), Type.Null()], { description: 'The safety hint /v1/chat would add, or null' }),
  image_text: Type.Optional(Type.String({ description: 'Text read in the image by OCR and given to the safety head (models that read images)' })),
});

const ModerateResponse = Type.Object({
  model: Type.String(),
  items: Type.Array(ItemResult),
  timings: Type.Object({ total_ms: Type.Number(), preprocess_ms: Type.Number(), pass1_ms: Type.Number(), batch_size: Type.Integer() }),
});

interface NormalizedRequest {
  items: { image: Buffer; prompt: string }[];
  policy: PolicyInput | undefined;
  intervene: InterveneInput | undefined;
}

async function normalize(request: FastifyRequest, config: Config): Promise<NormalizedRequest> {
  if (request.isMultipart()) {
    const form = await readMultipart(request, config.MAX_ITEMS);
    if (form.images.length === 0) throw apiError(HttpErrorCodes.MISSING_IMAGE, 'the form has no file field "image"');
    const prompts = form.fields.get('prompt') ?? [];
    if (prompts.length > 1 && prompts.length !== form.images.length) {
      throw apiError(HttpErrorCodes.BAD_REQUEST, `send one "prompt" field for all images or one per image (got ${prompts.length} for ${form.images.length})`);
    }
    const policy = jsonField(form.fields, 'policy') as PolicyInput | undefined;
    const intervene = jsonField(form.fields, 'intervene') as InterveneInput | undefined;
    validateLikeJson(request, { ...(prompts.length === 1 && { prompt: prompts[0] }), ...(policy !== undefined && { policy }), ...(intervene !== undefined && { intervene }) });
    return {
      items: form.images.map((image, i) => ({ image, prompt: prompts[prompts.length > 1 ? i : 0] ?? '' })),
      policy,
      intervene,
    };
  }
  const body = request.body as ModerateBody;
  if (body.items && body.image !== undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, 'send either "image" or "items", not both');
  const raw = body.items ?? (body.image !== undefined ? [{ image: body.image, prompt: body.prompt }] : []);
  if (raw.length === 0) throw apiError(HttpErrorCodes.MISSING_IMAGE, 'send "image" (base64 or data URL) or "items"');
  if (raw.length > config.MAX_ITEMS) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `at most ${config.MAX_ITEMS} items per request (got ${raw.length})`);
  return {
    items: raw.map((item, i) => ({ image: decodeImageString(item.image, config.MAX_IMAGE_BYTES, body.items ? `items[${i}].image` : 'image'), prompt: item.prompt ?? '' })),
    policy: body.policy,
    intervene: body.intervene,
  };
}

export default async function moderateRoutes(app: FastifyInstance, opts: { config: Config }) {
  const { config } = opts;
  app.post(
    '/v1/moderate',
    {
      config: { scope: 'infer' },
      bodyLimit: inferenceBodyLimit(config),
      schema: {
        summary: 'Safety concepts for images and prompts (pass 1 only)',
        description: 'JSON (image or items) or multipart/form-data (file fields "image", text field "prompt", JSON fields "policy" and "intervene").',
        tags: ['inference'],
        consumes: ['application/json', 'multipart/form-data'],
        body: ModerateBody,
        response: withErrors({ 200: ModerateResponse }),
      },
    },
    async (request) => {
      const started = performance.now();
      const input = await normalize(request, config);
      input.items.forEach((item, i) => {
        if (item.prompt.length > config.MAX_PROMPT_CHARS) throw apiError(HttpErrorCodes.BAD_REQUEST, `prompt ${i} has ${item.prompt.length} characters; at most ${config.MAX_PROMPT_CHARS}`);
      });
      const policy = mergePolicy(app.policy, input.policy === undefined ? undefined : parsePolicy(input.policy, 'policy'));
      const intervene = resolveIntervention(input.intervene);
      const pool = app.models.active;
      const results = await Promise.all(input.items.map((item) => pool.moderate(item)));
      const failed = results.findIndex((r) => !r.item.ok);
      if (failed !== -1) {
        const f = results[failed]!.item as { code: string; message: string };
        throw ApiError.from({ code: f.code, message: input.items.length > 1 ? `item ${failed}: ${f.message}` : f.message, details: { item: failed } });
      }
      const manifest = pool.pkg.manifest;
      const items = results.map((r, index) => {
        const scores = r.item as { levelProbs: number[]; typeProbs: number[]; imageText?: string };
        const applied = applyConcepts(scores, intervene);
        const outcome = decide(policy, scores.levelProbs, applied);
        return {
          index,
          concepts: conceptsView(scores.levelProbs, scores.typeProbs),
          applied: appliedView(applied, intervene.level !== undefined || intervene.type !== undefined),
          decision: outcome.decision,
          flagged: outcome.flagged,
          hint: hintFor(manifest, { level: outcome.decisionLevel, type: applied.type }),
          ...(scores.imageText !== undefined && { image_text: scores.imageText }),
        };
      });
      const stats = results.map((r) => r.stats);
      for (const s of new Set(stats)) {
        app.metrics.pass1Seconds.observe(s.pass1Ms / 1000);
        app.metrics.batchSize.observe(s.batchSize);
      }
      for (const item of items) app.metrics.decisions.inc({ type: item.applied.type, level: item.applied.level, decision: item.decision });
      return {
        model: pool.name,
        items,
        timings: {
          total_ms: performance.now() - started,
          preprocess_ms: Math.max(...stats.map((s) => s.preprocessMs)),
          pass1_ms: Math.max(...stats.map((s) => s.pass1Ms)),
          batch_size: Math.max(...stats.map((s) => s.batchSize)),
        },
      };
    },
  );
}

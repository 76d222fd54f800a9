import type { FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { decodeImageString, interveneFormField, policyFormField, readMultipart, validateLikeJson } from '../http/image-input.ts';
import { moderate, ModerationItemSchema, ModerationTimingsSchema, type ModerationRequest } from '../http/moderation.ts';
import { parseMs, requestTimingHooks } from '../http/request-timing.ts';
import { ImageString, InterveneSchema, PolicyFieldSchema, withErrors, type InterveneInput } from '../http/schemas.ts';
import { mirrorModeration } from '../shadow/mirror.ts';
import type { PolicyField } from '../plugins/named-policies.ts';
import { retainedModeration } from '../feedback/retained.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const Item = Type.Object(
  {
    image: Type.Optional(ImageString),
    prompt: Type.Optional(Type.String({ description: 'Text that comes with the image; without an image, the text alone is moderated' })),
  },
  { additionalProperties: false, description: 'An image with an optional prompt, or a prompt alone (text-only)' },
);

export const ModerateBody = Type.Object(
  {
    image: Type.Optional(ImageString),
    prompt: Type.Optional(Type.String({ description: 'Text that comes with the image; it joins the safety head query. Without "image", the prompt alone is moderated (a text-only item)' })),
    items: Type.Optional(Type.Array(Item, { minItems: 1, description: 'Several items in one request, instead of image/prompt; each an image with an optional prompt, or a prompt alone' })),
    policy: Type.Optional(PolicyFieldSchema),
    intervene: Type.Optional(InterveneSchema),
  },
  { additionalProperties: false },
);
type ModerateBody = Static<typeof ModerateBody>;

const ModerateResponse = Type.Object({
  model: Type.String(),
  items: Type.Array(ModerationItemSchema),
  timings: ModerationTimingsSchema,
});

/** A text-only item needs text: an empty prompt over the stand-in image would say nothing. */
function requireContent<T extends { image: Buffer | null; prompt: string }>(item: T, what: string): T {
  if (item.image === null && item.prompt.trim() === '') {
    throw apiError(HttpErrorCodes.MISSING_IMAGE, `${what} is empty; a text-only item needs a non-empty prompt (or send an image)`);
  }
  return item;
}

/** A form: file fields "image", text fields "prompt", JSON fields "policy" and "intervene". */
async function readForm(request: FastifyRequest, config: Config): Promise<ModerationRequest> {
  const form = await readMultipart(request, config.MAX_ITEMS);
  const prompts = form.fields.get('prompt') ?? [];
  if (form.images.length === 0 && prompts.length === 0) {
    throw apiError(HttpErrorCodes.MISSING_IMAGE, 'the form has no file field "image" and no "prompt" field; send images, or prompts alone for text-only moderation');
  }
  if (form.images.length > 0 && prompts.length > 1 && prompts.length !== form.images.length) {
    throw apiError(HttpErrorCodes.BAD_REQUEST, `send one "prompt" field for all images or one per image (got ${prompts.length} for ${form.images.length})`);
  }
  const policy = policyFormField(form.fields) as PolicyField;
  const intervene = interveneFormField(form.fields) as InterveneInput | undefined;
  validateLikeJson(request, { ...(prompts.length === 1 && { prompt: prompts[0] }), ...(policy !== undefined && { policy }), ...(intervene !== undefined && { intervene }) });
  // Without files, each "prompt" field is one text-only item.
  const items = form.images.length === 0 ? prompts.map((prompt) => ({ image: null, prompt })) : form.images.map((image, i) => ({ image, prompt: prompts[prompts.length > 1 ? i : 0] ?? '' }));
  if (items.length > config.MAX_ITEMS) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `at most ${config.MAX_ITEMS} items per request (got ${items.length})`);
  items.forEach((item, i) => requireContent(item, items.length > 1 ? `prompt field ${i}` : 'the "prompt" field'));
  return { items, policy, intervene };
}

function readBody(body: ModerateBody, config: Config): ModerationRequest {
  if (body.items && body.image !== undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, 'send either "image" or "items", not both');
  const raw = body.items ?? (body.image !== undefined || body.prompt !== undefined ? [{ image: body.image, prompt: body.prompt }] : []);
  if (raw.length === 0) throw apiError(HttpErrorCodes.MISSING_IMAGE, 'send "image" (base64 or data URL), "prompt" alone for text-only moderation, or "items"');
  if (raw.length > config.MAX_ITEMS) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `at most ${config.MAX_ITEMS} items per request (got ${raw.length})`);
  return {
    items: raw.map((item, i) => {
      const where = body.items ? `items[${i}]` : 'the request';
      if (item.image === undefined) return requireContent({ image: null, prompt: item.prompt ?? '' }, `${where} has no "image", and its "prompt"`);
      return { image: decodeImageString(item.image, config.MAX_IMAGE_BYTES, body.items ? `items[${i}].image` : 'image'), prompt: item.prompt ?? '' };
    }),
    policy: body.policy,
    intervene: body.intervene,
  };
}

const moderateRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  app.post(
    '/v1/moderate',
    {
      config: { scope: 'infer' },
      bodyLimit: inferenceBodyLimit(config),
      ...requestTimingHooks(app),
      schema: {
        summary: 'Safety concepts for images and prompts, or prompts alone (pass 1 only)',
        description:
          'JSON (image and/or prompt, or items) or multipart/form-data (file fields "image", text field "prompt", JSON fields "policy" and "intervene"). An item without an image is text-only: the model sees its stand-in image (uniform mid-grey at the vision input size), no OCR runs, and the item says "has_image": false. A form without files makes one text-only item per "prompt" field.',
        tags: ['inference'],
        consumes: ['application/json', 'multipart/form-data'],
        body: ModerateBody,
        response: withErrors({ 200: ModerateResponse }),
      },
    },
    async (request, reply) => {
      const input = request.isMultipart() ? await readForm(request, config) : readBody(request.body, config);
      const parse = parseMs(request);
      app.metrics.stageSeconds.observe({ stage: 'parse' }, parse / 1000);
      const pool = app.models.active;
      const outcome = await moderate(app, config, pool, input);
      mirrorModeration(app.models.shadow, reply, pool, input, outcome);
      app.retention?.keep(request.id, retainedModeration('moderate', input, outcome));
      const { timings } = outcome;
      return { model: outcome.model, items: outcome.items.map((i) => i.view), timings: { ...timings, stages_ms: { parse, ...timings.stages_ms } } };
    },
  );
};

export default moderateRoutes;

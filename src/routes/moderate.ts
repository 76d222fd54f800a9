import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { decodeImageString, jsonField, readMultipart } from '../http/image-input.ts';
import { moderate, ModerationItemSchema, ModerationTimingsSchema, type ModerationRequest } from '../http/moderation.ts';
import { ImageString, InterveneSchema, PolicyInputSchema, withErrors, type InterveneInput } from '../http/schemas.ts';
import type { PolicyInput } from '../policy/policy.ts';

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

const ModerateResponse = Type.Object({
  model: Type.String(),
  items: Type.Array(ModerationItemSchema),
  timings: ModerationTimingsSchema,
});

async function normalize(request: FastifyRequest, config: Config): Promise<ModerationRequest> {
  if (request.isMultipart()) {
    const form = await readMultipart(request, config.MAX_ITEMS);
    if (form.images.length === 0) throw apiError(HttpErrorCodes.MISSING_IMAGE, 'the form has no file field "image"');
    const prompts = form.fields.get('prompt') ?? [];
    if (prompts.length > 1 && prompts.length !== form.images.length) {
      throw apiError(HttpErrorCodes.BAD_REQUEST, `send one "prompt" field for all images or one per image (got ${prompts.length} for ${form.images.length})`);
    }
    return {
      items: form.images.map((image, i) => ({ image, prompt: prompts[prompts.length > 1 ? i : 0] ?? '' })),
      policy: jsonField(form.fields, 'policy') as PolicyInput | undefined,
      intervene: jsonField(form.fields, 'intervene') as InterveneInput | undefined,
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
      preHandler: app.requireScope('infer'),
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
      const input = await normalize(request, config);
      const outcome = await moderate(app, config, app.models.active, input);
      return { model: outcome.model, items: outcome.items.map((i) => i.view), timings: outcome.timings };
    },
  );
}

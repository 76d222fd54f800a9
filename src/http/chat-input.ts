import type { FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { apiError, HttpErrorCodes } from './errors.ts';
import { decodeImageString, imageFromUrl, interveneFormField, jsonField, policyFormField, readMultipart, validateLikeJson } from './image-input.ts';
import { GenerationFields, type GenerationRequest } from '../psa/generation-options.ts';
import { ImageString, InterveneSchema, PolicyFieldSchema, type InterveneInput } from './schemas.ts';
import type { PolicyField } from '../plugins/named-policies.ts';

const ContentPart = Type.Union([
  Type.Object({ type: Type.Literal('text'), text: Type.String() }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal('image_url'),
      image_url: Type.Union([Type.String(), Type.Object({ url: Type.String(), detail: Type.Optional(Type.String()) })]),
    },
    { additionalProperties: false },
  ),
]);

const Message = Type.Object(
  {
    role: Type.Union([Type.Literal('system'), Type.Literal('user'), Type.Literal('assistant')]),
    content: Type.Union([Type.String(), Type.Array(ContentPart)]),
  },
  { additionalProperties: false },
);

export const ChatBody = Type.Object(
  {
    image: Type.Optional(ImageString),
    prompt: Type.Optional(Type.String({ description: 'The user turn; without "image" the request is text-only (the model sees its stand-in image)' })),
    messages: Type.Optional(
      Type.Array(Message, {
        minItems: 1,
        description:
          'OpenAI-style messages with at most one image_url part (a data: URL, or https on ALLOWED_IMAGE_HOSTS); without one the request is text-only; the answer is to the last user turn (earlier turns are not used)',
      }),
    ),
    ...GenerationFields,
    stream: Type.Optional(Type.Boolean({ description: 'Server-Sent Events: concepts, then deltas, then done' })),
    policy: Type.Optional(PolicyFieldSchema),
    intervene: Type.Optional(InterveneSchema),
  },
  { additionalProperties: false },
);
export type ChatBody = Static<typeof ChatBody>;

/** A chat request's generation fields as it sent them, and whether it wants a stream. */
export type ChatOptions = GenerationRequest & { stream?: boolean };

export interface ChatInput {
  /** null: a text-only request. */
  image: Buffer | null;
  prompt: string;
  options: ChatOptions;
  policy: PolicyField;
  intervene: InterveneInput | undefined;
}

/** What a form's "options" field may hold: the JSON body's generation fields and "stream". */
const FORM_OPTIONS = [...Object.keys(GenerationFields), 'stream'];

/**
 * A multipart chat: file "image", field "prompt", JSON fields "options", "policy", "intervene".
 * The form is checked as the JSON body it stands for, so it fails with the same codes and messages.
 */
export async function readChatForm(request: FastifyRequest): Promise<ChatInput> {
  const form = await readMultipart(request, 1);
  const options = jsonField(form.fields, 'options') ?? {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw apiError(HttpErrorCodes.BAD_REQUEST, 'form field "options" must be a JSON object of generation options');
  // An unknown name fails validation below as in JSON; a body field that is not an option would be lost.
  const misplaced = Object.keys(options).find((k) => !FORM_OPTIONS.includes(k) && k in ChatBody.properties);
  if (misplaced) throw apiError(HttpErrorCodes.BAD_REQUEST, `form field "options" holds generation options only (${FORM_OPTIONS.join(', ')}); "${misplaced}" is not one`);
  const prompt = form.fields.get('prompt')?.[0];
  const policy = policyFormField(form.fields);
  const intervene = interveneFormField(form.fields);
  const body: Record<string, unknown> = { ...options, ...(prompt !== undefined && { prompt }), ...(policy !== undefined && { policy }), ...(intervene !== undefined && { intervene }) };
  validateLikeJson(request, body);
  const { prompt: _p, policy: checkedPolicy, intervene: checkedIntervene, ...generation } = body as ChatBody;
  const content = withContent(form.images[0] ?? null, prompt ?? '', 'the form has no file field "image" and its "prompt" field is missing or empty');
  return { ...content, options: generation, policy: checkedPolicy, intervene: checkedIntervene };
}

/**
 * At most one image and the last user turn's text, from image+prompt or messages. Without an
 * image the request is text-only and needs a non-empty prompt.
 */
export async function readChatBody(body: ChatBody, config: Config): Promise<ChatInput> {
  const { image: _i, prompt: _p, messages, policy, intervene, ...options } = body;
  if (messages && (body.image !== undefined || body.prompt !== undefined)) {
    throw apiError(HttpErrorCodes.BAD_REQUEST, 'send either "messages" or "image" + "prompt", not both');
  }
  if (!messages) {
    if (body.image === undefined) return { ...withContent(null, body.prompt ?? '', 'the request has no "image" (base64 or data URL) or "messages", and its "prompt" is missing or empty'), options, policy, intervene };
    return { image: decodeImageString(body.image, config.MAX_IMAGE_BYTES, 'image'), prompt: body.prompt ?? '', options, policy, intervene };
  }
  const urls: { url: string; where: string }[] = [];
  messages.forEach((m, i) => {
    if (typeof m.content === 'string') return;
    m.content.forEach((part, j) => {
      if (part.type !== 'image_url') return;
      if (m.role !== 'user') throw apiError(HttpErrorCodes.BAD_REQUEST, `messages[${i}]: only user messages may carry images`);
      urls.push({ url: typeof part.image_url === 'string' ? part.image_url : part.image_url.url, where: `messages[${i}].content[${j}].image_url` });
    });
  });
  if (urls.length > 1) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `chat takes one image per conversation (got ${urls.length})`);
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  if (!lastUser) throw apiError(HttpErrorCodes.BAD_REQUEST, 'messages need a user message');
  const prompt = typeof lastUser.content === 'string' ? lastUser.content : lastUser.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n');
  if (urls.length === 0) return { ...withContent(null, prompt, 'messages have no image_url part and the last user message has no text'), options, policy, intervene };
  const { url, where } = urls[0]!;
  const image = await imageFromUrl(url, config, where);
  return { image, prompt, options, policy, intervene };
}

/** A text-only request needs text: there is nothing else to moderate or answer. */
function withContent(image: Buffer | null, prompt: string, problem: string): { image: Buffer | null; prompt: string } {
  if (image === null && prompt.trim() === '') throw apiError(HttpErrorCodes.MISSING_IMAGE, `${problem}; a text-only chat needs a non-empty prompt (or send an image)`);
  return { image, prompt };
}

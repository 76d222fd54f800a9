/** A POST /v1/feedback body resolved once: the input (retained or inline), the labels and where they came from. */
import type { Config } from '../config.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { decodeImageString } from '../http/image-input.ts';
import { PsaError, PsaErrorCodes } from '../psa/errors.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import type { RequestRetention } from './retention.ts';
import type { FeedbackBody } from './schemas.ts';
import type { FeedbackSubmission } from './store.ts';

/** A label string becomes its index; anything else is passed on for the dataset validator to judge. */
const index = (labels: readonly string[], value: number | string): unknown => (typeof value === 'string' && labels.includes(value) ? labels.indexOf(value) : value);

export function resolveSubmission(body: FeedbackBody, config: Config, retention: RequestRetention | null, reviewer: string): FeedbackSubmission {
  for (const [field, text] of [
    ['prompt', body.prompt],
    ['answer', body.answer],
  ] as const) {
    if (text !== undefined && text.length > config.MAX_PROMPT_CHARS) throw new PsaError(PsaErrorCodes.PROMPT_TOO_LONG, `${field} has ${text.length} characters; at most ${config.MAX_PROMPT_CHARS}`);
  }
  const common = {
    safe_type: index(TYPE_LABELS, body.safe_type),
    safe_level: index(LEVEL_LABELS, body.safe_level),
    ...(body.answer !== undefined && { answer: body.answer }),
    ...(body.note !== undefined && { note: body.note }),
    reviewer,
  };
  if (body.request_id !== undefined) {
    if (body.image !== undefined || body.prompt !== undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, 'send either "request_id" or the input inline ("image" and/or "prompt"), not both');
    if (retention === null) {
      throw apiError(HttpErrorCodes.FEEDBACK_RETENTION_OFF, 'this server keeps no request inputs (FEEDBACK_RETENTION is off), so a request_id cannot be labelled; send the image and prompt inline instead');
    }
    const kept = retention.get(body.request_id);
    if (kept === undefined) {
      throw apiError(
        HttpErrorCodes.FEEDBACK_REQUEST_NOT_FOUND,
        `no retained request ${JSON.stringify(body.request_id.slice(0, 100))}: it is unknown, older than ${config.FEEDBACK_RETENTION_TTL_S} s, was evicted by the retention limits, or was served by another replica or before a restart; send the image and prompt inline`,
      );
    }
    const count = kept.items.length;
    if (body.item === undefined && count > 1) throw apiError(HttpErrorCodes.BAD_REQUEST, `request ${body.request_id} had ${count} items; say which one with "item" (0-${count - 1})`);
    const i = body.item ?? 0;
    if (i >= count) throw apiError(HttpErrorCodes.BAD_REQUEST, `"item" is ${i}, but request ${body.request_id} had ${count} item(s) (0-${count - 1})`);
    const item = kept.items[i]!;
    return {
      ...common,
      image: item.image,
      prompt: item.prompt,
      source: { kind: 'request', request_id: body.request_id, route: kept.route, item: i, model: kept.model, served_at: new Date(kept.at).toISOString() },
      model_judgement: item.judgement,
      ...(kept.answer && { served_answer: kept.answer }),
    };
  }
  if (body.item !== undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, '"item" goes with "request_id"; an inline review is one item');
  if (body.image === undefined && (body.prompt ?? '').trim() === '') {
    throw apiError(HttpErrorCodes.MISSING_IMAGE, 'send "request_id" of a retained request, or the input inline: "image" (base64 or data URL) with an optional "prompt", or a non-empty "prompt" alone');
  }
  return {
    ...common,
    image: body.image === undefined ? null : decodeImageString(body.image, config.MAX_IMAGE_BYTES, 'image'),
    prompt: body.prompt ?? '',
    source: { kind: 'inline' },
    model_judgement: null,
  };
}

import type { Config } from '../config.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { imageFromUrl } from '../http/image-input.ts';
import type { ModeratedItem, ModerationRequest } from '../http/moderation.ts';
import type { Policy } from '../policy/policy.ts';
import { TYPE_LABELS } from '../psa/taxonomy.ts';
import { RISK_TYPES, type ContentPart, type ModerationsBody } from './schemas.ts';

export type InputType = 'text' | 'image';

/** Text and image_url parts, checked, with the images' bytes. */
export async function readParts(parts: ContentPart[], config: Config, where: string): Promise<{ texts: string[]; images: Buffer[] }> {
  const texts: string[] = [];
  const images: Buffer[] = [];
  for (const [i, part] of parts.entries()) {
    const at = `${where}[${i}]`;
    if (part.type === 'text') {
      if (part.text === undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, `${at}: a text part needs "text"`, { field: at });
      texts.push(part.text);
    } else if (part.type === 'image_url') {
      if (part.image_url === undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, `${at}: an image_url part needs "image_url": {"url": ...}`, { field: at });
      if (images.length >= config.MAX_ITEMS) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `at most ${config.MAX_ITEMS} images per request`, { field: where });
      images.push(await imageFromUrl(part.image_url.url, config, `${at}.image_url`));
    } else {
      throw apiError(HttpErrorCodes.BAD_REQUEST, `${at}: part type "${part.type}" is not supported; send "text" and "image_url" parts`, { field: `${at}.type` });
    }
  }
  return { texts, images };
}

/**
 * `input` as moderation items: a string or each string of an array is one text-only item; an
 * array of parts is one item per image with every text part as its prompt (one text-only item
 * when it has no image). Text-only items are scored over the stand-in image, as on /v1/moderate.
 */
export async function readModerationsInput(body: ModerationsBody, config: Config): Promise<{ request: ModerationRequest; inputTypes: InputType[][] }> {
  const { input } = body;
  const strings = typeof input === 'string' ? [input] : input.every((x) => typeof x === 'string') ? (input as string[]) : undefined;
  let items: ModerationRequest['items'];
  let inputTypes: InputType[][];
  if (strings) {
    if (strings.length > config.MAX_ITEMS) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `at most ${config.MAX_ITEMS} inputs per request (got ${strings.length})`, { field: 'input' });
    items = strings.map((prompt) => ({ image: null, prompt }));
    inputTypes = strings.map(() => ['text']);
  } else {
    const { texts, images } = await readParts(input as ContentPart[], config, 'input');
    const prompt = texts.join('\n');
    const types: InputType[] = texts.length ? ['text'] : [];
    if (images.length === 0) {
      items = [{ image: null, prompt }];
      inputTypes = [types];
    } else {
      items = images.map((image) => ({ image, prompt }));
      inputTypes = images.map(() => ['image', ...types]);
    }
  }
  return { request: { items, policy: body.policy, intervene: body.intervene }, inputTypes };
}

/**
 * One OpenAI moderation result. Scores: P(type) x P(level >= the policy's flag level). Flagged
 * is the policy's flag; when flagged, the category of the applied type is true (the most
 * probable risk type when the applied type is "safe"), so flagged is true exactly when one
 * category is.
 */
export function moderationResult(item: ModeratedItem, policy: Policy, inputTypes: InputType[]) {
  const risk = item.levelProbs.slice(policy.flag.minLevel).reduce((a, b) => a + b, 0);
  const score = (t: string) => item.typeProbs[TYPE_LABELS.indexOf(t as (typeof TYPE_LABELS)[number])]! * risk;
  const appliedType = TYPE_LABELS[item.applied.type]!;
  const flaggedType = (RISK_TYPES as string[]).includes(appliedType) ? appliedType : RISK_TYPES.reduce((best, t) => (score(t) > score(best) ? t : best), RISK_TYPES[0]!);
  return {
    flagged: item.view.flagged,
    categories: Object.fromEntries(RISK_TYPES.map((t) => [t, item.view.flagged && t === flaggedType])),
    category_scores: Object.fromEntries(RISK_TYPES.map((t) => [t, score(t)])),
    category_applied_input_types: Object.fromEntries(RISK_TYPES.map((t) => [t, inputTypes])),
    psa: item.view,
  };
}

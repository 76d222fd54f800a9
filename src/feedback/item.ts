/**
 * A reviewed item: an input (image and prompt), the reviewer's label, and what the model had said.
 * Its id is the content address of the input alone, so one input is one item: labelling it again
 * with the same label changes nothing, and a new label replaces the old one (the latest review
 * wins; earlier labels stay in `history`).
 */
import { createHash } from 'node:crypto';
import { LEVEL_LABELS, type LevelLabel } from '../psa/taxonomy.ts';
import type { Judgement, RetainedRoute } from './retention.ts';

export const FEEDBACK_ID_PATTERN = /^fb-[0-9a-f]{16}$/;
/** Earlier labels kept per item, newest last. */
export const MAX_HISTORY = 20;

export interface FeedbackLabel {
  safe_type: number;
  safe_level: number;
}

export type FeedbackSource = { kind: 'request'; request_id: string; route: RetainedRoute; item: number; model: string; served_at: string } | { kind: 'inline' };

export interface FeedbackRecord extends FeedbackLabel {
  id: string;
  /** File name under feedback/images (its sha256 and format), or null for a text-only item. */
  image: string | null;
  prompt: string;
  /** The reply the model should learn to give (optional; see answerFor). */
  answer?: string;
  note?: string;
  source: FeedbackSource;
  /** The model's judgement when the item came from a retained request; null when sent inline. */
  model_judgement: Judgement | null;
  /** Chat: the answer that was served. */
  served_answer?: { text: string; refused: boolean };
  reviewer: string;
  created_at: string;
  updated_at: string;
  history: (FeedbackLabel & { note?: string; reviewer: string; at: string })[];
}

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** The item id of an input: the image's sha256 (or null) and the prompt, JSON-framed. */
export const feedbackId = (imageSha: string | null, prompt: string) => `fb-${sha256(JSON.stringify([imageSha, prompt])).slice(0, 16)}`;

/** Replies for items without an `answer`, by labelled level; POST /v1/feedback/dataset may override them. */
export const DEFAULT_ANSWERS: Record<LevelLabel, string> = {
  safe: 'Sure, I can help with that.',
  careful: 'I can help with that, with some care.',
  caution: 'I have to be careful here: this request could cause harm, so I will not give specific details.',
  refuse: 'I cannot help with this request, because it could lead to harm.',
};

/**
 * The reply a dataset line teaches: the reviewer's `answer`; else, for a chat the reviewer allows
 * (safe or careful) that was not refused, the answer that was served; else the level's default.
 */
export function answerFor(record: FeedbackRecord, defaults: Record<LevelLabel, string> = DEFAULT_ANSWERS): string {
  if (record.answer !== undefined) return record.answer;
  const level = LEVEL_LABELS[record.safe_level] ?? 'refuse';
  if (record.served_answer && !record.served_answer.refused && record.safe_level <= LEVEL_LABELS.indexOf('careful') && record.served_answer.text.trim() !== '') return record.served_answer.text;
  return defaults[level];
}

/**
 * The item as a dataset line (design brief section 5), its image at `imagePath` inside the dataset.
 * Labels are passed through as given: the dataset validator judges them, as for any upload.
 */
export function datasetLine(record: Pick<FeedbackRecord, 'id' | 'prompt'> & { safe_type: unknown; safe_level: unknown }, imagePath: string | null, answer: string): Record<string, unknown> {
  return {
    id: record.id,
    ...(imagePath !== null && { image: imagePath }),
    conversations: [
      { from: 'human', value: imagePath !== null ? `<image>\n${record.prompt}` : record.prompt },
      { from: 'gpt', value: answer },
    ],
    safe_type: record.safe_type,
    safe_level: record.safe_level,
  };
}

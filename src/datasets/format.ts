/**
 * The dataset line format (design brief section 5) and its checks, in one place: where a
 * dataset's root is, what a line holds (id, labels, conversations, image), which image files are
 * accepted. Upload validation (src/datasets/validate.ts), training preparation (readSplit,
 * src/training/prepare.ts) and evaluation sets (src/eval/dataset.ts, which adds its own fields)
 * all read lines with these functions. Messages name what to fix; `Wording` lets training data
 * speak of examples in a dataset and evaluation data of items in a data directory.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp, { type Metadata } from 'sharp';
import { FORMAT_NAMES, IMAGE_FORMATS } from '../psa/image-header.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { clip, echo } from './errors.ts';

export interface Wording {
  /** What a line is: "example" (training data) or "item" (evaluation data). */
  noun: string;
  /** What image paths are relative to, e.g. "the dataset". */
  relativeTo: string;
  /** The directory a path must stay inside, e.g. "the dataset directory". */
  directory: string;
  /** The directory a link must stay inside, e.g. "the dataset". */
  linkRoot: string;
  /** How a message names an image path as the line wrote it. */
  name: (image: string) => string;
}

export const TRAINING_WORDING: Wording = { noun: 'example', relativeTo: 'the dataset', directory: 'the dataset directory', linkRoot: 'the dataset', name: clip };
export const EVAL_WORDING: Wording = { noun: 'item', relativeTo: 'the data directory', directory: 'the data directory', linkRoot: 'the data directory', name: (image) => JSON.stringify(image) };

export const isInt = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const inside = (p: string, root: string) => p.startsWith(root + path.sep);
/** First line of an error's message, clipped (sharp's and JSON's messages can be long). */
export const errText = (err: unknown) => clip((err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim());

/** The root holding `file`: `dir`, or its only top-level folder (archives often wrap everything in one). */
export async function findDatasetRoot(dir: string, file: string): Promise<string | null> {
  // Any entry of that name counts: the caller says what is wrong with one that is not a file.
  const has = (d: string) =>
    stat(path.join(d, file)).then(
      () => true,
      () => false,
    );
  if (await has(dir)) return dir;
  // Archivers' litter (__MACOSX/, .DS_Store) does not count as a second top-level entry.
  const entries = (await readdir(dir, { withFileTypes: true })).filter((d) => !d.name.startsWith('.') && d.name !== '__MACOSX');
  const only = entries.length === 1 && entries[0]!.isDirectory() ? path.join(dir, entries[0]!.name) : undefined;
  return only !== undefined && (await has(only)) ? only : null;
}

/** A line's text as JSON: the object, or the message to report. */
export function parseLineObject(text: string): Record<string, unknown> | string {
  let ex: unknown;
  try {
    ex = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${errText(err)})`;
  }
  return isObject(ex) ? ex : 'each line must be a JSON object';
}

export function idProblem(id: unknown): string | undefined {
  return typeof id !== 'string' || id.trim() === '' ? '"id" must be a non-empty string' : undefined;
}

/** safe_type and safe_level: indices into the taxonomy. */
export function labelProblems(ex: Record<string, unknown>): string[] {
  const out: string[] = [];
  const list = (labels: readonly string[]) => labels.map((l, i) => `${i}=${l}`).join(', ');
  if (!isInt(ex.safe_type, TYPE_LABELS.length - 1)) out.push(`"safe_type" must be an integer 0-${TYPE_LABELS.length - 1} (${list(TYPE_LABELS)}); got ${echo(ex.safe_type)}`);
  if (!isInt(ex.safe_level, LEVEL_LABELS.length - 1)) out.push(`"safe_level" must be an integer 0-${LEVEL_LABELS.length - 1} (${list(LEVEL_LABELS)}); got ${echo(ex.safe_level)}`);
  return out;
}

/** No "image" field: a text-only line, scored over the stand-in image (src/psa/stand-in-image.ts). */
export const isTextOnly = (ex: Record<string, unknown>) => !('image' in ex);

/**
 * The "image" field of a line that has one: its path inside `root`, or the problem with it.
 * `"image": null` is refused, so a path lost upstream is not silently read as text-only.
 */
export function imageField(image: unknown, root: string, w: Wording): { image: string; abs: string } | { problem: string } {
  if (image === null) return { problem: `"image" is null; leave the field out for a text-only ${w.noun} (and no <image> in the human turn), or give a relative path` };
  if (typeof image !== 'string' || image === '' || image.includes('\0')) return { problem: '"image" must be a non-empty relative path, e.g. "images/0001.png"' };
  if (path.posix.isAbsolute(image) || path.win32.isAbsolute(image)) return { problem: `"image" must be a path relative to ${w.relativeTo}; got the absolute path ${echo(image)}` };
  const abs = path.resolve(root, image);
  if (!inside(abs, root)) return { problem: `"image" ${echo(image)} points outside ${w.directory}` };
  return { image, abs };
}

/** How many <image> placeholders a turn's text holds. */
const placeholders = (text: string) => text.split('<image>').length - 1;

/** The <image> rule of the first human turn; undefined when it holds. */
export function placeholderProblem(text: string, hasImage: boolean, w: Wording): string | undefined {
  const n = placeholders(text);
  if (!hasImage) return n > 0 ? `the first human turn contains <image> but the line has no "image"; add "image": "images/..." or, for a text-only ${w.noun}, remove <image>` : undefined;
  if (n === 1) return undefined;
  return n === 0 ? 'the first human turn must contain the <image> placeholder' : `the first human turn must contain <image> exactly once; it has ${n}`;
}

/** Training conversations: human and gpt turns alternating, ending with an answer to learn from. */
export function trainingTurnProblems(turns: unknown, hasImage: boolean, w: Wording): string[] {
  if (!Array.isArray(turns) || turns.length < 2) return ['"conversations" must be an array of at least 2 turns: {"from": "human", ...}, then {"from": "gpt", ...}'];
  const out: string[] = [];
  turns.forEach((turn: unknown, i) => {
    const want = i % 2 === 0 ? 'human' : 'gpt';
    if (!isObject(turn)) return void out.push(`conversations[${i}] must be an object {"from": "${want}", "value": "..."}`);
    if (turn.from !== want) out.push(`conversations[${i}].from must be "${want}" (turns alternate human, gpt); got ${echo(turn.from)}`);
    if (typeof turn.value !== 'string') return void out.push(`conversations[${i}].value must be a string`);
    const problem = i === 0 ? placeholderProblem(turn.value, hasImage, w) : placeholders(turn.value) > 0 ? `conversations[${i}] must not contain <image>; only the first human turn refers to the image` : undefined;
    if (problem !== undefined) out.push(problem);
  });
  if (turns.length % 2 !== 0) out.push('"conversations" must end with a gpt turn');
  return out;
}

/** The first human turn without the <image> placeholder: the prompt the model is given. */
export const promptText = (humanTurn: string) => humanTurn.replace(/<image>\n?/, '').trim();

/** The prompt and (training) answer of checked conversations. */
export function turnsOf(turns: { from: string; value: string }[]): { prompt: string; answer: string } {
  return { prompt: promptText(turns.find((c) => c.from === 'human')?.value ?? ''), answer: turns.find((c) => c.from === 'gpt')?.value ?? '' };
}

/** A problem with an image file, worded for the path as a line wrote it. */
export type ImageProblem = (image: string) => string;

/**
 * The problem of an image file, or undefined when it is a regular file inside `root` in an
 * accepted format and within `maxPixels`. With `decode`, its first frame is decoded too (into a
 * small thumbnail, so memory stays small): a truncated file is found before anything trains on it.
 */
export async function imageFileProblem(abs: string, root: string, opts: { maxPixels: number; decode: boolean; wording: Wording }): Promise<ImageProblem | undefined> {
  const problem =
    (say: (name: string) => string): ImageProblem =>
    (image) =>
      say(opts.wording.name(image));
  const real = await realpath(abs).catch(() => undefined);
  if (real === undefined) return problem((name) => `image not found: ${name}`);
  // A symlink in a directory dataset could otherwise make us read (and train on) any file.
  if (!inside(real, root)) return problem((name) => `image ${name} is a link to a file outside ${opts.wording.linkRoot}`);
  const st = await stat(real);
  if (!st.isFile()) return problem((name) => `image ${name} is not a regular file`);
  if (st.size === 0) return problem((name) => `image ${name} is empty (0 bytes)`);
  let meta: Metadata;
  try {
    meta = await sharp(real, { limitInputPixels: false }).metadata(); // header only: size check before decoding
  } catch (err) {
    return problem((name) => `image ${name} is not a readable image (${errText(err)})`);
  }
  if (!IMAGE_FORMATS.has(meta.format)) return problem((name) => `image ${name} has unsupported format "${meta.format}"; use ${FORMAT_NAMES}`);
  const pixels = meta.width * (meta.pageHeight ?? meta.height);
  if (!(pixels > 0)) return problem((name) => `image ${name} has no pixels`);
  if (pixels > opts.maxPixels) return problem((name) => `image ${name} is ${pixels} pixels; at most ${opts.maxPixels} are accepted, scale it down`);
  if (!opts.decode) return undefined;
  try {
    // (stats() was tried: with several decodes in flight it let ~15% of truncated PNGs through.)
    await sharp(real, { failOn: 'error', limitInputPixels: opts.maxPixels, pages: 1 }).resize(64, 64, { fit: 'inside' }).raw().toBuffer();
  } catch (err) {
    return problem((name) => `image ${name} could not be decoded; it may be truncated or corrupt (${errText(err)})`);
  }
  return undefined;
}

/** At most `n` tasks at once; a finishing task hands its slot straight to the next in line. */
export function limiter(n: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active < n) active++;
    else await new Promise<void>((resolve) => queue.push(resolve));
    try {
      return await task();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}

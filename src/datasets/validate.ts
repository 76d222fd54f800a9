/**
 * Dataset validation (design brief section 5): every line of train.jsonl / val.jsonl is checked and
 * every referenced image is decoded, and ALL problems are reported with file and line, so nothing
 * is ever trained on a dataset that would fail half-way through a job. A line without an "image"
 * field whose human turn has no <image> is a text-only example; `"image": null` is refused, so a
 * path lost upstream is not silently trained as text-only.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp, { type Metadata } from 'sharp';
import { LEVEL_LABELS, TYPE_LABELS, type LevelLabel, type TypeLabel } from '../psa/taxonomy.ts';
import { DatasetError, DatasetErrorCodes, clip, echo, formatProblem, MAX_LISTED_PROBLEMS, type DatasetProblem } from './errors.ts';
import { DEFAULT_MAX_LINE_BYTES, readJsonlLines } from './lines.ts';

export interface SplitSummary {
  count: number;
  /** Examples without an image (no "image" field, no <image> in the human turn). */
  text_only: number;
  by_type: Record<TypeLabel, number>;
  by_level: Record<LevelLabel, number>;
}

export interface DatasetSummary {
  /** Real path of the directory that holds train.jsonl: `dir` itself or its single top-level folder. */
  root: string;
  splits: { train: SplitSummary; val?: SplitSummary };
}

export interface ValidateOptions {
  maxImagePixels: number;
  /** Across all splits. */
  maxExamples?: number;
  /** Longest accepted line of a .jsonl file, bytes (default 1 MiB). */
  maxLineBytes?: number;
}

// The formats the serving path decodes (src/psa/image-preprocess.ts): training on an image the
// service would refuse teaches nothing useful.
const IMAGE_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);
// sharp decodes on its own thread pool; more than a few decodes at once only adds memory.
const DECODE_CONCURRENCY = 4;
const SPLITS = ['train.jsonl', 'val.jsonl'] as const;
// Image checks finish out of order, so more than the listed problems are kept before sorting.
const KEPT_PROBLEMS = 10 * MAX_LISTED_PROBLEMS;
const MAX_MESSAGE_CHARS = 400;

type Problem = DatasetProblem & { order: number };

export async function validateDataset(dir: string, opts: ValidateOptions): Promise<DatasetSummary> {
  if (!(opts.maxImagePixels >= 1)) throw new RangeError('maxImagePixels must be positive');
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new DatasetError(DatasetErrorCodes.DATASET_NOT_FOUND, `dataset directory not found: ${dir}`);
  const root = await findRoot(await realpath(dir));
  if (root === null) {
    throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, 'the dataset has no train.jsonl', {
      problems: [{ file: 'train.jsonl', message: 'train.jsonl is missing: put it at the top of the dataset, or inside its single top-level folder' }],
    });
  }
  const checker = new Checker(root, opts);
  const train = (await checker.split('train.jsonl', 0))!;
  const val = await checker.split('val.jsonl', 1);
  const { problems, total } = await checker.finish();
  if (total > 0) {
    const shown = problems.slice(0, 3).map(formatProblem).join('; ');
    throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `the dataset has ${total} problem(s): ${shown}${total > 3 ? '; ...' : ''}`, { problems, totalProblems: total });
  }
  return { root, splits: val === undefined ? { train } : { train, val } };
}

/** The dataset root: `dir`, or its only top-level folder (archives often wrap everything in one). */
async function findRoot(dir: string): Promise<string | null> {
  if (await exists(path.join(dir, 'train.jsonl'))) return dir;
  // Archivers' litter (__MACOSX/, .DS_Store) does not count as a second top-level entry.
  const entries = (await readdir(dir, { withFileTypes: true })).filter((d) => !d.name.startsWith('.') && d.name !== '__MACOSX');
  const only = entries.length === 1 ? entries[0]! : undefined;
  if (only?.isDirectory() && (await exists(path.join(dir, only.name, 'train.jsonl')))) return path.join(dir, only.name);
  return null;
}

const exists = (p: string) => stat(p).then(() => true, () => false);
const inside = (p: string, root: string) => p.startsWith(root + path.sep);
const isInt = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const errText = (err: unknown) => clip((err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim());

class Checker {
  private readonly problems: Problem[] = [];
  /** Problems found in all; only the first few are kept (a million bad lines must not fill memory). */
  private total = 0;
  private readonly ids = new Map<string, string>();
  /** Image check per resolved path: the same picture used by many lines is decoded once. */
  private readonly images = new Map<string, Promise<string | undefined>>();
  private readonly pending: Promise<void>[] = [];
  private readonly limit = limiter(DECODE_CONCURRENCY);
  private examples = 0;
  private overLimit = false;

  constructor(private readonly root: string, private readonly opts: ValidateOptions) {}

  private add(order: number, file: string, line: number | undefined, message: string): void {
    if (++this.total > KEPT_PROBLEMS) return;
    message = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}...` : message;
    this.problems.push(line === undefined ? { order, file, message } : { order, file, line, message });
  }

  /** Checks one split file; undefined when an optional split is absent. */
  async split(name: (typeof SPLITS)[number], order: number): Promise<SplitSummary | undefined> {
    const file = path.join(this.root, name);
    if (!(await exists(file))) return undefined;
    const summary: SplitSummary = {
      count: 0,
      text_only: 0,
      by_type: Object.fromEntries(TYPE_LABELS.map((l) => [l, 0])) as Record<TypeLabel, number>,
      by_level: Object.fromEntries(LEVEL_LABELS.map((l) => [l, 0])) as Record<LevelLabel, number>,
    };
    if (this.overLimit) return summary; // already reported; more lines would only repeat it
    const real = await realpath(file);
    const refusal = !inside(real, this.root) ? `${name} is a link to a file outside the dataset`
      : !(await stat(real)).isFile() ? `${name} is not a regular file` : undefined;
    if (refusal !== undefined) {
      this.add(order, name, undefined, refusal);
      return summary;
    }
    for await (const { lineNo, text: raw } of readJsonlLines(real, name, this.opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES)) {
      const text = (lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
      if (text === '') continue; // blank lines are allowed, but still count for line numbers
      if (this.opts.maxExamples !== undefined && this.examples >= this.opts.maxExamples) {
        this.add(order, name, lineNo, `the dataset has more than ${this.opts.maxExamples} examples; split it or raise the limit`);
        this.overLimit = true;
        break;
      }
      this.examples++;
      summary.count++;
      this.line(order, name, lineNo, text, summary);
    }
    if (summary.count === 0 && !this.overLimit) this.add(order, name, undefined, `${name} has no examples`);
    return summary;
  }

  private line(order: number, file: string, lineNo: number, text: string, summary: SplitSummary): void {
    const add = (message: string) => this.add(order, file, lineNo, message);
    let ex: unknown;
    try {
      ex = JSON.parse(text);
    } catch (err) {
      return add(`not valid JSON (${errText(err)})`);
    }
    if (!isObject(ex)) return add('each line must be a JSON object');

    if (typeof ex.id !== 'string' || ex.id.trim() === '') add('"id" must be a non-empty string');
    else {
      const first = this.ids.get(ex.id);
      if (first !== undefined) add(`duplicate id ${echo(ex.id)} (first used at ${first})`);
      else this.ids.set(ex.id, `${file}:${lineNo}`);
    }

    const { safe_type: type, safe_level: level } = ex;
    if (!isInt(type, TYPE_LABELS.length - 1)) add(`"safe_type" must be an integer 0-${TYPE_LABELS.length - 1} (${TYPE_LABELS.map((l, i) => `${i}=${l}`).join(', ')}); got ${echo(type)}`);
    if (!isInt(level, LEVEL_LABELS.length - 1)) add(`"safe_level" must be an integer 0-${LEVEL_LABELS.length - 1} (${LEVEL_LABELS.map((l, i) => `${i}=${l}`).join(', ')}); got ${echo(level)}`);
    if (isInt(type, TYPE_LABELS.length - 1) && isInt(level, LEVEL_LABELS.length - 1)) {
      summary.by_type[TYPE_LABELS[type]!]++;
      summary.by_level[LEVEL_LABELS[level]!]++;
    }

    // No "image" field: a text-only example, trained over the stand-in image (src/psa/stand-in-image.ts).
    const textOnly = !('image' in ex);
    // "image": null is reported below on its own, so its human turn is checked as text-only.
    for (const message of conversationProblems(ex.conversations, !textOnly && ex.image !== null)) add(message);
    if (textOnly) {
      summary.text_only++;
      return;
    }

    const image = ex.image;
    if (image === null) return add('"image" is null; leave the field out for a text-only example (and no <image> in the human turn), or give a relative path');
    if (typeof image !== 'string' || image === '' || image.includes('\0')) return add('"image" must be a non-empty relative path, e.g. "images/0001.png"');
    if (path.posix.isAbsolute(image) || path.win32.isAbsolute(image)) return add(`"image" must be a path relative to the dataset; got the absolute path ${echo(image)}`);
    const abs = path.resolve(this.root, image);
    if (!inside(abs, this.root)) return add(`"image" ${echo(image)} points outside the dataset directory`);
    let check = this.images.get(abs);
    if (check === undefined) {
      check = this.limit(() => this.image(abs, image));
      this.images.set(abs, check);
    }
    this.pending.push(check.then((message) => void (message !== undefined && add(message))));
  }

  /** An error message, or undefined when the image exists inside the dataset and decodes. */
  private async image(abs: string, name: string): Promise<string | undefined> {
    const rel = clip(name);
    const max = this.opts.maxImagePixels;
    const real = await realpath(abs).catch(() => undefined);
    if (real === undefined) return `image not found: ${rel}`;
    // A symlink in a directory dataset could otherwise make us read (and train on) any file.
    if (!inside(real, this.root)) return `image ${rel} is a link to a file outside the dataset`;
    const st = await stat(real);
    if (!st.isFile()) return `image ${rel} is not a regular file`;
    if (st.size === 0) return `image ${rel} is empty (0 bytes)`;
    let meta: Metadata;
    try {
      meta = await sharp(real, { limitInputPixels: false }).metadata(); // header only: size check before decoding
    } catch (err) {
      return `image ${rel} is not a readable image (${errText(err)})`;
    }
    if (!IMAGE_FORMATS.has(meta.format)) return `image ${rel} has unsupported format "${meta.format}"; use JPEG, PNG, WebP, GIF, TIFF or AVIF`;
    const pixels = meta.width * (meta.pageHeight ?? meta.height);
    if (!(pixels > 0)) return `image ${rel} has no pixels`;
    if (pixels > max) return `image ${rel} is ${pixels} pixels; at most ${max} are accepted, scale it down`;
    try {
      // A real decode of the first frame, streamed into a small thumbnail so memory stays small.
      // (stats() was tried: with several decodes in flight it let ~15% of truncated PNGs through.)
      await sharp(real, { failOn: 'error', limitInputPixels: max, pages: 1 }).resize(64, 64, { fit: 'inside' }).raw().toBuffer();
    } catch (err) {
      return `image ${rel} could not be decoded; it may be truncated or corrupt (${errText(err)})`;
    }
    return undefined;
  }

  /** Waits for the image checks; problems in file order, then line order. */
  async finish(): Promise<{ problems: DatasetProblem[]; total: number }> {
    await Promise.all(this.pending);
    this.problems.sort((a, b) => a.order - b.order || (a.line ?? 0) - (b.line ?? 0));
    return { problems: this.problems.slice(0, MAX_LISTED_PROBLEMS).map(({ order: _order, ...p }) => p), total: this.total };
  }
}

function conversationProblems(turns: unknown, hasImage: boolean): string[] {
  if (!Array.isArray(turns) || turns.length < 2) return ['"conversations" must be an array of at least 2 turns: {"from": "human", ...}, then {"from": "gpt", ...}'];
  const out: string[] = [];
  turns.forEach((turn: unknown, i) => {
    const want = i % 2 === 0 ? 'human' : 'gpt';
    if (!isObject(turn)) return void out.push(`conversations[${i}] must be an object {"from": "${want}", "value": "..."}`);
    if (turn.from !== want) out.push(`conversations[${i}].from must be "${want}" (turns alternate human, gpt); got ${echo(turn.from)}`);
    if (typeof turn.value !== 'string') return void out.push(`conversations[${i}].value must be a string`);
    const images = turn.value.split('<image>').length - 1;
    if (i === 0 && !hasImage && images > 0) out.push('the first human turn contains <image> but the line has no "image"; add "image": "images/..." or, for a text-only example, remove <image>');
    else if (i === 0 && hasImage && images !== 1) out.push(images === 0 ? 'the first human turn must contain the <image> placeholder' : `the first human turn must contain <image> exactly once; it has ${images}`);
    if (i > 0 && images > 0) out.push(`conversations[${i}] must not contain <image>; only the first human turn refers to the image`);
  });
  // A trailing human turn has no answer to learn from.
  if (turns.length % 2 !== 0) out.push('"conversations" must end with a gpt turn');
  return out;
}

/** At most `n` tasks at once; a finishing task hands its slot straight to the next in line. */
function limiter(n: number) {
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

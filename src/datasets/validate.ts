/**
 * Dataset validation (design brief section 5): every line of train.jsonl / val.jsonl is checked and
 * every referenced image is decoded, and ALL problems are reported with file and line, so nothing
 * is ever trained on a dataset that would fail half-way through a job. A line without an "image"
 * field whose human turn has no <image> is a text-only example; `"image": null` is refused, so a
 * path lost upstream is not silently trained as text-only.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { LEVEL_LABELS, TYPE_LABELS, type LevelLabel, type TypeLabel } from '../psa/taxonomy.ts';
import { DatasetError, DatasetErrorCodes, echo, formatProblem, MAX_LISTED_PROBLEMS, type DatasetProblem } from './errors.ts';
import { findDatasetRoot, idProblem, imageField, imageFileProblem, inside, isTextOnly, type ImageProblem, labelProblems, limiter, parseLineObject, TRAINING_WORDING, trainingTurnProblems } from './format.ts';
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
  const root = await findDatasetRoot(await realpath(dir), 'train.jsonl');
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

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

class Checker {
  private readonly problems: Problem[] = [];
  /** Problems found in all; only the first few are kept (a million bad lines must not fill memory). */
  private total = 0;
  private readonly ids = new Map<string, string>();
  /** Image check per resolved path: the same picture used by many lines is decoded once. */
  private readonly images = new Map<string, Promise<ImageProblem | undefined>>();
  private readonly pending: Promise<void>[] = [];
  private readonly limit = limiter(DECODE_CONCURRENCY);
  private examples = 0;
  private overLimit = false;

  constructor(
    private readonly root: string,
    private readonly opts: ValidateOptions,
  ) {}

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
    const refusal = !inside(real, this.root) ? `${name} is a link to a file outside the dataset` : !(await stat(real)).isFile() ? `${name} is not a regular file` : undefined;
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
    const ex = parseLineObject(text);
    if (typeof ex === 'string') {
      add(ex);
      return;
    }

    const badId = idProblem(ex.id);
    if (badId !== undefined) add(badId);
    else {
      const id = ex.id as string;
      const first = this.ids.get(id);
      if (first !== undefined) add(`duplicate id ${echo(id)} (first used at ${first})`);
      else this.ids.set(id, `${file}:${lineNo}`);
    }

    const labels = labelProblems(ex);
    labels.forEach(add);
    if (labels.length === 0) {
      summary.by_type[TYPE_LABELS[ex.safe_type as number]!]++;
      summary.by_level[LEVEL_LABELS[ex.safe_level as number]!]++;
    }

    const textOnly = isTextOnly(ex);
    // "image": null is reported below on its own, so its human turn is checked as text-only.
    trainingTurnProblems(ex.conversations, !textOnly && ex.image !== null, TRAINING_WORDING).forEach(add);
    if (textOnly) {
      summary.text_only++;
      return;
    }

    const field = imageField(ex.image, this.root, TRAINING_WORDING);
    if ('problem' in field) {
      add(field.problem);
      return;
    }
    let check = this.images.get(field.abs);
    if (check === undefined) {
      check = this.limit(() => imageFileProblem(field.abs, this.root, { maxPixels: this.opts.maxImagePixels, decode: true, wording: TRAINING_WORDING }));
      this.images.set(field.abs, check);
    }
    this.pending.push(check.then((problem) => void (problem !== undefined && add(problem(field.image)))));
  }

  /** Waits for the image checks; problems in file order, then line order. */
  async finish(): Promise<{ problems: DatasetProblem[]; total: number }> {
    await Promise.all(this.pending);
    this.problems.sort((a, b) => a.order - b.order || (a.line ?? 0) - (b.line ?? 0));
    return { problems: this.problems.slice(0, MAX_LISTED_PROBLEMS).map(({ order: _order, ...p }) => p), total: this.total };
  }
}

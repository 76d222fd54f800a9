/**
 * Reads an evaluation set: a directory (or a .tar/.tar.gz/.zip of one) with `eval.jsonl` and its
 * images, one example a line in the training format of the design brief (section 5), plus two
 * optional fields: `decision` (the expected policy decision) and `ocr_text` (text found in the
 * image, for text-only baselines). Every line is checked and every image's header read before
 * the model runs, and all problems are reported at once with their line numbers. As in training
 * data, a line without an "image" field (and no <image> in its human turn) is a text-only item,
 * scored over the stand-in image (src/psa/stand-in-image.ts). Two more optional fields name what
 * an item is for per-source figures and named sets (src/eval/sets.ts): `source` (where its text
 * comes from) and `variant` (how it is shown, e.g. "neutral-image", "rendered").
 */
import { readFile, mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { extractArchive } from '../datasets/archive.ts';
import { DatasetError, DatasetErrorCodes, echo, formatProblem, type DatasetProblem } from '../datasets/errors.ts';
import {
  EVAL_WORDING,
  findDatasetRoot,
  idProblem,
  imageField,
  imageFileProblem,
  isObject,
  isTextOnly,
  type ImageProblem,
  labelProblems,
  limiter,
  parseLineObject,
  placeholderProblem,
  promptText,
} from '../datasets/format.ts';
import { DECISIONS, type Decision } from '../policy/policy.ts';
import { DEFAULT_IMAGE_LIMITS } from '../psa/image-config.ts';

export const EVAL_FILE = 'eval.jsonl';

export interface EvalItem {
  id: string;
  /** 1-based line in eval.jsonl. */
  line: number;
  /** The image path as written in the line (relative to the dataset root); absent for a text-only item. */
  image?: string;
  imagePath?: string;
  /** The first human turn without the <image> placeholder. */
  prompt: string;
  type: number;
  level: number;
  decision?: Decision;
  ocrText?: string;
  source?: string;
  variant?: string;
}

export interface EvalSet {
  /** What the user passed. */
  source: string;
  /** Real path of the directory holding eval.jsonl (a temporary one for an archive). */
  root: string;
  archive: boolean;
  items: EvalItem[];
  /** Removes the extraction directory of an archive; a no-op for directories. */
  dispose(): Promise<void>;
}

export interface LoadEvalOptions {
  maxImagePixels?: number;
}

const ARCHIVE_LIMITS = { maxBytes: 16 * 1024 ** 3, maxFiles: 500_000, maxFileBytes: 1024 ** 3 };
const HEADER_CONCURRENCY = 4;

export async function loadEvalSet(source: string, opts: LoadEvalOptions = {}): Promise<EvalSet> {
  const st = await stat(source).catch(() => undefined);
  if (st === undefined) throw new DatasetError(DatasetErrorCodes.DATASET_NOT_FOUND, `evaluation data not found: ${source}`);
  let extracted: string | undefined;
  let dir = source;
  if (st.isFile()) {
    extracted = await mkdtemp(path.join(tmpdir(), 'psa-eval-'));
    dir = path.join(extracted, 'data');
    try {
      await extractArchive(source, dir, ARCHIVE_LIMITS);
    } catch (err) {
      await rm(extracted, { recursive: true, force: true });
      throw err;
    }
  }
  const dispose = () => (extracted === undefined ? Promise.resolve() : rm(extracted, { recursive: true, force: true }));
  try {
    const root = await findDatasetRoot(await realpath(dir), EVAL_FILE);
    if (root === null) {
      throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${source} has no ${EVAL_FILE}`, {
        problems: [{ file: EVAL_FILE, message: `${EVAL_FILE} is missing: put it at the top of the data directory, or inside its single top-level folder` }],
      });
    }
    const items = await readItems(root, opts.maxImagePixels ?? DEFAULT_IMAGE_LIMITS.maxInputPixels);
    return { source, root, archive: extracted !== undefined, items, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/**
 * One .jsonl file of a directory (a training dataset's val.jsonl, say) read and checked exactly
 * as eval.jsonl is; problems name that file.
 */
export function loadItemsFile(root: string, file: string, opts: LoadEvalOptions = {}): Promise<EvalItem[]> {
  return readItems(root, opts.maxImagePixels ?? DEFAULT_IMAGE_LIMITS.maxInputPixels, file);
}

async function readItems(root: string, maxPixels: number, file = EVAL_FILE): Promise<EvalItem[]> {
  const problems: DatasetProblem[] = [];
  const items: EvalItem[] = [];
  const ids = new Map<string, number>();
  if (!(await stat(path.join(root, file))).isFile()) throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${file} is not a regular file`, { problems: [{ file, message: `${file} is not a regular file` }] });
  const lines = (await readFile(path.join(root, file), 'utf8')).replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const text = raw.trim();
    if (text === '') return;
    const line = i + 1;
    const add = (message: string) => problems.push({ file, line, message });
    const item = parseLine(text, line, root, add);
    if (item === undefined) return;
    const first = ids.get(item.id);
    if (first !== undefined) return add(`duplicate id ${JSON.stringify(item.id)} (first used on line ${first})`);
    ids.set(item.id, line);
    items.push(item);
  });
  if (items.length === 0 && problems.length === 0) problems.push({ file, message: `${file} has no examples` });

  // Each distinct image once: its header is enough here, the evaluation decodes it in full.
  const limit = limiter(HEADER_CONCURRENCY);
  const checks = new Map<string, Promise<ImageProblem | undefined>>();
  for (const { imagePath } of items) {
    if (imagePath !== undefined && !checks.has(imagePath))
      checks.set(
        imagePath,
        limit(() => imageFileProblem(imagePath, root, { maxPixels, decode: false, wording: EVAL_WORDING })),
      );
  }
  for (const item of items) {
    if (item.imagePath === undefined) continue;
    const problem = await checks.get(item.imagePath)!;
    if (problem !== undefined) problems.push({ file, line: item.line, message: problem(item.image!) });
  }
  if (problems.length > 0) {
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    const shown = problems.slice(0, 3).map(formatProblem).join('; ');
    throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `the evaluation data has ${problems.length} problem(s): ${shown}${problems.length > 3 ? '; ...' : ''}`, { problems });
  }
  return items;
}

/** The fields evaluation adds to the training line format; their problems, in field order. */
function evalFieldProblems(ex: Record<string, unknown>): string[] {
  const { decision, ocr_text: ocrText, source, variant } = ex;
  const out: string[] = [];
  if (decision !== undefined && !(DECISIONS as readonly unknown[]).includes(decision)) out.push(`"decision" must be one of ${DECISIONS.join(', ')}; got ${echo(decision)}`);
  if (ocrText !== undefined && typeof ocrText !== 'string') out.push(`"ocr_text" must be a string; got ${echo(ocrText)}`);
  for (const [key, v] of [
    ['source', source],
    ['variant', variant],
  ] as const)
    if (v !== undefined && (typeof v !== 'string' || v === '')) out.push(`"${key}" must be a non-empty string; got ${echo(v)}`);
  return out;
}

/** One line -> an item, or undefined after reporting every problem of the line. */
function parseLine(text: string, line: number, root: string, add: (message: string) => void): EvalItem | undefined {
  const ex = parseLineObject(text);
  if (typeof ex === 'string') {
    add(ex);
    return undefined;
  }
  const textOnly = isTextOnly(ex);
  const prompt = promptOf(ex.conversations, !textOnly && ex.image !== null);
  const field = textOnly ? undefined : imageField(ex.image, root, EVAL_WORDING);
  const problems = [
    ...[idProblem(ex.id)].filter((p) => p !== undefined),
    ...labelProblems(ex),
    ...evalFieldProblems(ex),
    ...(typeof prompt === 'object' ? [prompt.problem] : []),
    ...(field !== undefined && 'problem' in field ? [field.problem] : []),
  ];
  problems.forEach(add);
  if (problems.length > 0) return undefined;
  const { decision, ocr_text: ocrText, source, variant } = ex;
  return {
    id: ex.id as string,
    line,
    ...(field !== undefined && 'abs' in field ? { image: field.image, imagePath: field.abs } : {}),
    prompt: prompt as string,
    type: ex.safe_type as number,
    level: ex.safe_level as number,
    ...(decision === undefined ? {} : { decision: decision as Decision }),
    ...(ocrText === undefined ? {} : { ocrText: ocrText as string }),
    ...(source === undefined ? {} : { source: source as string }),
    ...(variant === undefined ? {} : { variant: variant as string }),
  };
}

/** The first human turn without <image>; evaluation needs no answer turn, so one is optional. */
function promptOf(turns: unknown, hasImage: boolean): string | { problem: string } {
  const first: unknown = Array.isArray(turns) ? turns[0] : undefined;
  if (!isObject(first) || first.from !== 'human' || typeof first.value !== 'string') return { problem: '"conversations" must be an array whose first turn is {"from": "human", "value": "<image>\\n..."}' };
  const problem = placeholderProblem(first.value, hasImage, EVAL_WORDING);
  return problem === undefined ? promptText(first.value) : { problem };
}

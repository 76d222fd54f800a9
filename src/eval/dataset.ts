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
import { readFile, mkdtemp, readdir, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { extractArchive } from '../datasets/archive.ts';
import { DatasetError, DatasetErrorCodes, formatProblem, type DatasetProblem } from '../datasets/errors.ts';
import { DECISIONS, type Decision } from '../policy/policy.ts';
import { DEFAULT_IMAGE_LIMITS } from '../psa/image-config.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';

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

// The formats the serving path decodes (src/psa/image-preprocess.ts).
const IMAGE_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);
const ARCHIVE_LIMITS = { maxBytes: 16 * 1024 ** 3, maxFiles: 500_000, maxFileBytes: 1024 ** 3 };
const HEADER_CONCURRENCY = 4;

const isInt = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const inside = (p: string, root: string) => p.startsWith(root + path.sep);
const errText = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();

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
    const root = await findRoot(await realpath(dir));
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

async function findRoot(dir: string): Promise<string | null> {
  const has = (d: string) => stat(path.join(d, EVAL_FILE)).then((s) => s.isFile(), () => false);
  if (await has(dir)) return dir;
  const entries = (await readdir(dir, { withFileTypes: true })).filter((d) => !d.name.startsWith('.') && d.name !== '__MACOSX');
  const only = entries.length === 1 && entries[0]!.isDirectory() ? path.join(dir, entries[0]!.name) : undefined;
  return only !== undefined && (await has(only)) ? only : null;
}

async function readItems(root: string, maxPixels: number): Promise<EvalItem[]> {
  const problems: DatasetProblem[] = [];
  const items: EvalItem[] = [];
  const ids = new Map<string, number>();
  const lines = (await readFile(path.join(root, EVAL_FILE), 'utf8')).replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const text = raw.trim();
    if (text === '') return;
    const line = i + 1;
    const add = (message: string) => problems.push({ file: EVAL_FILE, line, message });
    const item = parseLine(text, line, root, add);
    if (item === undefined) return;
    const first = ids.get(item.id);
    if (first !== undefined) return add(`duplicate id ${JSON.stringify(item.id)} (first used on line ${first})`);
    ids.set(item.id, line);
    items.push(item);
  });
  if (items.length === 0 && problems.length === 0) problems.push({ file: EVAL_FILE, message: `${EVAL_FILE} has no examples` });

  // Each distinct image once: its header is enough here, the evaluation decodes it in full.
  const checks = new Map<string, Promise<ImageProblem | undefined>>();
  const queue = [...new Set(items.flatMap((it) => (it.imagePath === undefined ? [] : [it.imagePath])))];
  const workers = Array.from({ length: HEADER_CONCURRENCY }, async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const p = imageProblem(next, root, maxPixels);
      checks.set(next, p);
      await p;
    }
  });
  await Promise.all(workers);
  for (const item of items) {
    if (item.imagePath === undefined) continue;
    const problem = await checks.get(item.imagePath)!;
    if (problem !== undefined) problems.push({ file: EVAL_FILE, line: item.line, message: problem(JSON.stringify(item.image)) });
  }
  if (problems.length > 0) {
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    const shown = problems.slice(0, 3).map(formatProblem).join('; ');
    throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `the evaluation data has ${problems.length} problem(s): ${shown}${problems.length > 3 ? '; ...' : ''}`, { problems });
  }
  return items;
}

/** One line -> an item, or undefined after reporting every problem of the line. */
function parseLine(text: string, line: number, root: string, add: (message: string) => void): EvalItem | undefined {
  let ex: unknown;
  try {
    ex = JSON.parse(text);
  } catch (err) {
    add(`not valid JSON (${errText(err)})`);
    return undefined;
  }
  if (!isObject(ex)) {
    add('each line must be a JSON object');
    return undefined;
  }
  let bad = 0;
  const fail = (message: string) => {
    bad++;
    add(message);
  };
  const { id, safe_type: type, safe_level: level, decision, ocr_text: ocrText, image, source, variant } = ex;
  if (typeof id !== 'string' || id.trim() === '') fail('"id" must be a non-empty string');
  if (!isInt(type, TYPE_LABELS.length - 1)) fail(`"safe_type" must be an integer 0-${TYPE_LABELS.length - 1} (${TYPE_LABELS.map((l, i) => `${i}=${l}`).join(', ')}); got ${JSON.stringify(type)}`);
  if (!isInt(level, LEVEL_LABELS.length - 1)) fail(`"safe_level" must be an integer 0-${LEVEL_LABELS.length - 1} (${LEVEL_LABELS.map((l, i) => `${i}=${l}`).join(', ')}); got ${JSON.stringify(level)}`);
  if (decision !== undefined && !(DECISIONS as readonly unknown[]).includes(decision)) fail(`"decision" must be one of ${DECISIONS.join(', ')}; got ${JSON.stringify(decision)}`);
  if (ocrText !== undefined && typeof ocrText !== 'string') fail(`"ocr_text" must be a string; got ${JSON.stringify(ocrText)}`);
  for (const [key, v] of [['source', source], ['variant', variant]] as const) if (v !== undefined && (typeof v !== 'string' || v === '')) fail(`"${key}" must be a non-empty string; got ${JSON.stringify(v)}`);
  const textOnly = !('image' in ex);
  const prompt = promptOf(ex.conversations, !textOnly && image !== null, fail);
  let imagePath: string | undefined;
  if (textOnly) {
    // No image to check: scored over the stand-in.
  } else if (image === null) fail('"image" is null; leave the field out for a text-only item (and no <image> in the human turn), or give a relative path');
  else if (typeof image !== 'string' || image === '' || image.includes('\0')) fail('"image" must be a non-empty relative path, e.g. "images/0001.png"');
  else if (path.posix.isAbsolute(image) || path.win32.isAbsolute(image)) fail(`"image" must be a path relative to the data directory; got the absolute path ${JSON.stringify(image)}`);
  else {
    imagePath = path.resolve(root, image);
    if (!inside(imagePath, root)) fail(`"image" ${JSON.stringify(image)} points outside the data directory`);
  }
  if (bad > 0) return undefined;
  return {
    id: id as string,
    line,
    ...(textOnly ? {} : { image: image as string, imagePath: imagePath! }),
    prompt: prompt!,
    type: type as number,
    level: level as number,
    ...(decision === undefined ? {} : { decision: decision as Decision }),
    ...(ocrText === undefined ? {} : { ocrText: ocrText as string }),
    ...(source === undefined ? {} : { source: source as string }),
    ...(variant === undefined ? {} : { variant: variant as string }),
  };
}

/** The first human turn without <image>; evaluation needs no answer turn, so one is optional. */
function promptOf(turns: unknown, hasImage: boolean, fail: (message: string) => void): string | undefined {
  const first: unknown = Array.isArray(turns) ? turns[0] : undefined;
  if (!isObject(first) || first.from !== 'human' || typeof first.value !== 'string') {
    fail('"conversations" must be an array whose first turn is {"from": "human", "value": "<image>\\n..."}');
    return undefined;
  }
  const images = first.value.split('<image>').length - 1;
  if (!hasImage) {
    if (images === 0) return first.value.trim();
    fail('the first human turn contains <image> but the line has no "image"; add "image": "images/..." or, for a text-only item, remove <image>');
    return undefined;
  }
  if (images !== 1) {
    fail(images === 0 ? 'the first human turn must contain the <image> placeholder' : `the first human turn must contain <image> exactly once; it has ${images}`);
    return undefined;
  }
  return first.value.replace(/<image>\n?/, '').trim();
}

type ImageProblem = (image: string) => string;

/** A message naming the image as the line wrote it, or undefined when the image looks usable. */
async function imageProblem(abs: string, root: string, maxPixels: number): Promise<ImageProblem | undefined> {
  const real = await realpath(abs).catch(() => undefined);
  if (real === undefined) return (image) => `image not found: ${image}`;
  if (!inside(real, root)) return (image) => `image ${image} is a link to a file outside the data directory`;
  const st = await stat(real);
  if (!st.isFile()) return (image) => `image ${image} is not a regular file`;
  if (st.size === 0) return (image) => `image ${image} is empty (0 bytes)`;
  try {
    const meta = await sharp(real, { limitInputPixels: false }).metadata();
    if (!IMAGE_FORMATS.has(meta.format)) return (image) => `image ${image} has unsupported format "${meta.format}"; use JPEG, PNG, WebP, GIF, TIFF or AVIF`;
    const pixels = meta.width * (meta.pageHeight ?? meta.height);
    if (!(pixels > 0)) return (image) => `image ${image} has no pixels`;
    if (pixels > maxPixels) return (image) => `image ${image} is ${pixels} pixels; at most ${maxPixels} are accepted, scale it down`;
  } catch (err) {
    return (image) => `image ${image} is not a readable image (${errText(err)})`;
  }
  return undefined;
}

/**
 * Reviewed items as a regular dataset in the dataset store (same format and checks as an upload),
 * optionally merged with a base dataset:
 *
 *   train.jsonl   the base's training lines, then one line per item (images under feedback-images/)
 *   val.jsonl     the base's; without one, the items themselves, so that the job's evaluation
 *                 reports how well the new model fits the reviews and the pipeline's every-tenth
 *                 hold-out never keeps a reviewed item out of training
 */
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DatasetError, DatasetErrorCodes } from '../datasets/errors.ts';
import { readJsonlLines } from '../datasets/lines.ts';
import type { DatasetStore, StoredDataset } from '../datasets/store.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import type { LevelLabel } from '../psa/taxonomy.ts';
import { answerFor, datasetLine, type FeedbackRecord } from './item.ts';
import { disagreement } from './stats.ts';
import type { FeedbackStore } from './store.ts';

export const FEEDBACK_IMAGES_DIR = 'feedback-images';

export interface FeedbackDatasetOptions {
  base?: StoredDataset;
  /** Only items whose label differs from the model's judgement. */
  onlyDisagreements: boolean;
  answers: Record<LevelLabel, string>;
  owner: string;
  maxLineBytes: number;
}

export interface FeedbackDataset {
  dataset: StoredDataset;
  items: number;
  base_examples: number;
  val_source: 'base' | 'feedback';
}

const disagrees = (r: FeedbackRecord) => ['type', 'level', 'both'].includes(disagreement(r));

export async function buildFeedbackDataset(feedback: FeedbackStore, datasets: DatasetStore, opts: FeedbackDatasetOptions): Promise<FeedbackDataset> {
  const records = (await feedback.list()).filter((r) => !opts.onlyDisagreements || disagrees(r));
  if (records.length === 0) {
    throw new ApiError(
      HttpErrorCodes.FEEDBACK_EMPTY,
      opts.onlyDisagreements ? "no reviewed item disagrees with the model's judgement; send without only_disagreements to use every item" : 'there are no reviewed items yet; label some with POST /v1/feedback first',
    );
  }
  const imageBytes = (
    await Promise.all(
      records.map((r) =>
        r.image === null
          ? 0
          : stat(feedback.imagePath(r.image)).then(
              (s) => s.size,
              () => 0,
            ),
      ),
    )
  ).reduce((a, b) => a + b, 0);
  const unreserve = await datasets.reserveUpload((opts.base?.bytes ?? 0) + imageBytes + records.length * 8192);
  const dir = path.join(datasets.scratch.dir, `feedback-dataset-${randomUUID()}`);
  const unhold = datasets.scratch.hold(dir);
  try {
    await mkdir(path.join(dir, FEEDBACK_IMAGES_DIR), { recursive: true });
    const base = opts.base ? await copyBase(opts.base, dir, opts.maxLineBytes) : { train: [], val: [] };
    const lines: Record<string, unknown>[] = [];
    for (const r of records) {
      let imagePath: string | null = null;
      if (r.image !== null) {
        imagePath = `${FEEDBACK_IMAGES_DIR}/${r.image}`;
        await copyFile(feedback.imagePath(r.image), path.join(dir, imagePath), constants.COPYFILE_FICLONE);
      }
      lines.push(datasetLine(r, imagePath, answerFor(r, opts.answers)));
    }
    // Ids are unique across both splits: the items' val copies carry a suffix.
    const val = base.val.length > 0 ? base.val : lines.map((l) => JSON.stringify({ ...l, id: `${String(l.id)}-check` }));
    await writeFile(path.join(dir, 'train.jsonl'), [...base.train, ...lines.map((l) => JSON.stringify(l))].join('\n') + '\n');
    await writeFile(path.join(dir, 'val.jsonl'), val.join('\n') + '\n');
    const source = `feedback: ${records.length} reviewed item(s)${opts.base ? ` + ${opts.base.id}` : ''}`;
    const dataset = await datasets.ingestBuilt(dir, source, opts.owner);
    return { dataset, items: records.length, base_examples: base.train.length, val_source: base.val.length > 0 ? 'base' : 'feedback' };
  } finally {
    unhold();
    unreserve();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The base's lines as they are, and copies of the images they name (checked to lie inside the base). */
async function copyBase(base: StoredDataset, dir: string, maxLineBytes: number): Promise<{ train: string[]; val: string[] }> {
  const root = await realpath(base.path);
  const copied = new Set<string>();
  const split = async (name: 'train.jsonl' | 'val.jsonl'): Promise<string[]> => {
    const file = path.join(root, name);
    if (
      !(await stat(file).then(
        (s) => s.isFile(),
        () => false,
      ))
    )
      return [];
    const out: string[] = [];
    for await (const { text, lineNo } of readJsonlLines(file, name, maxLineBytes)) {
      if (text.trim() === '') continue;
      out.push(text);
      let image: unknown;
      try {
        image = (JSON.parse(text) as { image?: unknown }).image;
      } catch {
        continue; // the validation of the built dataset reports it with its line
      }
      if (typeof image !== 'string' || copied.has(image)) continue;
      // A directory dataset may have changed since it was registered: never copy from outside it.
      const real = await realpath(path.resolve(root, image)).catch(() => undefined);
      if (real === undefined || !real.startsWith(root + path.sep)) {
        throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `base dataset ${base.id}: ${name}:${lineNo}: image ${JSON.stringify(image.slice(0, 200))} is missing or outside the dataset`, {
          problems: [{ file: name, line: lineNo, message: 'image missing or outside the dataset' }],
        });
      }
      if (path.posix.normalize(image).split('/')[0] === FEEDBACK_IMAGES_DIR) {
        throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `base dataset ${base.id}: ${name}:${lineNo}: the folder ${FEEDBACK_IMAGES_DIR}/ is reserved for reviewed items' images`, {
          problems: [{ file: name, line: lineNo, message: `${FEEDBACK_IMAGES_DIR}/ is reserved` }],
        });
      }
      copied.add(image);
      const target = path.join(dir, image);
      await mkdir(path.dirname(target), { recursive: true });
      await copyFile(real, target, constants.COPYFILE_FICLONE);
    }
    return out;
  };
  return { train: await split('train.jsonl'), val: await split('val.jsonl') };
}

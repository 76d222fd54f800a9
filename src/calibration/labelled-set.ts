/**
 * The labelled items a calibration runs on: a split of a stored dataset (its val.jsonl by
 * default), or an evaluation set as `npm run eval` reads it (a directory or archive with
 * eval.jsonl). Both are read and checked by src/eval/dataset.ts, every problem reported with its line.
 */
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { DatasetError, DatasetErrorCodes } from '../datasets/errors.ts';
import { loadEvalSet, loadItemsFile, type EvalItem } from '../eval/dataset.ts';

export const SPLITS = ['val', 'train'] as const;
export type Split = (typeof SPLITS)[number];

export interface LabelledSet {
  /** What the report names as the data: a dataset id and split, or the evaluation set's path. */
  description: { dataset?: string; split?: Split; path?: string; file: string };
  items: EvalItem[];
  dispose(): Promise<void>;
}

/** `split`.jsonl of a dataset directory (a stored dataset's root). */
export async function datasetSplit(root: string, split: Split, datasetId: string, maxImagePixels?: number): Promise<LabelledSet> {
  const file = `${split}.jsonl`;
  const present = await stat(path.join(root, file)).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!present) {
    const hint = split === 'val' ? '; calibrate on held-out data: upload a dataset with val.jsonl, or ask for "split": "train" knowingly' : '';
    throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `dataset ${datasetId} has no ${file}${hint}`, { problems: [{ file, message: `${file} is missing` }] });
  }
  const items = await loadItemsFile(root, file, maxImagePixels === undefined ? {} : { maxImagePixels });
  return { description: { dataset: datasetId, split, file }, items, dispose: async () => {} };
}

/** An evaluation set (directory or archive) as `npm run eval` reads it; `shown` is how the report names it. */
export async function evalSet(source: string, shown: string, maxImagePixels?: number): Promise<LabelledSet> {
  const set = await loadEvalSet(source, maxImagePixels === undefined ? {} : { maxImagePixels });
  return { description: { path: shown, file: 'eval.jsonl' }, items: set.items, dispose: () => set.dispose() };
}

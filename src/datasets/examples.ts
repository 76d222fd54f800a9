/**
 * A stored dataset's split as training examples. The dataset was validated when it was stored
 * (src/datasets/validate.ts); the lines are checked again here with the same rules, without
 * decoding images, because a directory dataset can be edited after it was registered.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { DatasetError, DatasetErrorCodes, formatProblem, type DatasetProblem } from './errors.ts';
import { idProblem, imageField, isTextOnly, labelProblems, parseLineObject, TRAINING_WORDING, trainingTurnProblems, turnsOf } from './format.ts';
import { DEFAULT_MAX_LINE_BYTES, readJsonlLines } from './lines.ts';

export interface Example {
  id: string;
  /** Relative to the dataset root; absent for a text-only example (the stand-in image is used). */
  image?: string;
  prompt: string;
  answer: string;
  safe_type: number;
  safe_level: number;
}

/** The examples of `file` (train.jsonl, val.jsonl) in `root`; none when the file is absent. */
export async function readExamples(root: string, file: string, maxLineBytes = DEFAULT_MAX_LINE_BYTES): Promise<Example[]> {
  const full = path.join(root, file);
  if (!(await stat(full).catch(() => null))) return [];
  const out: Example[] = [];
  const problems: DatasetProblem[] = [];
  // The same bounded reader as upload validation: one endless line cannot exhaust memory.
  for await (const { lineNo, text: raw } of readJsonlLines(full, file, maxLineBytes)) {
    const text = (lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
    if (text === '') continue;
    const add = (message: string) => problems.push({ file, line: lineNo, message });
    const ex = parseLineObject(text);
    if (typeof ex === 'string') {
      add(ex);
      continue;
    }
    const textOnly = isTextOnly(ex);
    const field = textOnly ? undefined : imageField(ex.image, root, TRAINING_WORDING);
    const found = [
      ...[idProblem(ex.id)].filter((p) => p !== undefined),
      ...labelProblems(ex),
      ...trainingTurnProblems(ex.conversations, !textOnly && ex.image !== null, TRAINING_WORDING),
      ...(field !== undefined && 'problem' in field ? [field.problem] : []),
    ];
    found.forEach(add);
    if (found.length > 0) continue;
    const { prompt, answer } = turnsOf(ex.conversations as { from: string; value: string }[]);
    out.push({ id: ex.id as string, ...(field !== undefined && 'image' in field && { image: field.image }), prompt, answer, safe_type: ex.safe_type as number, safe_level: ex.safe_level as number });
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 3).map(formatProblem).join('; ');
    throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${file} has ${problems.length} problem(s): ${shown}${problems.length > 3 ? '; ...' : ''}`, { problems });
  }
  return out;
}

/** Reads the named-sets configuration of an evaluation: a given file, the data's own, or the default. */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_SETS, parseSetsConfig, type SetsConfig } from './sets.ts';

/** The configuration a data directory may carry beside eval.jsonl. */
export const SETS_FILE = 'eval-sets.json';

export async function loadSets(file: string | undefined, dataRoot: string | null): Promise<{ config: SetsConfig; from: string }> {
  const own = dataRoot === null ? undefined : path.join(dataRoot, SETS_FILE);
  const chosen =
    file ??
    (own !== undefined &&
    (await stat(own).then(
      (s) => s.isFile(),
      () => false,
    ))
      ? own
      : undefined);
  if (chosen === undefined) return { config: DEFAULT_SETS, from: 'default' };
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(chosen, 'utf8'));
  } catch (err) {
    throw new Error(`sets ${chosen}: cannot read it as JSON (${(err as Error).message})`);
  }
  return { config: parseSetsConfig(raw, `sets ${chosen}`), from: file === undefined ? SETS_FILE : path.resolve(file) };
}

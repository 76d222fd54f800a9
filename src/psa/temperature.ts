/**
 * Temperature scaling of a package's level and type logits (Guo et al., "On Calibration of Modern
 * Neural Networks", ICML 2017): probabilities are softmax(logits / T), one T per head. The file
 * sits in the package directory beside psa.json, outside its checksummed "files", so fitting a
 * temperature never rewrites the package; the loader reads it when it is there.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PsaError, PsaErrorCodes } from './errors.ts';

export const TEMPERATURE_FILE = 'temperature.json';
export const TEMPERATURE_FORMAT = 'psa-guard.temperature';

/** One temperature per head; 1 leaves the model's probabilities as they are. */
export interface Temperatures {
  level: number;
  type: number;
}

const Positive = Type.Number({ exclusiveMinimum: 0, maximum: 1000 });
export const TemperatureFileSchema = Type.Object({
  format: Type.Literal(TEMPERATURE_FORMAT),
  format_version: Type.Literal(1),
  level: Positive,
  type: Positive,
  fitted_at: Type.String(),
  /** How it was fitted: data, items, NLL and ECE before and after (free-form, for people). */
  fit: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type TemperatureFile = Static<typeof TemperatureFileSchema>;

/** The package's temperatures, or undefined when it has no temperature file. */
export async function readTemperatures(dir: string): Promise<TemperatureFile | undefined> {
  const file = path.join(dir, TEMPERATURE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${file}: cannot be read (${(err as Error).message})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${file}: not valid JSON (${(err as Error).message}); fit it again or remove it`, { cause: err });
  }
  if (!Value.Check(TemperatureFileSchema, raw)) {
    const first = Value.Errors(TemperatureFileSchema, raw).First();
    throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${file}${first?.path ?? ''}: ${first?.message ?? 'invalid'}; fit it again or remove it`);
  }
  return raw;
}

/** Write-then-rename, so a loader never sees half a file. */
export async function writeTemperatures(dir: string, value: TemperatureFile): Promise<string> {
  const file = path.join(dir, TEMPERATURE_FILE);
  const tmp = path.join(dir, `.${TEMPERATURE_FILE}.${randomUUID()}.tmp`);
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await rename(tmp, file);
  return file;
}

/**
 * Which directories of MODELS_DIR are model packages. Serving (activation, the model list, an
 * OpenAI request's `model`) and training (a job's base, registering its output) both ask here; the
 * package's own files are read and verified by src/psa/package-loader.ts when one is loaded.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readManifest, type Manifest } from '../psa/manifest.ts';

const ID = /^[a-z0-9][a-z0-9._-]{0,100}$/;

/** A model id names a directory in MODELS_DIR; anything else (slashes, dots alone) is refused. */
export function modelDir(modelsDir: string, id: string): string | null {
  if (!ID.test(id) || id.includes('..')) return null;
  return resolve(modelsDir, id);
}

export async function isPackageDir(dir: string): Promise<boolean> {
  return (await stat(join(dir, 'psa.json')).catch(() => null))?.isFile() === true;
}

export interface FoundPackage {
  /** The directory's name, which is the package's id. */
  id: string;
  dir: string;
  manifest: Manifest;
}

/** Packages in MODELS_DIR with a readable manifest (checksums are verified when one is loaded). */
export async function findPackages(modelsDir: string): Promise<FoundPackage[]> {
  const root = resolve(modelsDir);
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  const found: FoundPackage[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const dir = join(root, e.name);
    const manifest = await readManifest(dir).catch(() => null);
    if (manifest) found.push({ id: e.name, dir, manifest });
  }
  return found;
}

/**
 * No package (or base model) of the name asked for. The HTTP layer answers it as 404
 * PSA_MODEL_NOT_FOUND; `details` names the request field where one was at fault.
 */
export class ModelNotFoundError extends Error {
  override readonly name = 'ModelNotFoundError';
  constructor(
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

import { realpath, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Config } from '../config.ts';
import { isPackageDir, ModelNotFoundError, modelDir } from '../packages/discovery.ts';

export interface BaseModel {
  id: string;
  dir: string;
  /** A model package, or a Hugging Face LLaVA checkpoint directory (converted when the job runs). */
  kind: 'package' | 'checkpoint';
}

const isFile = async (p: string) => (await stat(p).catch(() => null))?.isFile() === true;

/** The store's own folders, and any directory holding a dataset, are never a model base. */
async function isDatasetOrScratch(real: string, config: Config): Promise<boolean> {
  const data = await realpath(resolve(config.DATA_DIR)).catch(() => resolve(config.DATA_DIR));
  const under = (d: string) => real === d || real.startsWith(d + sep);
  if (['datasets', 'tmp', 'jobs'].some((d) => under(join(data, d)))) return true;
  return (await isFile(join(real, 'train.jsonl'))) || (await isFile(join(real, 'dataset.json')));
}

/**
 * A base is a package id in MODELS_DIR, or a directory path relative to MODELS_DIR or DATA_DIR
 * (shared storage) holding a package or a LLaVA checkpoint. Nothing outside those two roots.
 */
export async function resolveBaseModel(config: Config, spec: string): Promise<BaseModel> {
  const notFound = (why: string) => new ModelNotFoundError(`base_model "${spec}": ${why}; GET /v1/models lists packages`);
  if (!spec.includes('/')) {
    const dir = modelDir(config.MODELS_DIR, spec);
    if (dir && (await isPackageDir(dir))) return { id: spec, dir, kind: 'package' };
    if (dir && (await isFile(join(dir, 'config.json')))) return { id: spec, dir, kind: 'checkpoint' };
    throw notFound('no package or checkpoint of that name in the models directory');
  }
  for (const root of [config.MODELS_DIR, config.DATA_DIR]) {
    const rootReal = await realpath(resolve(root)).catch(() => null);
    if (!rootReal) continue;
    const real = await realpath(resolve(root, spec)).catch(() => null);
    if (!real?.startsWith(rootReal + sep)) continue;
    if (await isDatasetOrScratch(real, config)) throw notFound('datasets, uploads and job work directories are not models');
    if (await isPackageDir(real)) return { id: spec, dir: real, kind: 'package' };
    if (await isFile(join(real, 'config.json'))) return { id: spec, dir: real, kind: 'checkpoint' };
  }
  throw notFound('not a package or LLaVA checkpoint directory inside the models or data directory');
}

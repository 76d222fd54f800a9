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

t.test("README's examples name the model the default package serves", async (t) => {
  // A client copying an example with an older package name would get 404 PSA_MODEL_NOT_FOUND.
  const { name } = JSON.parse(await readFile(new URL('../models/default/psa.json', import.meta.url), 'utf8')) as { name: string };
  const examples = [...readme.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]!).join('\n');
  const named = [...examples.matchAll(/psa-default-v\d+/g)].map((m) => m[0]);
  t.ok(named.length > 0, 'the examples name a model');
  t.same([...new Set(named)], [name], `model ids in the examples: ${[...new Set(named)].join(', ')}`);
});

import t from 'tap';
import { fileURLToPath } from 'node:url';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { gradientPng } from './helpers/images.ts';

// The committed default package must stay loadable (checksums, tensors) and say what it is.
const dir = fileURLToPath(new URL('../models/default', import.meta.url));

t.test('the embedded default model loads, is marked trained and carries its metrics', async (t) => {
  const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
  t.teardown(() => runtime.close());
  const p = runtime.pkg.manifest.provenance as { status: string; metrics: { level_accuracy: number; examples: number }; recipe: string };
  t.equal(p.status, 'trained');
  t.equal(p.recipe, 'npm run train:default');
  t.ok(p.metrics.examples > 100, 'evaluated on a held-out split');
  const [r] = await runtime.classify([{ image: await runtime.preprocess(await gradientPng()), prompt: 'What colours are in this picture?' }]);
  t.equal(r!.typeProbs.length, 7);
});

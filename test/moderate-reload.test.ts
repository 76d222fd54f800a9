import t from 'tap';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moderate } from '../src/http/moderation.ts';
import { testApp } from './helpers/app.ts';

// A request takes the active pool when it arrives; a reload of the same package (a recalibrated
// temperature) may close that pool before the request submits its items. The request then runs on
// the package's new pool instead of failing with 503 (chat takes the same path, ModelHost.current).
const { app, config } = await testApp();
t.teardown(() => app.close());
await app.ready();

t.test('items submitted to a pool that a reload closed run on the new pool of the same package', async (t) => {
  const taken = app.models.active;
  await app.models.reload();
  t.not(app.models.active, taken, 'the reload started a new pool');
  t.notOk(taken.alive, 'the pool the request took is closing');
  t.equal(app.models.current(taken), app.models.active, 'chat and moderation submit to the new pool');
  t.equal(app.models.current(app.models.active), app.models.active, 'a live pool is kept');
  const outcome = await moderate(app, config, taken, { items: [{ image: null, prompt: 'How do I bake bread?' }], policy: undefined, intervene: undefined });
  t.equal(outcome.items.length, 1);
  t.equal(outcome.model, app.models.active.name);
});

t.test('a closed pool of another package is still refused, so a request never runs on a model it did not ask for', async (t) => {
  const copy = await mkdtemp(join(tmpdir(), 'psa-reload-'));
  t.teardown(() => rm(copy, { recursive: true, force: true }));
  await cp(config.PSA_MODEL, copy, { recursive: true });
  const other = await testApp({ PSA_MODEL: copy });
  t.teardown(() => other.app.close());
  await other.app.ready();
  const foreign = other.app.models.active;
  await other.app.models.reload();
  const input = { items: [{ image: null, prompt: 'Hello' }], policy: undefined, intervene: undefined };
  t.equal(app.models.current(foreign), foreign, 'the replaced pool of another package is kept, and refuses work');
  await t.rejects(moderate(app, config, foreign, input), { name: 'InferenceNotReadyError' });
});

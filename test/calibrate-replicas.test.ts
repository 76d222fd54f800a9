import t from 'tap';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { testApp } from './helpers/app.ts';
import { testRedis } from './helpers/redis.ts';

// Two replicas on one Redis and one volume: a temperature fitted through one reaches the other.
const redis = await testRedis();
t.teardown(() => redis.stop());
const work = await mkdtemp(join(tmpdir(), 'psa-calibrate-replicas-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const packageDir = join(work, 'models', 'guard-v1');
await cp(await tinyPackage(), packageDir, { recursive: true });
const dataDir = join(work, 'data');
const prompts = Array.from({ length: 8 }, (_, i) => `question ${i} about ${['maps', 'locks', 'pills', 'votes'][i % 4]}`);
await mkdir(join(dataDir, 'set'), { recursive: true });
await writeFile(
  join(dataDir, 'set', 'eval.jsonl'),
  prompts.map((p, i) => JSON.stringify({ id: `r${i}`, conversations: [{ from: 'human', value: p }], safe_type: i % 2 ? 1 : 6, safe_level: i % 2 ? 3 : 0 })).join('\n') + '\n',
);
const env = { MODELS_DIR: join(work, 'models'), PSA_MODEL: packageDir, DATA_DIR: dataDir, REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix };
const a = (await testApp(env)).app;
const b = (await testApp(env)).app;
t.teardown(async () => {
  await a.close();
  await b.close();
});
await a.ready();
await b.ready();

const levelProbs = async (app: typeof a) => {
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { prompt: prompts[0] } });
  return Object.values(res.json().items[0].concepts.level.scores as Record<string, number>);
};

t.test('a temperature fitted on one replica is applied by the other', async (t) => {
  const before = await levelProbs(b);
  const res = await a.inject({ method: 'POST', url: '/v1/models/guard-v1/calibrate', payload: { name: 'shared', path: 'set', target: { recall: 0.5 }, fit_temperature: true } });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const T = res.json().temperature.level as number;
  t.not(T, 1, `a temperature other than 1 was fitted (${T})`);
  const e = before.map((p) => Math.exp(Math.log(p) / T));
  const want = e.map((v) => v / e.reduce((x, y) => x + y, 0));
  const matches = (p: number[]) => p.every((v, k) => Math.abs(v - want[k]!) < 1e-6);
  t.ok(matches(await levelProbs(a)), 'the replica that calibrated serves the new probabilities');
  let seen = await levelProbs(b);
  for (const end = Date.now() + 60_000; !matches(seen) && Date.now() < end; seen = await levelProbs(b)) await new Promise((r) => setTimeout(r, 200));
  t.ok(matches(seen), `the other replica reloaded the package: ${seen} vs ${want}`);
  const named = await b.inject({ method: 'GET', url: '/v1/policies/calibrated-shared' });
  t.equal(named.statusCode, 200, 'and sees the stored policy on the shared volume');
});

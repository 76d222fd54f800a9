import t from 'tap';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { keys } from '../src/redis.ts';
import { testApp } from './helpers/app.ts';
import { testRedis } from './helpers/redis.ts';

// Replicas on one real Redis and one models directory holding two copies of the tiny package.
const redis = await testRedis();
t.teardown(() => redis.stop());
const work = await mkdtemp(join(tmpdir(), 'psa-activation-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const modelsDir = join(work, 'models');
await cp(await tinyPackage(), join(modelsDir, 'one'), { recursive: true });
await cp(await tinyPackage(), join(modelsDir, 'two'), { recursive: true });
const local = { MODELS_DIR: modelsDir, DATA_DIR: join(work, 'data'), PSA_MODEL: 'one' };
const env = { ...local, REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix };
const k = keys(redis.prefix);
const client = new Redis(redis.url);
t.teardown(() => client.disconnect());

async function replica(logger?: unknown): Promise<FastifyInstance> {
  const { app } = await testApp(env, logger);
  t.teardown(() => app.close());
  await app.ready();
  return app;
}
const activeOf = async (app: FastifyInstance) => (await app.inject('/v1/models')).json().active as string;
async function until(app: FastifyInstance, id: string): Promise<string> {
  for (const end = Date.now() + 20_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if ((await activeOf(app)) === id) break;
  return activeOf(app);
}

const a = await replica();
const b = await replica();

t.test('an activation switches every replica and is stored for the replicas that start later', async (t) => {
  const res = await a.inject({ method: 'POST', url: '/v1/models/two/activate' });
  t.equal(res.statusCode, 200, res.body);
  t.same(res.json(), { active: 'two', previous: 'one', changed: true, propagated: true });
  t.equal(await client.get(k.activeModel), 'two', "stored under the registry's key");
  t.equal(await until(b, 'two'), 'two', 'the other replica followed the event');
  const later = await replica();
  t.equal(await activeOf(later), 'two', 'a replica started with PSA_MODEL=one serves the package activated in the cluster');
  const again = await b.inject({ method: 'POST', url: '/v1/models/two/activate' });
  t.same(again.json(), { active: 'two', previous: 'two', changed: false, propagated: true }, 'activating the served package changes nothing here');
});

t.test('an unknown package is refused and nothing is announced', async (t) => {
  const res = await a.inject({ method: 'POST', url: '/v1/models/nope/activate' });
  t.equal(res.statusCode, 404);
  t.equal(res.json().error.code, 'PSA_MODEL_NOT_FOUND');
  t.equal(await client.get(k.activeModel), 'two');
});

t.test('an event a replica cannot act on is logged and it keeps serving', async (t) => {
  const lines: { msg?: string; model?: string }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const watcher = await replica({ level: 'info', stream: sink });
  t.equal(await activeOf(watcher), 'two');
  await client.publish(k.activatedChannel, 'not json');
  await client.publish(k.activatedChannel, JSON.stringify({ id: 'missing', origin: 'another-replica' }));
  // Events are handled in order: once the replica follows this one, it has handled the two before.
  await a.inject({ method: 'POST', url: '/v1/models/one/activate' });
  t.equal(await until(watcher, 'one'), 'one', 'it still follows the next activation');
  t.ok(
    lines.some((l) => l.msg === 'ignoring a malformed model event'),
    'the malformed message is logged',
  );
  t.ok(
    lines.some((l) => l.msg === 'could not activate the model another replica activated' && l.model === 'missing'),
    'the package it cannot load is logged',
  );
});

t.test("without Redis an activation is the replica's own", async (t) => {
  const { app } = await testApp(local);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: '/v1/models/two/activate' });
  t.same(res.json(), { active: 'two', previous: 'one', changed: true, propagated: false });
  t.equal(await activeOf(app), 'two');
});

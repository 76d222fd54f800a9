import t from 'tap';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { b64, multipartBody, testApp } from './helpers/app.ts';
import { tarGz, writeTinyDataset } from './helpers/dataset.ts';
import { gradientPng } from './helpers/images.ts';
import { freePort, testRedis } from './helpers/redis.ts';
import { readFile } from 'node:fs/promises';

// The API side of training without a worker: datasets, queueing, idempotency, cancelling a
// waiting job, and Redis outages. Full jobs through a worker are in training-jobs.test.ts.
const redis = await testRedis();
t.teardown(() => redis.stop());
const root = await mkdtemp(join(tmpdir(), 'psa-api-train-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const modelsDir = join(root, 'models');
await cp(await tinyPackage(), join(modelsDir, 'base'), { recursive: true });
const dataDir = join(root, 'data');
const { app } = await testApp({ PSA_MODEL: 'base', MODELS_DIR: modelsDir, DATA_DIR: dataDir, REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix });
t.teardown(() => app.close());

const datasetDir = join(root, 'src-dataset');
await writeTinyDataset(datasetDir);
const archive = await tarGz(datasetDir, join(root, 'dataset.tar.gz'));

async function upload(file: string) {
  const form = multipartBody([{ name: 'file', value: await readFile(file), filename: 'dataset.tar.gz', type: 'application/gzip' }]);
  return app.inject({ method: 'POST', url: '/v1/datasets', payload: form.body, headers: { 'content-type': form.contentType } });
}

let datasetId = '';
t.test('upload a dataset archive, list it, read its counts', async (t) => {
  const res = await upload(archive);
  t.equal(res.statusCode, 201, res.body);
  const ds = res.json();
  t.match(ds.id, /^ds-[0-9a-f]{16}$/);
  t.equal(ds.splits.train.count, 24);
  t.equal(ds.splits.val.count, 7);
  t.equal(ds.splits.train.by_type.safe, 3);
  t.equal(ds.splits.train.text_only, 0, 'text-only examples are counted (none here)');
  t.notOk('path' in ds, 'server paths are not exposed');
  datasetId = ds.id;
  t.equal((await upload(archive)).json().id, datasetId, 'the same content is stored once');
  t.equal((await app.inject('/v1/datasets')).json().datasets.length, 1);
  t.equal((await app.inject(`/v1/datasets/${datasetId}`)).json().splits.train.by_level.careful > 0, true);
  t.equal((await app.inject('/v1/datasets/ds-0000000000000000')).statusCode, 404);
});

t.test('a bad dataset is rejected with line numbers and nothing is stored', async (t) => {
  const bad = join(root, 'bad-dataset');
  await writeTinyDataset(bad, 10, false);
  const lines = (await readFile(join(bad, 'train.jsonl'), 'utf8')).trim().split('\n');
  lines[2] = '{"id": "broken", ';
  lines[5] = lines[5]!.replace('"safe_level":', '"safe_level": 9, "x":');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(bad, 'train.jsonl'), lines.join('\n'));
  const before = await readdir(join(dataDir, 'datasets'));
  const res = await upload(await tarGz(bad, join(root, 'bad.tar.gz')));
  t.equal(res.statusCode, 422);
  const body = res.json();
  t.equal(body.error.code, 'PSA_DATASET_INVALID');
  const lineNumbers = body.error.details.problems.map((p: { line: number }) => p.line);
  t.ok(lineNumbers.includes(3), 'line 3 (malformed JSON) is reported');
  t.ok(lineNumbers.includes(6), 'line 6 (label out of range) is reported');
  t.same(await readdir(join(dataDir, 'datasets')), before, 'nothing stored');
});

t.test('queue a job; a duplicate idempotency key returns the first; a waiting job can be cancelled', async (t) => {
  const request = { dataset: datasetId, output_name: 'guard', stage1: { epochs: 1 }, idempotency_key: 'nightly-1' };
  const first = await app.inject({ method: 'POST', url: '/v1/train', payload: request });
  t.equal(first.statusCode, 202, first.body);
  t.equal(first.json().duplicate, false);
  t.match(first.headers.location, `/v1/train/${first.json().id}`);
  const again = await app.inject({ method: 'POST', url: '/v1/train', payload: request });
  t.equal(again.json().id, first.json().id);
  t.equal(again.json().duplicate, true);
  const job = (await app.inject(`/v1/train/${first.json().id}`)).json();
  t.equal(job.state, 'waiting');
  t.equal(job.phase, 'queued');
  t.equal(job.request.output_name, 'guard');
  t.equal((await app.inject('/v1/train')).json().jobs.length, 1);
  t.match((await app.inject('/metrics')).body, /psa_training_jobs\{state="waiting"\} 1/, 'jobs by state in /metrics');
  const cancelled = await app.inject({ method: 'DELETE', url: `/v1/train/${first.json().id}` });
  t.equal(cancelled.statusCode, 200);
  t.equal(cancelled.json().state, 'cancelled');
  t.equal((await app.inject(`/v1/train/${first.json().id}`)).json().state, 'cancelled', 'a cancelled job still answers');
  t.equal((await app.inject('/v1/train/nope')).json().error.code, 'PSA_JOB_NOT_FOUND');
});

t.test('bad training requests', async (t) => {
  const cases: [object, number, string][] = [
    [{ dataset: 'ds-ffffffffffffffff', output_name: 'x' }, 404, 'PSA_DATASET_NOT_FOUND'],
    [{ dataset: datasetId, output_name: 'x', base_model: 'missing-model' }, 404, 'PSA_MODEL_NOT_FOUND'],
    [{ dataset: datasetId, output_name: 'Bad Name!' }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: datasetId, output_name: 'x', stages: ['stage3'] }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: datasetId, output_name: 'x', stage1: { epochs: 0 } }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: datasetId, output_name: 'x', stage1: { type_head_lr_scale: 0 } }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: datasetId, output_name: 'x', stage1: { query_encoder_train_layers: -1 } }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: datasetId, output_name: 'x', stage2: { query_encoder_train_layers: 1.5 } }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: datasetId, output_name: 'x', stage1: { query_encoder_lr_scale: 0 } }, 400, 'PSA_BAD_REQUEST'],
    [{ dataset: '../../etc', output_name: 'x' }, 422, 'PSA_DATASET_INVALID'],
  ];
  for (const [payload, status, code] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/train', payload });
    t.equal(res.statusCode, status, JSON.stringify(payload));
    t.equal(res.json().error?.code, code, res.json().error?.message);
  }
});

t.test('with Redis down, training answers 503 and moderation keeps working', async (t) => {
  const { app: offline } = await testApp({ REDIS_URL: `redis://127.0.0.1:${await freePort()}`, REDIS_PREFIX: redis.prefix, DATA_DIR: dataDir });
  t.teardown(() => offline.close());
  const train = await offline.inject({ method: 'POST', url: '/v1/train', payload: { dataset: datasetId, output_name: 'x' } });
  t.equal(train.statusCode, 503);
  t.equal(train.json().error.code, 'PSA_QUEUE_UNAVAILABLE');
  t.ok(train.headers['retry-after']);
  t.equal((await offline.inject('/v1/train')).statusCode, 503);
  const moderate = await offline.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(await gradientPng()) } });
  t.equal(moderate.statusCode, 200);
});

t.test('without REDIS_URL, training is disabled with a clear 503', async (t) => {
  const { app: plain } = await testApp({ DATA_DIR: dataDir });
  t.teardown(() => plain.close());
  const res = await plain.inject({ method: 'GET', url: '/v1/train' });
  t.equal(res.statusCode, 503);
  t.match(res.json().error.message, /REDIS_URL/);
});

t.test('the queue dashboard is at /admin/queues, admin scope only', async (t) => {
  const ADMIN = 'admin-key-0123456789abcdef';
  const INFER = 'infer-key-0123456789abcdef';
  const { app: secured } = await testApp({ PSA_MODEL: 'base', MODELS_DIR: modelsDir, DATA_DIR: dataDir, REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, API_KEYS: `${ADMIN}=admin,${INFER}=infer` });
  t.teardown(() => secured.close());
  t.equal((await secured.inject('/admin/queues')).statusCode, 401);
  t.equal((await secured.inject({ url: '/admin/queues', headers: { authorization: `Bearer ${INFER}` } })).statusCode, 403);
  const page = await secured.inject({ url: '/admin/queues', headers: { authorization: `Bearer ${ADMIN}` } });
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /text\/html/);
  const api = await secured.inject({ url: '/admin/queues/api/queues', headers: { authorization: `Bearer ${ADMIN}` } });
  t.equal(api.statusCode, 200);
  t.match(api.body, /psa-train/, 'the training queue is on the board');
  const missing = await secured.inject({ url: '/admin/queues/api/queues/no-such-queue', headers: { authorization: `Bearer ${ADMIN}` } });
  t.ok(missing.statusCode >= 400, `an unknown queue is an error (${missing.statusCode})`);
  t.match(missing.json().error.code, /^PSA_/, "the board's own errors come in the PSA_* shape");
  const doc = (await secured.inject({ url: '/openapi.json', headers: { authorization: `Bearer ${ADMIN}` } })).json();
  t.notOk(
    Object.keys(doc.paths).some((p) => p.startsWith('/admin')),
    'dashboard routes stay out of the API document',
  );
});

t.test('a job that finishes between reading its record and its state is shown with its result', async (t) => {
  const { Worker } = await import('bullmq');
  const { TrainingQueue } = await import('../src/training/queue.ts');
  const { QUEUE_NAME } = await import('../src/training/job-types.ts');
  const { workerRedis } = await import('../src/redis.ts');
  const prefix = `${redis.prefix}-race`;
  const connection = workerRedis(redis.url);
  t.teardown(() => connection.quit());
  const queue = new TrainingQueue(connection, prefix, 1);
  t.teardown(() => queue.close());
  const { id } = await queue.add({ request: { dataset: datasetId, output_name: 'race' } } as never);
  const stale = await queue.queue.getJob(id);
  t.equal(stale?.returnvalue ?? null, null, 'the record was read while the job was waiting');
  const workerConnection = workerRedis(redis.url);
  const worker = new Worker(QUEUE_NAME, async () => ({ model_id: 'race-v1', model_dir: '/x', metrics: {} }), { connection: workerConnection, prefix });
  // BullMQ leaves connections it was given open: each is closed here.
  t.teardown(async () => {
    await worker.close();
    await workerConnection.quit();
  });
  await new Promise((resolve) => worker.once('completed', resolve));
  // Serve the record read before completion, as a request racing the worker would have.
  queue.queue.getJob = (async () => {
    delete (queue.queue as { getJob?: unknown }).getJob;
    return stale;
  }) as typeof queue.queue.getJob;
  const view = await queue.get(id);
  t.equal(view?.state, 'completed');
  t.equal(view?.result?.model_id, 'race-v1');
  t.ok(view?.finished_at);
});

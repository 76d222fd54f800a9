import t from 'tap';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { keys } from '../src/redis.ts';
import { REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { b64, testApp } from './helpers/app.ts';
import { writeTinyDataset } from './helpers/dataset.ts';
import { gradientPng } from './helpers/images.ts';
import { testRedis } from './helpers/redis.ts';
import { startWorker, type WorkerProcess } from './helpers/worker.ts';

// Real Redis, the real worker process, the real PyTorch trainer, on the tiny model and data.
const redis = await testRedis();
t.teardown(() => redis.stop());
const root = await mkdtemp(join(tmpdir(), 'psa-jobs-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const modelsDir = join(root, 'models');
const dataDir = join(root, 'data');
await cp(await tinyPackage(), join(modelsDir, 'base'), { recursive: true });
await writeTinyDataset(join(dataDir, 'shared', 'colours'));
const env = {
  REDIS_URL: redis.url,
  REDIS_PREFIX: redis.prefix,
  DATA_DIR: dataDir,
  MODELS_DIR: modelsDir,
  WORKER_LOCK_MS: '3000',
  WORKER_STALLED_INTERVAL_MS: '1000',
  // A CPU slot of two: jobs asking for gpus 2 run two gloo trainer processes.
  GPUS_PER_SLOT: '2',
  MAX_JOB_GPUS: '2',
};
const { app } = await testApp({ ...env, PSA_MODEL: 'base' });
t.teardown(() => app.close());
let worker: WorkerProcess = startWorker(env);
t.teardown(() => worker.kill('SIGKILL'));
await worker.waitFor(/training workers ready/);

const datasetId = (await app.inject({ method: 'POST', url: '/v1/datasets', payload: { path: 'shared/colours' } })).json().id as string;
const small = { dataset: datasetId, stage1: { epochs: 2, batch_size: 4 }, stage2: { epochs: 1, batch_size: 4, lora: { r: 4 } }, seed: 1 };

async function submit(app: FastifyInstance, body: object): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/train', payload: body });
  if (res.statusCode !== 202) throw new Error(res.body);
  return res.json().id;
}

// Generous: a job that takes ~50 s on an idle 2-core box took over 120 s with the machine's load
// near 10. This bounds a hang, it times nothing (speed lives in the benchmarks).
async function until(id: string, done: (job: Record<string, unknown>) => boolean, timeoutMs = 360_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await app.inject(`/v1/train/${id}`)).json();
    if (done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} stuck: ${JSON.stringify(job).slice(0, 1500)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const finished = (j: Record<string, unknown>) => ['completed', 'failed', 'cancelled'].includes(String(j.state));

t.test('a full job (stage 1 + stage 2) completes and the new package serves after activation', async (t) => {
  const id = await submit(app, { ...small, output_name: 'colours' });
  const job = await until(id, finished);
  t.equal(job.state, 'completed', job.error ?? '');
  t.equal(job.result.model_id, 'colours-v1');
  t.ok(job.result.metrics.level_accuracy >= 0 && job.result.metrics.type_accuracy >= 0);
  t.equal(job.result.metrics.examples, 7, 'evaluated on val.jsonl');
  t.ok(job.logs.some((l: string) => /stage1/.test(l)) && job.logs.some((l: string) => /stage2/.test(l)), 'both stages ran');
  const activated = await app.inject({ method: 'POST', url: '/v1/models/colours-v1/activate' });
  t.equal(activated.statusCode, 200, activated.body);
  t.same(activated.json().active, 'colours-v1');
  const moderated = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(await gradientPng()) } });
  t.equal(moderated.json().model, 'colours-v1');
  const models = (await app.inject('/v1/models')).json();
  const trained = models.data.find((m: { id: string }) => m.id === 'colours-v1');
  t.equal(trained.provenance.status, 'trained');
  t.equal(trained.provenance.dataset, datasetId);
  t.ok(trained.provenance.metrics.type_macro_f1 !== undefined);
  t.equal(models.active, 'colours-v1');
  t.equal((await app.inject({ method: 'POST', url: '/v1/models/nope/activate' })).json().error.code, 'PSA_MODEL_NOT_FOUND');
});

t.test('activation reaches every replica; requests in flight finish; a broken package is never activated', async (t) => {
  const { app: replica } = await testApp({ ...env, PSA_MODEL: 'base', MAX_NEW_TOKENS: '300' });
  t.teardown(() => replica.close());
  await replica.ready();
  t.equal((await replica.inject('/v1/models')).json().active, 'colours-v1', 'a replica that starts later serves the activated model');

  await replica.listen({ port: 0, host: '127.0.0.1' });
  const { port } = replica.server.address() as { port: number };
  const stream = await fetch(`http://127.0.0.1:${port}/v1/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: b64(await gradientPng()), prompt: 'Keep talking.', max_tokens: 300, temperature: 1, seed: 4, stream: true }),
  });
  const reader = stream.body!.getReader();
  let text = new TextDecoder().decode((await reader.read()).value);
  t.match(text, /"model":"colours-v1"/, 'the chat started on colours-v1');

  const switched = await app.inject({ method: 'POST', url: '/v1/models/base/activate' });
  t.equal(switched.json().propagated, true);
  const deadline = Date.now() + 20_000;
  while ((await replica.inject('/v1/models')).json().active !== 'base' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.equal((await replica.inject('/v1/models')).json().active, 'base', 'the other replica switched on the Redis event');
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
  t.match(text, /event: done/, 'the request in flight finished on the old model');

  await cp(join(modelsDir, 'colours-v1'), join(modelsDir, 'broken'), { recursive: true });
  const { appendFile } = await import('node:fs/promises');
  await appendFile(join(modelsDir, 'broken', 'onnx', 'safety_head.onnx'), 'x');
  const refused = await app.inject({ method: 'POST', url: '/v1/models/broken/activate' });
  t.equal(refused.statusCode, 422);
  t.equal(refused.json().error.code, 'PSA_PACKAGE_CHECKSUM_MISMATCH');
  t.equal((await app.inject('/v1/models')).json().active, 'base', 'still serving the previous model');
});

t.test('two jobs with one slot run one after the other', async (t) => {
  const a = await submit(app, { ...small, stages: ['stage1'], output_name: 'seq' });
  const b = await submit(app, { ...small, stages: ['stage1'], output_name: 'seq' });
  const [ja, jb] = [await until(a, finished), await until(b, finished)];
  t.equal(ja.state, 'completed');
  t.equal(jb.state, 'completed');
  t.ok(Date.parse(jb.started_at) >= Date.parse(ja.finished_at), 'the second started after the first finished');
  t.same([ja.result.model_id, jb.result.model_id].sort(), ['seq-v1', 'seq-v2'], 'versions are numbered');
});

t.test('gpus: a two-process job runs under torch.distributed.run; too many GPUs is refused or left for a larger slot', async (t) => {
  const id = await submit(app, { ...small, stages: ['stage1'], gpus: 2, output_name: 'two-procs' });
  const job = await until(id, finished, 180_000);
  t.equal(job.state, 'completed', job.error ?? '');
  t.equal(job.processes, 2, 'two trainer processes ran the stage');
  const refused = await app.inject({ method: 'POST', url: '/v1/train', payload: { ...small, gpus: 3, output_name: 'x' } });
  t.equal(refused.statusCode, 422);
  t.equal(refused.json().error.code, 'PSA_GPUS_UNAVAILABLE');
  t.match(refused.json().error.message, /largest worker slot has 2 \(MAX_JOB_GPUS\)/);
  // An API that allows more than this worker's slot: the worker leaves the job for a larger one.
  const { app: generous } = await testApp({ ...env, PSA_MODEL: 'base', MAX_JOB_GPUS: '4' });
  t.teardown(() => generous.close());
  const large = await submit(generous, { ...small, gpus: 4, output_name: 'large' });
  const waiting = await until(large, (j) => j.state === 'delayed' && (j.logs as string[]).some((l) => /has 2 of the 4 GPUs the job asks for/.test(l)), 60_000);
  t.equal(waiting.step ?? null, null, 'the slot too small for it did not train it');
  const cancelled = await generous.inject({ method: 'DELETE', url: `/v1/train/${large}` });
  t.equal(cancelled.json().state, 'cancelled', 'and it can be cancelled while it waits');
});

t.test('a SIGKILLed worker: the job is picked up again and resumes from its checkpoint', async (t) => {
  const id = await submit(app, { ...small, stage1: { epochs: 40, batch_size: 4 }, stages: ['stage1'], checkpoint_every_steps: 5, output_name: 'resumed' });
  await until(id, (j) => j.state === 'active' && (j.logs as string[]).some((l) => /checkpoint stage1/.test(l)) && Number(j.step) >= 12);
  await worker.kill('SIGKILL');
  worker = startWorker(env);
  const job = await until(id, finished, 400_000);
  t.equal(job.state, 'completed', job.error ?? '');
  t.ok(job.resumed_from > 0, `resumed from a checkpoint, not from zero (step ${job.resumed_from})`);
});

t.test('cancelling a running job stops its trainer and ends it as cancelled', async (t) => {
  const id = await submit(app, { ...small, stage1: { epochs: 200, batch_size: 4 }, stages: ['stage1'], output_name: 'cancelled' });
  await until(id, (j) => j.state === 'active' && Number(j.step) > 2);
  const res = await app.inject({ method: 'DELETE', url: `/v1/train/${id}` });
  t.equal(res.statusCode, 202);
  t.equal(res.json().state, 'cancelling');
  const job = await until(id, finished, 60_000);
  t.equal(job.state, 'cancelled');
  t.equal(job.error, null);
  t.ok(Number(job.step) < Number(job.total_steps), 'stopped before the end');
  const next = await submit(app, { ...small, stages: ['stage1'], stage1: { epochs: 1 }, output_name: 'after-cancel' });
  t.equal((await until(next, finished)).state, 'completed', 'the slot is free again');
});

t.test('a cancel whose pub/sub message is missed still stops the job: the worker reads the cancel flag', async (t) => {
  const id = await submit(app, { ...small, stage1: { epochs: 200, batch_size: 4 }, stages: ['stage1'], output_name: 'flag-cancelled' });
  await until(id, (j) => j.state === 'active' && Number(j.step) > 2);
  // What DELETE /v1/train/:id writes, without the message a restarting worker would miss.
  const client = new Redis(redis.url);
  t.teardown(() => client.quit());
  await client.set(keys(redis.prefix).cancelFlag(id), '1', 'EX', 600);
  const job = await until(id, finished, 60_000);
  t.equal(job.state, 'cancelled', job.error ?? '');
  t.ok(Number(job.step) < Number(job.total_steps), 'stopped before the end');
  const line = await worker.waitFor(new RegExp(`"job":"${id}","by":"flag"`));
  t.match(line, /cancelling training job/, 'stopped by the flag, not by a message');
});

t.test('a job whose base is a Hugging Face LLaVA checkpoint on shared storage completes and serves', async (t) => {
  await cp(join(REPO_ROOT, '..', 'shared', 'data', 'hf-tiny-llava'), join(dataDir, 'bases', 'hf-tiny'), { recursive: true });
  const id = await submit(app, { ...small, base_model: 'bases/hf-tiny', output_name: 'from-hf' });
  const job = await until(id, finished);
  t.equal(job.state, 'completed', job.error ?? '');
  t.ok(job.logs.some((l: string) => /converting checkpoint/.test(l)) || job.result, 'the checkpoint was converted');
  const activated = await app.inject({ method: 'POST', url: `/v1/models/${job.result.model_id}/activate` });
  t.equal(activated.statusCode, 200, activated.body);
  const image = b64(await gradientPng());
  const moderated = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image, prompt: 'what is this?' } });
  t.equal(moderated.statusCode, 200);
  t.equal(moderated.json().model, 'from-hf-v1');
  const chat = await app.inject({ method: 'POST', url: '/v1/chat', payload: { image, prompt: 'what is this?', max_tokens: 5 } });
  t.equal(chat.statusCode, 200, chat.body);
  const models = (await app.inject('/v1/models')).json();
  t.equal(models.data.find((m: { id: string }) => m.id === 'from-hf-v1').provenance.base, 'bases/hf-tiny');
  t.equal((await app.inject({ method: 'POST', url: '/v1/train', payload: { ...small, base_model: '../../etc', output_name: 'x' } })).json().error.code, 'PSA_MODEL_NOT_FOUND');
});

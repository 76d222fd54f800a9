import t from 'tap';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tarGz, writeTinyDataset } from '../helpers/dataset.ts';
import { gradientPng } from '../helpers/images.ts';
import { freePort } from '../helpers/redis.ts';
import { build, cleanCopy, imageSizeMb, inspect, jsonLogs, removeContainer, sh, startCommand, waitFor, waitReady } from './podman.ts';
import { DEFAULT_MODEL_NAME } from '../helpers/default-model.ts';

// The deployment, built and run for real with podman and podman-compose (npm run test:deploy).
// The images are tagged with the names docker-compose.yml gives them, so compose runs what was
// just built from a clean copy of the repository.
const repo = fileURLToPath(new URL('../../', import.meta.url));
const context = await cleanCopy(repo);
t.teardown(() => rm(context, { recursive: true, force: true }));

const API_IMAGE = 'psa-guard:api';
const WORKER_IMAGE = 'psa-guard:worker-cpu';
const PROJECT = 'psa-deploy-test';
const built = { api: false, worker: false };
const report: string[] = [];
t.teardown(() => {
  // The figures a person reads at the end of the run.
  console.log(['# deployment figures', ...report.map((l) => `#   ${l}`)].join('\n'));
});

const image = (await gradientPng(96, 72)).toString('base64');
const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

t.test('the api and worker-cpu targets build from a clean copy', async (t) => {
  const api = await build(context, 'api', API_IMAGE);
  t.equal(api.result.code, 0, `api builds${api.result.code ? `: ${api.result.stderr.slice(-2000)}` : ''}`);
  built.api = api.result.code === 0;
  const worker = await build(context, 'worker-cpu', WORKER_IMAGE);
  t.equal(worker.result.code, 0, `worker-cpu builds${worker.result.code ? `: ${worker.result.stderr.slice(-2000)}` : ''}`);
  built.worker = worker.result.code === 0;
  if (!built.api || !built.worker) return;
  const apiMb = await imageSizeMb(API_IMAGE);
  const workerMb = await imageSizeMb(WORKER_IMAGE);
  const baseMb = await imageSizeMb('node:20-bookworm-slim');
  report.push(`api: built in ${api.seconds.toFixed(0)} s, ${apiMb.toFixed(0)} MB (base image ${baseMb.toFixed(0)} MB)`);
  report.push(`worker-cpu: built in ${worker.seconds.toFixed(0)} s, ${workerMb.toFixed(0)} MB`);
  t.ok(apiMb - baseMb < 400, `the api image adds ${(apiMb - baseMb).toFixed(0)} MB to its base (< 400 MB)`);

  const lean = await sh('podman', [
    'run',
    '--rm',
    '--entrypoint',
    'sh',
    API_IMAGE,
    '-c',
    'for p in node_modules/tap node_modules/typescript node_modules/tsx node_modules/@huggingface/transformers src trainer test scripts; do [ -e "$p" ] && echo "$p"; done; test -f dist/server.js',
  ]);
  t.equal(lean.code, 0, 'the api image holds the compiled service (dist/server.js)');
  t.equal(lean.stdout.trim(), '', 'no dev dependencies (tsx included), sources, trainer, tests or scripts in the api image');
  const trainer = await sh('podman', [
    'run',
    '--rm',
    '--entrypoint',
    'sh',
    WORKER_IMAGE,
    '-c',
    '/usr/bin/python3 -c "import torch, numpy, onnx, trainer.io.safetensors_files, trainer.tokenizer.hf_tokenizer; print(torch.__version__)" && test -d trainer',
  ]);
  t.equal(trainer.code, 0, `worker-cpu has the trainer, its pinned wheels and Debian's torch (${trainer.stdout.trim()})${trainer.stderr}`);
});

t.test('the api container: /readyz, /v1/moderate, non-root, healthcheck, graceful stop with a request in flight', async (t) => {
  if (!built.api) return t.fail('the api image did not build');
  const name = 'psa-deploy-test-api';
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  await removeContainer(name);
  t.teardown(() => removeContainer(name));
  const started = await sh('podman', ['run', '-d', '--name', name, '-p', `127.0.0.1:${port}:8080`, '-e', 'ALLOW_NO_AUTH=true', '-e', 'SHUTDOWN_GRACE_MS=20000', '-e', 'MAX_NEW_TOKENS=780', API_IMAGE]);
  t.equal(started.code, 0, `the api container starts${started.code ? `: ${started.stderr}` : ''}`);
  const t0 = Date.now();
  await waitReady(base);
  report.push(`api container ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const moderated = await fetch(`${base}/v1/moderate`, json({ image, prompt: 'What is in this picture?' }));
  t.equal(moderated.status, 200);
  const body = (await moderated.json()) as { model: string; items: Array<{ decision: string; concepts: unknown }> };
  t.equal(body.model, DEFAULT_MODEL_NAME, 'the embedded default model serves');
  t.ok(body.items[0]?.decision && body.items[0].concepts, 'a decision and concepts');

  t.equal((await sh('podman', ['exec', name, 'id', '-u'])).stdout.trim(), '1000', 'the process runs as uid 1000');
  t.equal(await inspect(name, '{{.Config.User}}'), 'node', 'the image declares a non-root user');
  t.equal((await sh('podman', ['exec', name, 'cat', '/proc/1/comm'])).stdout.trim(), 'node', 'node is PID 1');
  const environ = (await sh('podman', ['exec', name, 'cat', '/proc/1/environ'])).stdout.split('\0');
  t.ok(environ.includes('MALLOC_ARENA_MAX=2'), 'the server runs with glibc malloc arenas capped at 2');
  const health = await sh('podman', ['healthcheck', 'run', name]);
  t.equal(health.code, 0, `podman healthcheck run passes${health.code ? `: ${health.stdout}${health.stderr}` : ''}`);

  // A streamed chat answer of 780 tokens takes about three seconds: stop the container as soon as
  // the answer has started (podman stop takes up to a second to deliver SIGTERM), and the answer
  // must still be delivered to its end.
  const requestId = 'deploy-test-in-flight';
  const chat = await fetch(`${base}/v1/chat`, {
    ...json({ image, prompt: 'Describe this picture in detail, please.', max_tokens: 780, temperature: 1, seed: 3, stream: true }),
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
  });
  t.equal(chat.status, 200);
  const reader = chat.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('event: concepts')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const stopping = startCommand('podman', ['stop', '-t', '30', name]);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  t.match(text, /event: done\ndata: \{"finish_reason":"(eos|length|stop|context)"/, 'the answer in flight was delivered to its end');
  const stop = await stopping;
  t.equal(stop.code, 0, `podman stop exits 0${stop.code ? `: ${stop.output}` : ''}`);
  t.ok(stop.seconds < 30, `the container stopped in ${stop.seconds.toFixed(1)} s, within the 30 s grace period`);
  report.push(`api container stopped in ${stop.seconds.toFixed(1)} s with a chat request in flight`);
  t.equal(await inspect(name, '{{.State.ExitCode}}'), '0', 'exit code 0: it shut down, it was not killed');
  const logs = await jsonLogs(name);
  const shutdownAt = logs.findIndex((l) => l.msg === 'shutting down: finishing requests in flight' && l.signal === 'SIGTERM');
  const completedAt = logs.findIndex((l) => l.msg === 'request completed' && l.client_request_id === requestId);
  t.ok(shutdownAt >= 0, 'SIGTERM was logged');
  t.ok(completedAt > shutdownAt, 'the chat request completed after SIGTERM arrived', {
    shutdownAt,
    completedAt,
    lines: logs.filter((l) => l.client_request_id === requestId || /shutting down/.test(String(l.msg))).map((l) => `${l.time} ${l.msg}`),
  });
});

t.test('compose: redis + api + worker-cpu serve, train a job through Redis restarts, activate it', async (t) => {
  if (!built.api || !built.worker) return t.fail('the images did not build');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, PSA_PORT: String(port) };
  const compose = (...args: string[]) => sh('podman-compose', ['-p', PROJECT, '-f', join(context, 'docker-compose.yml'), ...args], { cwd: context, env, timeoutMs: 10 * 60_000 });
  const container = (service: string) => `${PROJECT}_${service}_1`;
  await compose('down', '-v');
  t.teardown(async () => {
    await compose('down', '-v');
  });
  const up = await compose('up', '-d', 'redis', 'api', 'worker-cpu');
  t.equal(up.code, 0, `podman-compose up${up.code ? `: ${up.stderr.slice(-2000)}` : ''}`);
  await waitReady(base);
  t.equal((await sh('podman', ['exec', container('redis'), 'redis-cli', 'config', 'get', 'appendonly'])).stdout.split('\n')[1], 'yes', 'Redis writes its append-only file');
  const health = await sh('podman', ['healthcheck', 'run', container('redis')]);
  t.equal(health.code, 0, 'the Redis healthcheck passes');

  const moderated = await fetch(`${base}/v1/moderate`, json({ image }));
  t.equal(moderated.status, 200, 'the compose api serves /v1/moderate');

  // Hold the queue: with the worker stopped, submitted jobs wait in Redis.
  t.equal((await sh('podman', ['stop', '-t', '60', container('worker-cpu')])).code, 0);
  const datasetDir = join(context, '.deploy-dataset');
  await writeTinyDataset(datasetDir);
  const archive = await readFile(await tarGz(datasetDir, join(context, 'deploy-dataset.tar.gz')));
  const form = new FormData();
  form.append('file', new Blob([archive], { type: 'application/gzip' }), 'dataset.tar.gz');
  const uploaded = await fetch(`${base}/v1/datasets`, { method: 'POST', body: form });
  t.equal(uploaded.status, 201, 'the dataset is stored on the shared data volume');
  const dataset = ((await uploaded.json()) as { id: string }).id;

  const submit = async (output_name: string) => {
    const res = await fetch(`${base}/v1/train`, json({ dataset, output_name, stage1: { epochs: 1 }, stage2: { epochs: 1 } }));
    t.equal(res.status, 202, `job ${output_name} queued`);
    return ((await res.json()) as { id: string }).id;
  };
  const jobA = await submit('deploy');
  const jobB = await submit('spare');
  const state = async (id: string) => {
    const res = await fetch(`${base}/v1/train/${id}`);
    return res.ok ? ((await res.json()) as { state: string; result: { model_id: string } | null; error?: unknown }) : undefined;
  };

  t.equal((await sh('podman', ['stop', container('redis')])).code, 0, 'Redis stopped');
  t.equal((await sh('podman', ['start', container('redis')])).code, 0, 'Redis started again');
  for (const id of [jobA, jobB]) {
    const after = await waitFor(`job ${id} after the Redis restart`, () => state(id), 60_000);
    t.equal(after.state, 'waiting', `job ${id} is still queued after Redis restarted`);
  }
  const cancelled = await fetch(`${base}/v1/train/${jobB}`, { method: 'DELETE' });
  t.equal(cancelled.status, 200, 'the spare job is cancelled');

  t.equal((await sh('podman', ['start', container('worker-cpu')])).code, 0, 'the worker starts again');
  const t0 = Date.now();
  const done = await waitFor(
    `job ${jobA} to finish`,
    async () => {
      const s = await state(jobA);
      return s && ['completed', 'failed'].includes(s.state) ? s : undefined;
    },
    20 * 60_000,
    2000,
  );
  t.equal(done.state, 'completed', `the worker container ran the job${done.state === 'failed' ? `: ${JSON.stringify(done.error)}` : ''}`);
  report.push(`compose training job (tiny dataset, 1 + 1 epochs on the default model) took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  t.equal(done.result?.model_id, 'deploy-v1');

  const activated = await fetch(`${base}/v1/models/deploy-v1/activate`, { method: 'POST' });
  t.equal(activated.status, 200, 'the trained package is activated');
  const served = await waitFor(
    'the new model to serve',
    async () => {
      const res = await fetch(`${base}/v1/moderate`, json({ image }));
      const body = (await res.json()) as { model: string };
      return body.model === 'deploy-v1' ? body : undefined;
    },
    60_000,
  );
  t.equal(served.model, 'deploy-v1', 'the api serves the model the worker container trained');
});

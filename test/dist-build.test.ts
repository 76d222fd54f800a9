import t from 'tap';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDist } from '../scripts/lib/build-dist.ts';
import { REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { gradientPng } from './helpers/images.ts';
import { freePort, testRedis } from './helpers/redis.ts';
import { startNode, type WorkerProcess } from './helpers/worker.ts';
import { DEFAULT_MODEL_NAME } from './helpers/default-model.ts';

// Production runs the compiled service. It is built here into a directory laid out like the
// container image (package.json, node_modules, dist/; no src/) and started from an unrelated
// working directory, so a module that still reaches for a .ts file or for src/ fails here.
const root = await mkdtemp(join(tmpdir(), 'psa-dist-'));
const cwd = join(root, 'elsewhere');
t.teardown(() => rm(root, { recursive: true, force: true }));
await buildDist(join(root, 'dist'));
await copyFile(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
await symlink(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
await mkdir(cwd);

const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  LOG_LEVEL: 'info',
  PSA_MODEL: join(REPO_ROOT, 'models/default'),
  MODELS_DIR: join(root, 'models'),
  DATA_DIR: join(root, 'data'),
  ...extra,
});

async function stop(proc: WorkerProcess): Promise<number | null> {
  await proc.kill('SIGTERM');
  return proc.child.exitCode;
}

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

t.test('the build holds JavaScript with source maps, the page assets, and no TypeScript', async (t) => {
  const built = await files(join(root, 'dist'));
  t.same(
    built.filter((f) => f.endsWith('.ts')),
    [],
    'no .ts files',
  );
  for (const entry of ['server.js', 'server.js.map', 'worker.js', 'inference/worker.js', 'playground/index.html', 'playground/app.js']) {
    t.ok(await stat(join(root, 'dist', entry)).catch(() => null), entry);
  }
  const tsImport = /(from|import\()\s*['"]\.{1,2}\/[^'"]*\.ts['"]/;
  const modules = built.filter((f) => f.endsWith('.js') && !f.includes('/playground/'));
  const importingTs = [];
  for (const file of modules) if (tsImport.test(await readFile(file, 'utf8'))) importingTs.push(file.slice(root.length));
  t.same(importingTs, [], `none of the ${modules.length} modules imports a .ts file`);
});

t.test('node dist/server.js serves the default model from another directory', async (t) => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = startNode([join(root, 'dist/server.js')], env({ PORT: String(port), HOST: '127.0.0.1' }), cwd);
  t.teardown(() => server.kill('SIGKILL'));
  const deadline = Date.now() + 120_000;
  let ready: Response | undefined;
  while (Date.now() < deadline && server.child.exitCode === null) {
    ready = await fetch(`${base}/readyz`).catch(() => undefined);
    if (ready?.ok) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!ready?.ok) return t.fail(`the server never got ready; last lines:\n${server.logs.slice(-15).join('\n')}`);
  t.match(await ready.json(), { status: 'ready', model: DEFAULT_MODEL_NAME }, '/readyz: the inference workers loaded the model');
  t.equal((await fetch(`${base}/healthz`)).status, 200, '/healthz');

  const page = await fetch(`${base}/playground`);
  t.equal(page.status, 200, 'the playground page is served from dist/playground');
  t.match(await page.text(), /<html/i);

  const image = (await gradientPng(96, 72)).toString('base64');
  const moderated = await fetch(`${base}/v1/moderate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image, prompt: 'What is in this picture?' }),
  });
  t.equal(moderated.status, 200, '/v1/moderate');
  const body = (await moderated.json()) as { model: string; items: { decision: string }[] };
  t.equal(body.model, DEFAULT_MODEL_NAME);
  t.ok(body.items[0]?.decision, 'a decision');
  t.equal(await stop(server), 0, 'exits 0 on SIGTERM');
});

t.test('node dist/worker.js connects to Redis and stops cleanly', async (t) => {
  const redis = await testRedis();
  t.teardown(() => redis.stop());
  const worker = startNode([join(root, 'dist/worker.js')], env({ REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, GPUS: '' }), cwd);
  t.teardown(() => worker.kill('SIGKILL'));
  await worker.waitFor(/training workers ready/, 60_000);
  t.pass('training workers ready');
  t.equal(await stop(worker), 0, 'exits 0 on SIGTERM');
});

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yazl from 'yazl';
import { multipartBody, testApp } from './helpers/app.ts';
import { tarGz, writeTinyDataset } from './helpers/dataset.ts';
import { testRedis } from './helpers/redis.ts';

// Regression tests of dataset ingestion and training inputs: the crash upload, scratch cleanup,
// the disk budget, the echo cap, bounded ingests, zip CRCs, long names, ownership, shard paths.
const redis = await testRedis();
t.teardown(() => redis.stop());
const root = await mkdtemp(join(tmpdir(), 'psa-harden-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const A = 'train-a-0123456789abcdef';
const B = 'train-b-0123456789abcdef';
const ADMIN = 'admin-k-0123456789abcdef';
const keys = `${A}=train,${B}=train,${ADMIN}=admin`;
const auth = (key: string) => ({ authorization: `Bearer ${key}` });
let n = 0;

async function app(overrides: Record<string, string> = {}) {
  const dataDir = overrides.DATA_DIR ?? join(root, `data-${++n}`);
  const { app } = await testApp({ DATA_DIR: dataDir, API_KEYS: keys, REDIS_URL: redis.url, REDIS_PREFIX: `${redis.prefix}-${n}`, ...overrides });
  t.teardown(() => app.close());
  return { app, dataDir };
}

function upload(a: Awaited<ReturnType<typeof app>>['app'], bytes: Buffer, key = A, filename = 'ds.tar.gz') {
  const form = multipartBody([{ name: 'file', value: bytes, filename, type: 'application/octet-stream' }]);
  return a.inject({ method: 'POST', url: '/v1/datasets', payload: form.body, headers: { 'content-type': form.contentType, ...auth(key) } });
}

/** A tiny valid dataset whose train.jsonl gets `mutate` applied; as .tar.gz bytes. */
async function datasetArchive(name: string, mutate?: (dir: string) => Promise<void>): Promise<Buffer> {
  const dir = join(root, name);
  await writeTinyDataset(dir, 6, false);
  if (mutate) await mutate(dir);
  const file = await tarGz(dir, join(root, `${name}.tar.gz`));
  await rm(dir, { recursive: true, force: true });
  return readFile(file);
}

/** `n` characters that deflate about 80:1 (a random block repeated): under node-tar's 1000:1 bomb check, like real text. */
const lumpy = (n: number) =>
  randomBytes(100)
    .toString('hex')
    .repeat(Math.ceil(n / 200))
    .slice(0, n);

const scratch = async (dataDir: string) => (await readdir(join(dataDir, 'tmp')).catch(() => [])).length;

t.test('finding 1: a 40 MB line is PSA_DATASET_INVALID naming file and line; the server lives on', async (t) => {
  const { app: a, dataDir } = await app({ MAX_ARCHIVE_EXPANSION: '1000' });
  const archive = await datasetArchive('longline', async (dir) => {
    const lines = (await readFile(join(dir, 'train.jsonl'), 'utf8')).trim().split('\n');
    lines.splice(2, 0, `{"id": "${lumpy(40 * 1024 * 1024)}"}`);
    await writeFile(join(dir, 'train.jsonl'), lines.join('\n'));
  });
  t.comment(`upload ${archive.length} bytes, line 3 is 40 MB`);
  const res = await upload(a, archive);
  t.equal(res.statusCode, 422, res.body.slice(0, 300));
  t.equal(res.json().error.code, 'PSA_DATASET_INVALID');
  t.same(res.json().error.details.problems[0], { file: 'train.jsonl', line: 3, message: res.json().error.details.problems[0].message });
  t.match(res.json().error.details.problems[0].message, /longer than 1048576 bytes/);
  t.equal((await a.inject('/healthz')).statusCode, 200, 'still serving');
  t.equal(await scratch(dataDir), 0, 'nothing left in DATA_DIR/tmp');
});

t.test('stale scratch in DATA_DIR/tmp is removed at start; fresh scratch is kept', async (t) => {
  const dataDir = join(root, 'stale');
  await mkdir(join(dataDir, 'tmp', 'dead-ingest'), { recursive: true });
  await writeFile(join(dataDir, 'tmp', 'dead-ingest', 'big.bin'), Buffer.alloc(1024));
  await writeFile(join(dataDir, 'tmp', 'upload-dead'), 'x');
  const old = new Date(Date.now() - 3600_000);
  await utimes(join(dataDir, 'tmp', 'dead-ingest'), old, old);
  await utimes(join(dataDir, 'tmp', 'upload-dead'), old, old);
  await mkdir(join(dataDir, 'tmp', 'live-ingest'));
  await app({ DATA_DIR: dataDir });
  t.same(await readdir(join(dataDir, 'tmp')), ['live-ingest']);
});

t.test('finding 6: the disk budget is checked before extraction; expansion is bounded', async (t) => {
  const { app: a, dataDir } = await app({ MIN_FREE_DISK_BYTES: String(2 ** 52) });
  const res = await upload(a, await datasetArchive('budget'));
  t.equal(res.statusCode, 507);
  t.equal(res.json().error.code, 'PSA_INSUFFICIENT_STORAGE');
  t.equal(await scratch(dataDir), 0, 'nothing written');
  const { app: b, dataDir: d2 } = await app({ MAX_ARCHIVE_EXPANSION: '10' });
  const bomb = await datasetArchive('bomb', async (dir) => writeFile(join(dir, 'filler.bin'), lumpy(40 * 1024 * 1024)));
  const refused = await upload(b, bomb);
  t.comment(`${bomb.length} bytes expanding to 40 MB: ${refused.statusCode} ${refused.json().error.message}`);
  t.equal(refused.statusCode, 413);
  t.equal(refused.json().error.code, 'PSA_ARCHIVE_TOO_LARGE');
  t.match(refused.json().error.message, /expands to more than 16777216 bytes/, 'stopped at the 16 MiB floor, not at MAX_DATASET_BYTES');
  t.equal(await scratch(d2), 0);
});

t.test('finding 6: echoed values are cut and the problem list is capped', async (t) => {
  const { app: a } = await app({ MAX_ARCHIVE_EXPANSION: '1000' });
  const archive = await datasetArchive('echo', async (dir) => {
    const line = JSON.stringify({ id: 'x', image: 'images/0.png', conversations: [], safe_type: lumpy(50_000), safe_level: lumpy(50_000) });
    await writeFile(join(dir, 'train.jsonl'), Array.from({ length: 300 }, () => line).join('\n'));
  });
  const res = await upload(a, archive);
  t.comment(`a ${archive.length}-byte upload with 300 lines of 100 KB values: a ${res.body.length}-byte answer`);
  t.equal(res.statusCode, 422, res.body.slice(0, 300));
  const { details } = res.json().error;
  t.equal(details.problems.length, 100);
  t.ok(details.total_problems >= 900, `every problem counted (${details.total_problems})`);
  t.ok(res.body.length < 150_000, 'the answer stays small');
  t.ok(details.problems.every((p: { message: string }) => p.message.length < 500));
});

t.test('zip entries with a wrong CRC and over-long names are refused (4xx)', async (t) => {
  const { app: a } = await app();
  const zip = (files: [string, Buffer][]) =>
    new Promise<Buffer>((resolve) => {
      const z = new yazl.ZipFile();
      for (const [name, data] of files) z.addBuffer(data, name, { compress: false });
      const chunks: Buffer[] = [];
      z.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
      z.end();
    });
  const good = await zip([['train.jsonl', Buffer.from('{"id": "crc-check-payload"}\n')]]);
  const corrupt = Buffer.from(good);
  const at = corrupt.indexOf('crc-check-payload');
  corrupt.writeUInt8(corrupt.readUInt8(at) ^ 0x01, at);
  const res = await upload(a, corrupt, A, 'ds.zip');
  t.equal(res.statusCode, 400);
  t.match(res.json().error.message, /CRC-32/);
  const long = await upload(a, await zip([[`${'n'.repeat(300)}/train.jsonl`, Buffer.from('{}\n')]]), A, 'ds.zip');
  t.equal(long.statusCode, 400, 'ENAMETOOLONG is bad input, not a 5xx');
  t.equal(long.json().error.code, 'PSA_ARCHIVE_INVALID');
});

t.test('bounded ingests: a second upload of one key is 429, past the total 503, both with Retry-After', async (t) => {
  const { app: a } = await app({ MAX_CONCURRENT_INGESTS: '2', MAX_CONCURRENT_INGESTS_PER_KEY: '1' });
  await a.listen({ port: 0, host: '127.0.0.1' });
  const port = (a.server.address() as { port: number }).port;
  const hold = (key: string) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/datasets', method: 'POST', headers: { ...auth(key), 'content-type': 'multipart/form-data; boundary=xyz', 'content-length': 100_000 } });
    req.on('error', () => undefined);
    req.write('--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.tgz"\r\n\r\n');
    return req;
  };
  const first = hold(A);
  await new Promise((r) => setTimeout(r, 500));
  const archive = await datasetArchive('slots');
  const form = multipartBody([{ name: 'file', value: archive, filename: 'a.tgz' }]);
  const post = (key: string) => fetch(`http://127.0.0.1:${port}/v1/datasets`, { method: 'POST', body: new Uint8Array(form.body), headers: { 'content-type': form.contentType, ...auth(key) } });
  const again = await post(A);
  t.equal(again.status, 429);
  t.ok(again.headers.get('retry-after'));
  t.equal(((await again.json()) as { error: { code: string } }).error.code, 'PSA_TOO_MANY_REQUESTS');
  const second = hold(B);
  await new Promise((r) => setTimeout(r, 500));
  const full = await post(ADMIN);
  t.equal(full.status, 503);
  t.ok(full.headers.get('retry-after'));
  first.destroy();
  second.destroy();
});

t.test('ownership: train keys see their own datasets and jobs, admin sees all', async (t) => {
  const { app: a, dataDir } = await app();
  const mine = await upload(a, await datasetArchive('owned'));
  t.equal(mine.statusCode, 201, mine.body);
  const id = mine.json().id;
  const list = async (key: string) => (await a.inject({ url: '/v1/datasets', headers: auth(key) })).json().datasets.map((d: { id: string }) => d.id);
  t.same(await list(A), [id]);
  t.same(await list(B), [], 'another train key does not see it');
  t.same(await list(ADMIN), [id]);
  t.equal((await a.inject({ url: `/v1/datasets/${id}`, headers: auth(B) })).statusCode, 404);
  const trainB = await a.inject({ method: 'POST', url: '/v1/train', payload: { dataset: id, output_name: 'x' }, headers: auth(B) });
  t.equal(trainB.statusCode, 404, 'nor train on it');
  const job = await a.inject({ method: 'POST', url: '/v1/train', payload: { dataset: id, output_name: 'x' }, headers: auth(A) });
  t.equal(job.statusCode, 202, job.body);
  const jobId = job.json().id;
  t.equal((await a.inject({ url: '/v1/train', headers: auth(B) })).json().jobs.length, 0);
  t.equal((await a.inject({ url: `/v1/train/${jobId}`, headers: auth(B) })).statusCode, 404);
  t.equal((await a.inject({ method: 'DELETE', url: `/v1/train/${jobId}`, headers: auth(B) })).statusCode, 404, "B cannot cancel A's job");
  t.equal((await a.inject({ url: '/v1/train', headers: auth(ADMIN) })).json().jobs.length, 1);
  const own = (await a.inject({ url: `/v1/train/${jobId}`, headers: auth(A) })).json();
  t.notOk('owner' in own, 'owner ids are not shown');
  t.equal((await upload(a, await datasetArchive('owned'), B)).json().id, id, 'B uploading the same content owns it too');
  t.same(await list(B), [id]);

  const asBase = await a.inject({ method: 'POST', url: '/v1/train', payload: { dataset: id, output_name: 'x', base_model: `datasets/${id}` }, headers: auth(A) });
  t.equal(asBase.statusCode, 404, 'finding 5: a dataset is not a model base');
  t.equal(asBase.json().error.code, 'PSA_MODEL_NOT_FOUND');
  t.notMatch(asBase.body, dataDir, 'no absolute path in the error');
});

t.test('finding 5: checkpoint shard names must stay inside the checkpoint', async (t) => {
  const dir = join(root, 'ckpt');
  await mkdir(join(dir, 'sub'), { recursive: true });
  const cases = ['/etc/passwd', '../outside.safetensors', 'sub/../../x.safetensors', 5];
  const script = `
import json, sys
from trainer.io.hf_checkpoint import weight_files, CheckpointError
for name in json.loads(sys.argv[2]):
    with open(sys.argv[1] + "/model.safetensors.index.json", "w") as f: json.dump({"weight_map": {"a": name}}, f)
    try:
        weight_files(sys.argv[1]); print("accepted")
    except CheckpointError as e:
        print("refused:", e)
`;
  const run = spawnSync('/usr/bin/python3', ['-c', script, dir, JSON.stringify(cases)], { env: { ...process.env, PYTHONPATH: process.cwd() }, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  t.equal(lines.length, cases.length);
  for (const line of lines) t.match(line, /^refused: /);
  t.notMatch(run.stdout, /root:x:0/, 'no bytes of the named file');
});

t.test('finding 6: free space is read again during extraction; a filling disk stops it and leaves nothing', async (t) => {
  const { extractArchive } = await import('../src/datasets/archive.ts');
  const { DatasetError, DatasetErrorCodes } = await import('../src/datasets/errors.ts');
  const dir = join(root, 'filling');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'train.jsonl'), lumpy(8 * 1024 * 1024));
  const archive = await tarGz(dir, join(root, 'filling.tar.gz'));
  const checks: number[] = [];
  const dest = join(root, 'filling-out');
  // The volume "fills up" once 3 MiB are written, as another writer on it would make it.
  const err = await extractArchive(archive, dest, {
    maxBytes: 1e9,
    maxFiles: 10,
    maxFileBytes: 1e9,
    checkSpaceEvery: 1024 * 1024,
    checkSpace: async (written) => {
      checks.push(written);
      if (written > 3 * 1024 * 1024) throw new DatasetError(DatasetErrorCodes.INSUFFICIENT_STORAGE, 'the disk filled up');
    },
  }).then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, 'PSA_INSUFFICIENT_STORAGE', 'the extraction stopped with 507');
  t.ok(checks.length >= 2 && checks[0] === 0, `free space read before the first byte and again while writing (at ${checks.join(', ')} bytes)`);
  t.notOk((await readdir(root)).includes('filling-out'), 'the partial extraction is removed');
});

import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, truncate, writeFile, appendFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PsaErrorCodes, type PsaErrorCode } from '../src/psa/errors.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { PYTHON, REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { tinyPackage } from '../scripts/lib/random-package.ts';

const source = await tinyPackage();
const work = await mkdtemp(join(tmpdir(), 'psa-broken-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

/** A private copy of the package, changed by `damage`; `resign` updates psa.json's sha256. */
async function broken(name: string, damage: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(work, name);
  await cp(source, dir, { recursive: true });
  await damage(dir);
  return dir;
}

async function resign(dir: string, file: string): Promise<void> {
  const manifestPath = join(dir, 'psa.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  manifest.files[file] = createHash('sha256')
    .update(await readFile(join(dir, file)))
    .digest('hex');
  await writeFile(manifestPath, JSON.stringify(manifest));
}

async function editOnnx(dir: string, file: string, action: string, name: string, value: string): Promise<void> {
  await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/onnx_edit.py'), join(dir, file), action, name, value]);
  await resign(dir, file);
}

async function expectError(t: Test, dir: string, code: PsaErrorCode, mentions: RegExp[]): Promise<void> {
  const err = await PsaRuntime.load(dir, { device: 'cpu' }).then(
    async (rt) => {
      await rt.close();
      return null;
    },
    (e: unknown) => e as { code?: string; message: string },
  );
  t.ok(err, 'loading fails');
  t.equal(err?.code, code);
  for (const m of mentions) t.match(err?.message, m);
}

t.test('the intact package loads', async (t) => {
  const rt = await PsaRuntime.load(source, { device: 'cpu' });
  t.equal(rt.provider, 'cpu');
  await rt.close();
  await rt.close(); // idempotent
});

t.test('missing file', async (t) => {
  const dir = await broken('missing', (d) => rm(join(d, 'onnx/safety_head.onnx')));
  await expectError(t, dir, PsaErrorCodes.PACKAGE_FILE_MISSING, [/safety_head\.onnx/]);
});

t.test('renamed tensor', async (t) => {
  const dir = await broken('renamed', (d) => editOnnx(d, 'onnx/safety_head.onnx', 'rename-input', 'query_embeds', 'query_embeddings'));
  await expectError(t, dir, PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, [/safety_head\.onnx/, /query_embeds/]);
});

t.test('wrong dtype', async (t) => {
  const dir = await broken('dtype', (d) => editOnnx(d, 'onnx/safety_head.onnx', 'set-input-type', 'query_mask', 'INT32'));
  await expectError(t, dir, PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, [/safety_head\.onnx/, /query_mask/, /int32/, /int64/]);
});

t.test('truncated ONNX', async (t) => {
  const dir = await broken('truncated', async (d) => {
    const file = join(d, 'onnx/decoder_model_merged.onnx');
    await truncate(file, Math.floor((await stat(file)).size / 2));
    await resign(d, 'onnx/decoder_model_merged.onnx');
  });
  await expectError(t, dir, PsaErrorCodes.PACKAGE_ONNX_INVALID, [/decoder_model_merged\.onnx/]);
});

t.test('checksum mismatch', async (t) => {
  const dir = await broken('checksum', (d) => appendFile(join(d, 'tokenizer.json'), ' '));
  await expectError(t, dir, PsaErrorCodes.PACKAGE_CHECKSUM_MISMATCH, [/tokenizer\.json/, /sha256/]);
});

t.test('psa.json is not JSON', async (t) => {
  const dir = await broken('notjson', (d) => writeFile(join(d, 'psa.json'), '{"format": '));
  await expectError(t, dir, PsaErrorCodes.PACKAGE_MANIFEST_INVALID, [/psa\.json/, /JSON/]);
});

t.test('psa.json misses a field', async (t) => {
  const dir = await broken('nofield', async (d) => {
    const m = JSON.parse(await readFile(join(d, 'psa.json'), 'utf8'));
    delete m.onnx.decoder;
    await writeFile(join(d, 'psa.json'), JSON.stringify(m));
  });
  await expectError(t, dir, PsaErrorCodes.PACKAGE_MANIFEST_INVALID, [/\/onnx\/decoder/]);
});

t.test('psa.json with a foreign taxonomy', async (t) => {
  const dir = await broken('taxonomy', async (d) => {
    const m = JSON.parse(await readFile(join(d, 'psa.json'), 'utf8'));
    m.taxonomy.types[0].label = 'elections';
    await writeFile(join(d, 'psa.json'), JSON.stringify(m));
  });
  await expectError(t, dir, PsaErrorCodes.PACKAGE_MANIFEST_INVALID, [/taxonomy\.types/, /elections/]);
});

t.test('no package at all', async (t) => {
  await expectError(t, join(work, 'nothing-here'), PsaErrorCodes.PACKAGE_NOT_FOUND, [/nothing-here/]);
});

t.test('CUDA requested where no CUDA provider exists is an error, auto falls back', async (t) => {
  const err = await PsaRuntime.load(source, { device: 'cuda' }).then(
    (rt) => rt.close().then(() => null),
    (e: { code?: string }) => e,
  );
  t.equal(err?.code, PsaErrorCodes.EXECUTION_PROVIDER_UNAVAILABLE);
  const warnings: string[] = [];
  const logger = { debug() {}, info() {}, error() {}, warn: (_: object, msg?: string) => void warnings.push(msg ?? '') };
  const rt = await PsaRuntime.load(source, { device: 'auto', logger });
  t.equal(rt.provider, 'cpu');
  t.equal(warnings.length, 1, 'one warning, not one per graph');
  await rt.close();
});

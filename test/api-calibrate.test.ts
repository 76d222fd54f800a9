import t from 'tap';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { runEvaluation } from '../src/eval/run.ts';
import { testApp } from './helpers/app.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = import.meta.resolve('tsx');
const work = await mkdtemp(join(tmpdir(), 'psa-calibrate-test-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const modelsDir = join(work, 'models');
const packageDir = join(modelsDir, 'guard-v1');
await cp(await tinyPackage(), packageDir, { recursive: true });
const dataDir = join(work, 'data');
await mkdir(dataDir, { recursive: true });
const ADMIN = 'admin-key-0123456789';
const INFER = 'infer-key-0123456789';
const env = { MODELS_DIR: modelsDir, PSA_MODEL: packageDir, DATA_DIR: dataDir, API_KEYS: `${ADMIN}=admin,${INFER}=infer`, MAX_ITEMS: '32', MIN_FREE_DISK_BYTES: '0' };

let app: FastifyInstance = (await testApp(env)).app;
t.teardown(() => app.close());
const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object, key = ADMIN) => app.inject({ method, url, ...(payload && { payload }), headers: { authorization: `Bearer ${key}` } });
const calibrate = (payload: object, key = ADMIN) => call('POST', '/v1/models/guard-v1/calibrate', payload, key);

const WORDS = ['river', 'lamp', 'vote', 'knife', 'garden', 'secret', 'bank', 'doctor', 'cloud', 'street', 'poison', 'song'];
const PROMPTS = Array.from({ length: 24 }, (_, i) => `${WORDS[i % 12]} ${WORDS[(i * 5 + 3) % 12]} number ${i}: what about it?`);

interface Scored {
  prompt: string;
  risk: number;
  refused: boolean;
  level: number[];
  type: number[];
}
async function scoreAll(policy?: string): Promise<(Scored & { flagged: boolean })[]> {
  const res = await call('POST', '/v1/moderate', { items: PROMPTS.map((prompt) => ({ prompt })), ...(policy && { policy }) }, INFER);
  // No assertion here: this also runs before the subtests, where tap takes none.
  if (res.statusCode !== 200) throw new Error(`moderate answered ${res.statusCode}: ${res.body.slice(0, 200)}`);
  return res.json().items.map((it: { concepts: { level: { scores: Record<string, number> }; type: { scores: Record<string, number> } }; decision: string; flagged: boolean }, i: number) => ({
    prompt: PROMPTS[i]!,
    risk: it.concepts.level.scores.caution! + it.concepts.level.scores.refuse!,
    refused: it.decision === 'refuse',
    flagged: it.flagged,
    level: Object.values(it.concepts.level.scores),
    type: Object.values(it.concepts.type.scores),
  }));
}

// Labels by construction: the 12 highest-risk prompts are to be refused (illegal_risk), the other 12 safe.
const before = await scoreAll();
const ranked = [...before].sort((a, b) => b.risk - a.risk);
const positive = new Set(ranked.slice(0, 12).map((s) => s.prompt));
const line = (prompt: string, unsafe: boolean, id: string) =>
  JSON.stringify({
    id,
    conversations: [
      { from: 'human', value: prompt },
      { from: 'gpt', value: 'ok' },
    ],
    safe_type: unsafe ? 1 : 6,
    safe_level: unsafe ? 3 : 0,
  });
async function writeSet(dir: string, file: string, unsafe: (p: string) => boolean) {
  await mkdir(join(dataDir, dir), { recursive: true });
  await writeFile(join(dataDir, dir, file), PROMPTS.map((p, i) => line(p, unsafe(p), `${file.split('.')[0]}-${i}`)).join('\n') + '\n');
}
await writeSet('evalset', 'eval.jsonl', (p) => positive.has(p));
await writeSet('reversed', 'eval.jsonl', (p) => !positive.has(p));
await writeSet('ds', 'train.jsonl', (p) => positive.has(p));
await writeSet('ds', 'val.jsonl', (p) => positive.has(p));

t.test('recall 1 on a set labelled by rank: the threshold is the lowest positive score, and serving flags exactly those', async (t) => {
  const res = await calibrate({ name: 'rank', path: 'evalset', target: { recall: 1 }, bootstrap: { resamples: 300, seed: 2 } });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const body = res.json();
  t.equal(body.policy, 'calibrated-rank');
  t.same(body.data, { path: 'evalset', file: 'eval.jsonl' });
  const r = body.report;
  t.equal(r.met, true);
  t.equal(r.items, 24);
  t.equal(r.positives, 12);
  const theta = r.policy.flag.threshold;
  // The known answer: flag every positive not already refused, nothing scoring below the lowest of them.
  const needed = before.filter((s) => positive.has(s.prompt) && !s.refused).map((s) => s.risk);
  const lowest = Math.min(...needed);
  const below = Math.max(...before.map((s) => s.risk).filter((x) => x < lowest));
  t.ok(theta <= lowest && theta > below, `threshold ${theta} in (${below}, ${lowest}]`);
  const safeRefused = before.filter((s) => !positive.has(s.prompt) && s.refused).length;
  t.equal(r.achieved.recall.value, 1);
  t.equal(r.achieved.over_refusal.value, safeRefused / 12, 'only refused safe items are flagged');
  for (const iv of [r.achieved.recall, r.achieved.over_refusal]) t.ok(iv.ci[0] <= iv.value && iv.value <= iv.ci[1], `CI ${iv.ci} holds ${iv.value}`);
  t.same(r.achieved.bootstrap, { resamples: 300, seed: 2, level: 0.95, method: 'percentile' });
  t.equal(body.temperature.written, false);
  t.equal(body.temperature.file, null, 'the package has no temperature file yet');

  const served = await scoreAll('calibrated-rank');
  served.forEach((s) => t.equal(s.flagged, positive.has(s.prompt) || s.refused, `${s.prompt}: flagged ${s.flagged}`));
});

t.test('a target the data cannot meet answers 409 with the best achievable figures, and stores nothing', async (t) => {
  const res = await calibrate({ name: 'rev', path: 'reversed', target: { recall: 1, max_over_refusal: 0 } });
  t.equal(res.statusCode, 409);
  const err = res.json().error;
  t.equal(err.code, 'PSA_CALIBRATION_TARGET_UNREACHABLE');
  t.match(err.message, /no policy meets the target on these 24 items/);
  t.equal(err.details.report.met, false);
  t.ok(err.details.report.best.over_refusal_at_recall.over_refusal > 0, 'recall 1 costs over-refusal');
  t.ok(err.details.report.best.recall_within_over_refusal.recall < 1);
  t.equal((await call('GET', '/v1/policies/calibrated-rev')).statusCode, 404);
});

let temps = { level: 1, type: 1 };
t.test('temperature scaling: fitted, written beside the package, applied to the probabilities served', async (t) => {
  const res = await calibrate({ name: 'temp', path: 'evalset', target: { recall: 1 }, fit_temperature: true, make_default: true });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const body = res.json();
  t.equal(body.temperature.written, true);
  t.equal(body.temperature.file, 'temperature.json');
  t.equal(body.default, true);
  temps = { level: body.temperature.level, type: body.temperature.type };
  const file = JSON.parse(await readFile(join(packageDir, 'temperature.json'), 'utf8'));
  t.same([file.level, file.type], [temps.level, temps.type]);
  const rel = body.report.temperature;
  t.ok(rel.level.nll_after <= rel.level.nll_before + 1e-12, `level NLL ${rel.level.nll_before} -> ${rel.level.nll_after}`);
  t.ok(rel.type.nll_after <= rel.type.nll_before + 1e-12, 'type NLL does not rise');
  t.equal(rel.ece_bins, 15);
  const after = await scoreAll();
  const scaled = (p: number[], T: number) => {
    const e = p.map((v) => Math.exp(Math.log(v) / T));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  after.forEach((s, i) => {
    const want = scaled(before[i]!.level, temps.level);
    t.ok(
      s.level.every((v, k) => Math.abs(v - want[k]!) < 1e-6),
      `level probabilities of item ${i} are softmax(logits / ${temps.level.toFixed(3)})`,
    );
    const wantType = scaled(before[i]!.type, temps.type);
    t.ok(
      s.type.every((v, k) => Math.abs(v - wantType[k]!) < 1e-6),
      `type probabilities of item ${i}`,
    );
  });
  const served = await scoreAll();
  const byName = await scoreAll('calibrated-temp');
  t.same(
    served.map((s) => s.flagged),
    byName.map((s) => s.flagged),
    'the default is calibrated-temp',
  );
  t.ok(
    byName.every((s) => s.flagged === true || !positive.has(s.prompt)),
    'every positive flagged under the calibrated probabilities',
  );
});

t.test("a stored dataset's val split, by id", async (t) => {
  const reg = await call('POST', '/v1/datasets', { path: 'ds' });
  t.equal(reg.statusCode, 201, reg.body.slice(0, 200));
  const id = reg.json().id;
  const res = await calibrate({ name: 'fromds', dataset: id, target: { max_over_refusal: 0.5 } });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  t.same(res.json().data, { dataset: id, split: 'val', file: 'val.jsonl' });
  t.ok(res.json().report.achieved.over_refusal.value <= 0.5);
  t.equal(res.json().temperature.file, 'temperature.json', 'scored with the temperatures the package now has');
});

t.test('bad input answers 4xx with stable codes', async (t) => {
  const cases: [string, () => ReturnType<typeof call>, number, string][] = [
    ['unknown policy name', () => call('POST', '/v1/moderate', { prompt: 'hi', policy: 'calibrated-nope' }, INFER), 400, 'PSA_UNKNOWN_POLICY'],
    ['a name that is no policy name', () => call('POST', '/v1/moderate', { prompt: 'hi', policy: 'strict' }, INFER), 400, 'PSA_UNKNOWN_POLICY'],
    ['unknown name on chat', () => call('POST', '/v1/chat', { prompt: 'hi', policy: 'calibrated-nope', max_tokens: 1 }, INFER), 400, 'PSA_UNKNOWN_POLICY'],
    ['both dataset and path', () => calibrate({ name: 'x', path: 'evalset', dataset: 'ds-0000000000000000', target: { recall: 0.9 } }), 400, 'PSA_BAD_REQUEST'],
    ['neither dataset nor path', () => calibrate({ name: 'x', target: { recall: 0.9 } }), 400, 'PSA_BAD_REQUEST'],
    ['an empty target', () => calibrate({ name: 'x', path: 'evalset', target: {} }), 400, 'PSA_BAD_REQUEST'],
    ['recall above 1', () => calibrate({ name: 'x', path: 'evalset', target: { recall: 1.5 } }), 400, 'PSA_BAD_REQUEST'],
    ['an unknown type in target.recall', () => calibrate({ name: 'x', path: 'evalset', target: { recall: { weapons: 0.9 } } }), 400, 'PSA_BAD_REQUEST'],
    ['a type without items', () => calibrate({ name: 'x', path: 'evalset', target: { recall: { privacy: 0.9 } } }), 422, 'PSA_DATASET_INVALID'],
    ['a bad name', () => calibrate({ name: 'Bad Name', path: 'evalset', target: { recall: 0.9 } }), 400, 'PSA_BAD_REQUEST'],
    ['a path out of DATA_DIR', () => calibrate({ name: 'x', path: '../models', target: { recall: 0.9 } }), 400, 'PSA_BAD_REQUEST'],
    ['a missing path', () => calibrate({ name: 'x', path: 'nothing-here', target: { recall: 0.9 } }), 404, 'PSA_DATASET_NOT_FOUND'],
    ['an unknown dataset', () => calibrate({ name: 'x', dataset: 'ds-0000000000000000', target: { recall: 0.9 } }), 404, 'PSA_DATASET_NOT_FOUND'],
    ['an unknown model', () => call('POST', '/v1/models/nope/calibrate', { name: 'x', path: 'evalset', target: { recall: 0.9 } }), 404, 'PSA_MODEL_NOT_FOUND'],
    ['an existing name', () => calibrate({ name: 'rank', path: 'evalset', target: { recall: 0.9 } }), 409, 'PSA_POLICY_EXISTS'],
    ['an infer key', () => calibrate({ name: 'x', path: 'evalset', target: { recall: 0.9 } }, INFER), 403, 'PSA_FORBIDDEN'],
    ['default: an unknown policy', () => call('PUT', '/v1/policies/default', { policy: 'calibrated-nope' }), 404, 'PSA_POLICY_NOT_FOUND'],
    ['deleting the default', () => call('DELETE', '/v1/policies/calibrated-temp'), 409, 'PSA_POLICY_IN_USE'],
    ['reading an unknown policy', () => call('GET', '/v1/policies/calibrated-nope'), 404, 'PSA_POLICY_NOT_FOUND'],
  ];
  for (const [what, send, status, code] of cases) {
    const res = await send();
    t.equal(res.statusCode, status, `${what}: ${res.body.slice(0, 200)}`);
    t.equal(res.json().error.code, code, what);
  }
  const tooMany = await testApp({ ...env, CALIBRATE_MAX_ITEMS: '10' });
  const res = await tooMany.app.inject({ method: 'POST', url: '/v1/models/guard-v1/calibrate', payload: { name: 'x', path: 'evalset', target: { recall: 0.9 } }, headers: { authorization: `Bearer ${ADMIN}` } });
  await tooMany.app.close();
  t.equal(res.statusCode, 400);
  t.equal(res.json().error.code, 'PSA_TOO_MANY_ITEMS');
  t.match(res.json().error.message, /CALIBRATE_MAX_ITEMS/);
});

t.test('named policies and the default survive a restart; the CLI stores into the same place', async (t) => {
  const served = await scoreAll();
  await app.close();
  app = (await testApp(env)).app;
  const list = (await call('GET', '/v1/policies', undefined, INFER)).json();
  t.equal(list.default, 'calibrated-temp');
  t.same(
    list.policies.map((p: { name: string }) => p.name),
    ['calibrated-fromds', 'calibrated-rank', 'calibrated-temp'],
  );
  t.same(list.policies.find((p: { name: string }) => p.name === 'calibrated-temp').model.temperature, temps);
  const again = await scoreAll();
  t.same(
    again.map((s) => s.flagged),
    served.map((s) => s.flagged),
    'same flags after the restart (default and temperature kept)',
  );
  t.same(
    again.map((s) => s.level),
    served.map((s) => s.level),
    'same probabilities',
  );

  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--import', TSX, join(ROOT, 'scripts', 'calibrate.ts'), ...args], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '', DATA_DIR: dataDir } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
  const ok = await cli(['--model', packageDir, '--data', join(dataDir, 'evalset'), '--name', 'cli', '--recall', '1']);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /policy calibrated-cli: threshold/);
  const fromCli = await call('GET', '/v1/policies/calibrated-cli');
  t.equal(fromCli.statusCode, 200, 'the server sees what the CLI stored');
  const fromRoute = (await call('GET', '/v1/policies/calibrated-temp')).json();
  t.ok(Math.abs(fromCli.json().policy.flag.threshold - fromRoute.policy.flag.threshold) < 1e-6, 'the same data, target and temperature give the threshold the route chose');
  const unreachable = await cli(['--model', packageDir, '--data', join(dataDir, 'reversed'), '--name', 'cli-rev', '--recall', '1', '--max-over-refusal', '0']);
  t.equal(unreachable.code, 3, unreachable.stderr);
  t.match(unreachable.stderr, /PSA_CALIBRATION_TARGET_UNREACHABLE/);
  const usage = await cli(['--model', packageDir, '--data', join(dataDir, 'evalset'), '--name', 'x']);
  t.equal(usage.code, 2, 'no target is a usage error');

  t.equal((await call('PUT', '/v1/policies/default', { policy: null })).json().default, null);
  t.equal((await call('DELETE', '/v1/policies/calibrated-rank')).statusCode, 200);
  t.equal((await call('GET', '/v1/policies/calibrated-rank')).statusCode, 404);
});

t.test('the evaluation report shows ECE before and after the package temperature', async (t) => {
  const { report } = await runEvaluation({ model: packageDir, data: join(dataDir, 'evalset'), out: join(work, 'eval'), charts: false });
  const c = report.calibration!;
  t.equal(c.bins, 15);
  t.equal(c.temperature_file, true);
  t.equal(c.level.temperature, temps.level);
  t.type(c.level.ece_before, 'number');
  t.type(c.level.ece_after, 'number');
  t.ok(c.level.nll_after <= c.level.nll_before + 1e-12);
  t.match(await readFile(join(work, 'eval', 'report.md'), 'utf8'), /## Reliability \(expected calibration error, 15 bins\)/);
});

t.test('the OpenAPI document has the calibration and policy routes', async (t) => {
  const doc = (await call('GET', '/openapi.json')).json();
  for (const p of ['/v1/models/{id}/calibrate', '/v1/policies', '/v1/policies/{name}', '/v1/policies/default']) t.ok(doc.paths[p], p);
  await stat(join(packageDir, 'temperature.json'));
});

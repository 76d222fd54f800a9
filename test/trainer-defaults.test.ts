import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PYTHON, REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { resolveTrainer } from '../src/training/job-types.ts';
import { JOB_DEFAULTS, LORA_DEFAULTS, STAGE_DEFAULTS } from '../src/training/trainer-defaults.ts';

// The trainer's defaults (trainer/train/job.py, for job files that leave settings out) are the
// API's: the trainer itself parses a job file that sets nothing, and what it fills in is compared.

const work = await mkdtemp(join(tmpdir(), 'psa-trainer-defaults-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
await mkdir(join(work, 'base'));
await mkdir(join(work, 'data'));
await writeFile(join(work, 'base', 'config.json'), '{}');
await writeFile(join(work, 'data', 'manifest.json'), '{}');

const PARSE = `
import dataclasses, json, sys
from trainer.train.job import parse_job
job = parse_job(json.loads(sys.argv[1]))
print(json.dumps(dataclasses.asdict(job)))
`;

interface PyStage extends Record<string, unknown> {
  lora: Record<string, unknown> | null;
}
interface PyJob extends Record<string, unknown> {
  stage1: PyStage;
  stage2: PyStage;
}

async function trainerDefaults(): Promise<PyJob> {
  const job = { base: join(work, 'base'), data: join(work, 'data'), workdir: join(work, 'run') };
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', PARSE, JSON.stringify(job)], { cwd: REPO_ROOT, env: { ...process.env, PYTHONPATH: REPO_ROOT } });
  return JSON.parse(stdout) as PyJob;
}

t.test("the trainer fills in the API's defaults", async (t) => {
  const py = await trainerDefaults();
  for (const stage of ['stage1', 'stage2'] as const) {
    for (const [key, value] of Object.entries(STAGE_DEFAULTS)) t.equal(py[stage][key], value, `${stage}.${key}`);
  }
  t.same(py.stage2.lora, LORA_DEFAULTS, 'stage2.lora');
  t.equal(py.stage1.lora, null, 'no LoRA in stage 1');
  for (const [key, value] of Object.entries(JOB_DEFAULTS)) t.equal(py[key], value, key);
  // A default the trainer has and the API does not name would be a second source of truth.
  const named = new Set([...Object.keys(STAGE_DEFAULTS), 'lora', 'weight_decay']);
  t.same(
    Object.keys(py.stage1).filter((k) => !named.has(k)),
    [],
    'every stage setting of the trainer has its default here (weight_decay: not an API setting, 0)',
  );
  t.equal(py.stage1.weight_decay, 0);
});

t.test('a request that sets nothing resolves to the same settings the trainer would pick', async (t) => {
  const py = await trainerDefaults();
  const resolved = resolveTrainer({ dataset: 'ds-x', output_name: 'x' });
  for (const stage of ['stage1', 'stage2'] as const) {
    for (const [key, value] of Object.entries(resolved[stage])) t.same(py[stage][key], value, `${stage}.${key}`);
  }
  t.equal(py.seed, resolved.seed);
  t.equal(py.checkpoint_every_steps, resolved.checkpoint_every_steps);
  t.equal(py.activation_checkpointing, resolved.activation_checkpointing);
});

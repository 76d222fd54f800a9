import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { PYTHON, REPO_ROOT, runTrainer } from '../scripts/lib/trainer-cli.ts';
import { trainerCommand } from '../src/training/trainer-process.ts';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';

type TrainEvent = { event: string; stage?: string; step?: number; [key: string]: unknown };
type Run = { code: number | null; signal: NodeJS.Signals | null; events: TrainEvent[]; stderr: string };

const base = await tinyPackage();
const work = await mkdtemp(join(tmpdir(), 'psa-train-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const data = join(work, 'data');
await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/make_prepared_dataset.py'), '--package', base, '--out', data, '--train', '48', '--val', '16']);

/** 48 examples, batch 4: 48 stage-1 steps and 24 stage-2 steps, a checkpoint every 5. */
async function jobFile(name: string, changes: Record<string, unknown> = {}): Promise<string> {
  const job = {
    base,
    data,
    workdir: join(work, name),
    stages: ['stage1', 'stage2'],
    stage1: { epochs: 4, lr: 3e-3, batch_size: 4, concept_weight: 10.0, weight_decay: 0.0 },
    stage2: { epochs: 2, lr: 3e-3, batch_size: 4, concept_weight: 10.0, lora: { r: 4, alpha: 8, dropout: 0.05 } },
    seed: 0,
    checkpoint_every_steps: 5,
    device: 'cpu',
    max_steps: null,
    ...changes,
  };
  const path = join(work, `${name}.json`);
  await writeFile(path, JSON.stringify(job));
  return path;
}

/**
 * Runs `python -m trainer train` (under torch.distributed.run when processes > 1); every stdout
 * line must be a JSON event. `act` may signal the child.
 */
function train(job: string, act?: (e: TrainEvent, kill: (s: NodeJS.Signals) => void) => void, processes = 1): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, trainerCommand(['train', '--job', job], processes), {
      // One thread: the tiny model gains nothing from more, and a busy CI box slows threaded torch 3x.
      cwd: REPO_ROOT,
      env: { ...process.env, PYTHONPATH: REPO_ROOT, OMP_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: TrainEvent[] = [];
    let stderr = '';
    let signalled = false;
    child.stderr.on('data', (d) => (stderr += d));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const e = JSON.parse(line) as TrainEvent; // throws (fails the test) on any non-JSON stdout
      events.push(e);
      act?.(e, (s) => {
        if (!signalled) child.kill(s);
        signalled = true;
      });
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, events, stderr }));
  });
}

const steps = (r: Run, stage: string) => r.events.filter((e) => e.event === 'step' && e.stage === stage);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const num = (e: TrainEvent, k: string) => e[k] as number;

async function safetensorsKeys(path: string): Promise<string[]> {
  const buf = await readFile(path);
  const size = Number(buf.readBigUInt64LE(0));
  return Object.keys(JSON.parse(buf.subarray(8, 8 + size).toString('utf8'))).filter((k) => k !== '__metadata__');
}

let reference: Run | undefined;

t.test('stage 1 + stage 2 train, report progress in order, and export as a package', async (t) => {
  const started = Date.now();
  const run = await train(await jobFile('full'));
  reference = run;
  t.equal(run.code, 0, 'exits 0', { stderr: run.stderr.slice(-2000) });
  const milestones = run.events.filter((e) => !['step', 'checkpoint', 'eval'].includes(e.event)).map((e) => `${e.event}:${e.stage ?? ''}`);
  t.same(milestones, ['start:stage1', 'stage_done:stage1', 'start:stage2', 'stage_done:stage2', 'done:']);
  t.match(run.events[0], { event: 'start', stage: 'stage1', total_steps: 48, epochs: 4, resumed_from: null });
  const s1 = steps(run, 'stage1');
  const s2 = steps(run, 'stage2');
  t.same(
    s1.map((e) => e.step),
    Array.from({ length: 48 }, (_, i) => i + 1),
    'stage 1 steps 1..48',
  );
  t.same(
    s2.map((e) => e.step),
    Array.from({ length: 24 }, (_, i) => i + 1),
    'stage 2 steps 1..24',
  );
  for (const k of ['loss', 'lm_loss', 'concept_loss', 'level_acc', 'type_acc', 'lr', 'examples_per_s', 'epoch', 'total_steps']) {
    t.type(s1[0]?.[k], 'number', `step events carry ${k}`);
  }
  t.same([s1[0]?.epoch, s1[12]?.epoch, s1[47]?.epoch], [1, 2, 4], 'epochs count from 1');

  const all = [...s1, ...s2];
  const firstLoss = mean(all.slice(0, 6).map((e) => num(e, 'loss')));
  const lastLoss = mean(all.slice(-6).map((e) => num(e, 'loss')));
  t.ok(lastLoss < 0.6 * firstLoss, `loss falls: ${firstLoss.toFixed(2)} -> ${lastLoss.toFixed(2)}`);
  const acc = (es: TrainEvent[]) => mean(es.map((e) => (num(e, 'level_acc') + num(e, 'type_acc')) / 2));
  const firstAcc = acc(all.slice(0, 10));
  const lastAcc = acc(all.slice(-10));
  t.ok(lastAcc > firstAcc + 0.25, `concept accuracy rises: ${firstAcc.toFixed(2)} -> ${lastAcc.toFixed(2)}`);

  const checkpoints = run.events.filter((e) => e.event === 'checkpoint');
  t.same(
    checkpoints.filter((e) => e.stage === 'stage1').map((e) => e.step),
    [5, 10, 12, 15, 20, 24, 25, 30, 35, 36, 40, 45, 48],
    'every 5 steps and at each epoch end',
  );
  t.same((await readdir(join(work, 'full', 'checkpoints'))).sort(), ['stage1-step45', 'stage1-step48', 'stage2-step20', 'stage2-step24'], 'the last 2 per stage are kept');

  const done = run.events.at(-1)!;
  t.equal(done.output, join(work, 'full', 'final'));
  const final = done.output as string;
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) {
    t.ok(existsSync(join(final, f)), `final/${f}`);
  }
  t.ok(JSON.parse(await readFile(join(final, 'config.json'), 'utf8')).psa_config, 'config.json keeps psa_config');
  t.comment(`training took ${Date.now() - started} ms`);

  const pkg = join(work, 'package');
  await runTrainer(['export', '--checkpoint', final, '--out', pkg]);
  const keys = await safetensorsKeys(join(pkg, 'model.safetensors'));
  t.same(
    keys.filter((k) => k.includes('lora')),
    [],
    'no LoRA keys: the deltas are merged',
  );
  t.ok(keys.includes('language_model.model.layers.0.self_attn.q_proj.weight'), 'transformers parameter names');
  t.ok(
    keys.some((k) => k.startsWith('psa.')),
    'safety modules are saved',
  );
  t.ok(existsSync(join(pkg, 'psa.json')) && existsSync(join(pkg, 'onnx', 'safety_head.onnx')), 'a complete package');
});

t.test('SIGKILL mid stage, restart: resumes from the checkpoint and matches an uninterrupted run', async (t) => {
  const job = await jobFile('killed');
  const midStage = (stage: string) => (e: TrainEvent, kill: (s: NodeJS.Signals) => void) => {
    if (e.event === 'checkpoint' && e.stage === stage) kill('SIGKILL');
  };
  const first = await train(job, midStage('stage1'));
  t.equal(first.signal, 'SIGKILL');
  const firstCheckpoint = first.events.find((e) => e.event === 'checkpoint')!.step!;

  const second = await train(job, midStage('stage2'));
  t.equal(second.signal, 'SIGKILL');
  const resumed = second.events[0]!;
  t.match(resumed, { event: 'start', stage: 'stage1', total_steps: 48 });
  const from = resumed.resumed_from as number;
  t.ok(from >= firstCheckpoint && from < 48, `stage 1 resumed from step ${from}`);
  t.equal(steps(second, 'stage1')[0]?.step, from + 1, 'step numbers continue');

  const third = await train(job);
  t.equal(third.code, 0, 'the restarted run completes', { stderr: third.stderr.slice(-2000) });
  t.match(third.events[0], { event: 'stage_done', stage: 'stage1', skipped: true }, 'a completed stage is not re-run');
  const start2 = third.events.find((e) => e.event === 'start')!;
  t.match(start2, { stage: 'stage2', total_steps: 24 });
  t.ok((start2.resumed_from as number) > 0, `stage 2 resumed from step ${start2.resumed_from}`);
  t.equal(steps(third, 'stage2')[0]?.step, (start2.resumed_from as number) + 1);
  t.equal(third.events.at(-1)?.event, 'done');

  // Same seed, same data order, restored optimizer and RNG: the losses are those of the uninterrupted run.
  const ref = reference!;
  for (const stage of ['stage1', 'stage2']) {
    const last = steps(third, stage).at(-1) ?? steps(second, stage).at(-1)!;
    const expected = steps(ref, stage).at(-1)!;
    t.equal(last.step, expected.step);
    t.ok(Math.abs(num(last, 'loss') - num(expected, 'loss')) < 1e-5, `${stage} final loss ${num(last, 'loss')} vs uninterrupted ${num(expected, 'loss')}`);
  }
});

t.test('SIGTERM: finishes the step, writes a checkpoint, exits 143', async (t) => {
  const run = await train(await jobFile('term'), (e, kill) => {
    if (e.event === 'step' && e.step === 2) kill('SIGTERM');
  });
  t.equal(run.code, 143, 'exits 143', { stderr: run.stderr.slice(-2000) });
  const last = run.events.at(-1)!;
  t.match(last, { event: 'checkpoint', stage: 'stage1' });
  t.ok(existsSync(last.path as string), 'the checkpoint exists');
});

t.test('a bad job file exits 2 and names the field', async (t) => {
  const bad = await train(await jobFile('bad', { stage1: { epochs: 1, lr: 'fast' } }));
  t.equal(bad.code, 2);
  t.match(bad.events.at(-1), { event: 'error', field: 'stage1.lr', message: /stage1\.lr/ });
  const noData = await train(await jobFile('nodata', { data: join(work, 'missing') }));
  t.equal(noData.code, 2);
  t.match(noData.events.at(-1), { event: 'error', field: 'data', message: /missing/ });
});

/**
 * Two processes reduce the same fp32 sums in another order (gloo's all-reduce, then the division
 * by global counts), so their losses agree to a few ulps of the loss, not to a fixed number of
 * decimals: measured relative differences are 1e-7 to 4e-7 (1.9e-5 absolute on losses near 50),
 * depending on the machine's BLAS. 2e-6 relative leaves room for that and still fails on any real
 * averaging error: a normalisation by the world size or by one rank's rows instead of the global
 * counts moves the loss by a factor of 2 (2 rows of 4 per rank), i.e. 5e-1 relative.
 */
const DP_REL_TOL = 2e-6;
function worstRelativeDiff(run: TrainEvent[], reference: TrainEvent[]): number {
  let worst = 0;
  for (const s of run) {
    const a = num(s, 'loss');
    const b = num(reference[s.step! - 1]!, 'loss');
    worst = Math.max(worst, Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12));
  }
  return worst;
}

t.test('two processes (gloo) give the losses of one process with the same global batch, and resume on one', async (t) => {
  // No dropout anywhere: stage 1 trains the safety modules only. Batch 4 over 2 ranks: 2 rows each.
  const stage1Only = { stages: ['stage1'], stage1: { epochs: 1, lr: 3e-3, batch_size: 4, concept_weight: 10.0, weight_decay: 0.0 }, checkpoint_every_steps: 4 };
  const single = await train(await jobFile('dp-one', stage1Only));
  t.equal(single.code, 0, single.stderr.slice(-2000));
  const interrupted = await train(
    await jobFile('dp-two', stage1Only),
    (e, kill) => {
      if (e.event === 'checkpoint' && e.step === 4) kill('SIGTERM');
    },
    2,
  );
  t.match(
    interrupted.events.find((e) => e.event === 'start'),
    { processes: 2 },
    'two processes started',
  );
  const two = steps(interrupted, 'stage1');
  t.ok(two.length >= 4, `the two-process run made ${two.length} steps before it was stopped`);
  t.ok(
    interrupted.events.some((e) => e.event === 'checkpoint'),
    'rank 0 wrote checkpoints',
  );
  const one = steps(single, 'stage1');
  const worst = worstRelativeDiff(two, one);
  t.ok(worst <= DP_REL_TOL, `max relative loss difference over ${two.length} steps: ${worst.toExponential(2)} (bound ${DP_REL_TOL})`);
  t.equal(new Set(interrupted.events.filter((e) => e.event === 'step').map((e) => e.step)).size, two.length, 'progress is reported once per step (rank 0)');

  // The same workdir resumed by one process continues the two-process run.
  const resumed = await train(await jobFile('dp-two', stage1Only));
  t.equal(resumed.code, 0, resumed.stderr.slice(-2000));
  const start = resumed.events.find((e) => e.event === 'start')!;
  t.ok(Number(start.resumed_from) >= 4, `resumed from step ${start.resumed_from}`);
  const resumedWorst = worstRelativeDiff(steps(resumed, 'stage1'), one);
  t.ok(resumedWorst <= DP_REL_TOL, `after resuming on one process the losses still match (max relative diff ${resumedWorst.toExponential(2)})`);
  t.equal(steps(resumed, 'stage1').at(-1)!.step, one.at(-1)!.step, 'and it runs to the same last step');
});

t.test('activation checkpointing changes memory, not results', async (t) => {
  const short = { stages: ['stage1'], max_steps: 3 };
  const plain = await train(await jobFile('ckpt-off', short));
  const recomputed = await train(await jobFile('ckpt-on', { ...short, activation_checkpointing: true }));
  t.equal(recomputed.code, 0, recomputed.stderr.slice(-2000));
  const a = steps(plain, 'stage1').map((e) => num(e, 'loss'));
  const b = steps(recomputed, 'stage1').map((e) => num(e, 'loss'));
  t.equal(b.length, 3);
  t.ok(
    a.every((v, i) => Math.abs(v - b[i]!) < 1e-5),
    `losses ${b.map((v) => v.toFixed(5)).join(', ')} vs ${a.map((v) => v.toFixed(5)).join(', ')}`,
  );
  const bad = await train(await jobFile('ckpt-bad', { activation_checkpointing: 'yes' }));
  t.equal(bad.code, 2);
  t.match(bad.events.at(-1), { event: 'error', field: 'activation_checkpointing' });
});

t.test('type_head_lr_scale: the type classifier takes a larger first step, nothing else changes', async (t) => {
  const short = { stages: ['stage1'], max_steps: 1 };
  const runs = await Promise.all(
    [1, 10].map(async (scale) => {
      const name = `head-lr-${scale}`;
      const run = await train(await jobFile(name, { ...short, stage1: { epochs: 1, lr: 3e-3, batch_size: 4, type_head_lr_scale: scale } }));
      t.equal(run.code, 0, run.stderr.slice(-2000));
      return readSafetensorsFile(join(work, name, 'final', 'model.safetensors'));
    }),
  );
  const before = await readSafetensorsFile(join(base, 'model.safetensors'));
  const maxStep = (after: Map<string, { data: unknown }>, key: string) => {
    const a = after.get(key)!.data as Float32Array;
    const b = before.get(key)!.data as Float32Array;
    return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  };
  for (const key of ['psa.head.type_head.weight', 'psa.head.type_head.bias']) {
    const ratio = maxStep(runs[1]!, key) / maxStep(runs[0]!, key);
    t.ok(Math.abs(ratio - 10) < 0.5, `${key}: first step ${ratio.toFixed(2)}x larger with type_head_lr_scale 10`);
  }
  for (const key of ['psa.head.level_head.weight', 'psa.head.q_proj.weight', 'psa.projector.fc1.weight', 'psa.tokens_a']) {
    t.equal(maxStep(runs[1]!, key), maxStep(runs[0]!, key), `${key}: the same step`);
  }
  const bad = await train(await jobFile('head-lr-bad', { stage1: { epochs: 1, type_head_lr_scale: 0 } }));
  t.equal(bad.code, 2);
  t.match(bad.events.at(-1), { event: 'error', field: 'stage1.type_head_lr_scale' });
});

t.test('a checkpoint with the older single optimizer group resumes exactly in the two-group layout', async (t) => {
  const { stdout } = await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/optimizer_regroup_check.py')], { cwd: REPO_ROOT });
  const r = JSON.parse(stdout) as { moments: number; after_step: number; lr_scales: number[]; refused: string };
  t.equal(r.moments, 0, 'the Adam moments land on the right parameters');
  t.equal(r.after_step, 0, 'the next step is the same as without regrouping');
  t.same(r.lr_scales, [1, 1]);
  t.match(r.refused, /the saved group has 3 parameters, the new groups 2/, 'a mismatch is refused');
});

t.test('reshard: weights as shards with an index, loaded by the runtime and the trainer, and back to one file', async (t) => {
  const { cp } = await import('node:fs/promises');
  const { loadPackage } = await import('../src/psa/package-loader.ts');
  const dir = join(work, 'resharded');
  await cp(base, dir, { recursive: true });
  const original = await readSafetensorsFile(join(base, 'model.safetensors'));
  const limit = 0.5 * 2 ** 20;
  const raw = (v: { data: ArrayBufferView }) => Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);

  const out = JSON.parse(await runTrainer(['reshard', '--package', dir, '--max-shard-mib', '0.5']));
  const shards = (out.weights as string[]).filter((f) => f.endsWith('.safetensors'));
  t.ok(shards.length >= 2, `${shards.length} shards`);
  t.same(
    shards,
    shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`),
  );
  t.notOk(existsSync(join(dir, 'model.safetensors')), 'the single file is gone');
  const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
  const seen = new Map<string, string>();
  for (const shard of shards) {
    const tensors = await readSafetensorsFile(join(dir, shard));
    const bytes = [...tensors.values()].reduce((sum, v) => sum + v.data.byteLength, 0);
    t.ok(bytes <= limit || tensors.size === 1, `${shard}: ${bytes} bytes of tensors`);
    for (const [name, v] of tensors) seen.set(name, raw(v).toString('base64'));
    t.same(
      [...tensors.keys()].filter((name) => index.weight_map[name] !== shard),
      [],
      `the index maps ${shard}'s tensors to it`,
    );
  }
  t.same([...seen.keys()].sort(), [...original.keys()].sort(), 'every tensor, once');
  t.ok(
    [...original].every(([k, v]) => seen.get(k) === raw(v).toString('base64')),
    'identical values',
  );
  const manifest = JSON.parse(await readFile(join(dir, 'psa.json'), 'utf8'));
  t.same(
    Object.keys(manifest.files)
      .filter((f: string) => f.includes('safetensors'))
      .sort(),
    [...out.weights].sort(),
    'psa.json lists the new files',
  );
  await loadPackage(dir); // checksums verified

  // The trainer reads the shard set: an export from it carries the same weights.
  const exported = join(work, 'from-shards');
  await runTrainer(['export', '--checkpoint', dir, '--out', exported]);
  const again = await readSafetensorsFile(join(exported, 'model.safetensors'));
  t.ok(
    [...original].every(([k, v]) => raw(again.get(k)!).equals(raw(v))),
    'the trainer loads the shards',
  );

  await runTrainer(['reshard', '--package', dir]);
  t.same(await readFile(join(dir, 'model.safetensors')), await readFile(join(base, 'model.safetensors')), 'one file again, byte for byte');
  t.notOk(existsSync(join(dir, 'model.safetensors.index.json')) || existsSync(join(dir, shards[0]!)), 'shards and index removed');
  await loadPackage(dir);

  const { appendFile } = await import('node:fs/promises');
  await appendFile(join(dir, 'model.safetensors'), 'x');
  const damaged = await runTrainer(['reshard', '--package', dir, '--max-shard-mib', '0.5']).then(
    () => '',
    (e: Error) => e.message,
  );
  t.match(damaged, /exited 2: .*checksum does not match psa\.json/s, 'a damaged package is refused, not re-signed');
  t.ok(existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json')), 'and left as it was');
  const zero = await runTrainer(['reshard', '--package', dir, '--max-shard-mib', '0']).then(
    () => '',
    (e: Error) => e.message,
  );
  t.match(zero, /exited 2: .*--max-shard-mib must be positive/s);
});

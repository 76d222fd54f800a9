import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PYTHON, REPO_ROOT } from '../scripts/lib/trainer-cli.ts';

// The trainer's OpenMP threads sleep while they wait (trainer/__init__.py): spinning ones took the
// cores OpenBLAS's threads needed. libgomp reads the policy once, when torch loads it, so this asks
// libgomp itself (OMP_DISPLAY_ENV) what it was given: a spin count of 0 is the passive policy.

async function spinCount(code: string, env: Record<string, string> = {}): Promise<string> {
  const { OMP_WAIT_POLICY: _policy, GOMP_SPINCOUNT: _spin, ...inherited } = process.env;
  const { stderr, stdout } = await promisify(execFile)(PYTHON, ['-c', code], { cwd: REPO_ROOT, env: { ...inherited, ...env, OMP_DISPLAY_ENV: 'VERBOSE' } });
  const m = /GOMP_SPINCOUNT = '(\d+)'/.exec(stderr + stdout);
  if (!m) throw new Error(`libgomp printed no GOMP_SPINCOUNT:\n${stderr}`);
  return m[1]!;
}

const RUN = 'import torch; torch.ones(4).sum()';

t.test('torch on its own spins (the default the trainer changes)', async (t) => {
  t.not(await spinCount(RUN), '0');
});

t.test('importing the trainer first makes the waiting threads sleep', async (t) => {
  t.equal(await spinCount(`import trainer; ${RUN}`), '0');
  t.equal(await spinCount(`import trainer.train.loop; ${RUN}`), '0', 'also when a submodule is the first import');
});

t.test("an operator's OMP_WAIT_POLICY is kept", async (t) => {
  t.not(await spinCount(`import trainer; ${RUN}`, { OMP_WAIT_POLICY: 'ACTIVE' }), '0');
});

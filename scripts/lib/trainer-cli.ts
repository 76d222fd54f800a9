import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../../src/training/trainer-process.ts';

export { REPO_ROOT };
/** Debian's interpreter has torch; the first python3 on PATH may not. */
export const PYTHON = process.env.PSA_PYTHON ?? '/usr/bin/python3';

/**
 * Runs a short `python -m trainer ...` command (build, export, reference) with `stdin` as its
 * input; resolves with stdout, rejects with stderr. Training jobs use runTrainerProcess instead.
 */
export function runTrainer(args: string[], stdin?: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(PYTHON, ['-m', 'trainer', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, PYTHONPATH: REPO_ROOT },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`trainer ${args[0]} exited ${code}: ${err.slice(-2000)}`))));
    child.stdin.end(stdin ?? '');
  });
}

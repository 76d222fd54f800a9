import { spawn } from 'node:child_process';

/** Interpreters tried for pip, in order: the first on PATH, then Debian's. */
const PIP_PYTHONS = ['python3', '/usr/bin/python3'];

/**
 * `pip install --no-deps --target DIR SPEC...`: packages go into a project-owned directory, never
 * into a system Python. Resolves when one interpreter's pip succeeds; rejects with each one's error.
 */
export async function pipInstallTarget(target: string, specs: string[], log: (line: string) => void = () => {}): Promise<void> {
  const failures: string[] = [];
  for (const python of PIP_PYTHONS) {
    const args = ['-m', 'pip', 'install', '--no-deps', '--disable-pip-version-check', '--no-input', '--target', target, ...specs];
    log(`${python} ${args.join(' ')}`);
    const result = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn(python, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.on('error', (e) => resolve({ code: -1, err: e.message }));
      child.on('close', (code) => resolve({ code, err }));
    });
    if (result.code === 0) return;
    failures.push(`${python}: exit ${result.code}: ${result.err.trim().split('\n').slice(-3).join(' ')}`);
  }
  throw new Error(`pip could not install ${specs.join(' ')} into ${target}: ${failures.join('; ')}`);
}

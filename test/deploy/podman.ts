import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Builds need these with podman in this kind of sandbox (see the README's Docker section). */
const buildEnv = { ...process.env, BUILDAH_ISOLATION: process.env.BUILDAH_ISOLATION ?? 'chroot', BUILDAH_FORMAT: 'docker' };

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; never throws on a non-zero exit (the caller asserts on `code`). */
export async function sh(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? buildEnv,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** The repository as git sees it (tracked and untracked-but-not-ignored files) in a fresh directory. */
export async function cleanCopy(repo: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'psa-deploy-src-'));
  const list = await sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo });
  if (list.code !== 0) throw new Error(`git ls-files failed: ${list.stderr}`);
  const files = list.stdout.split('\0').filter(Boolean);
  for (const f of files)
    await cp(join(repo, f), join(dir, f), { force: true, verbatimSymlinks: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // deleted in the working tree but not yet in the index
    });
  return dir;
}

export async function build(context: string, target: string, tag: string): Promise<{ seconds: number; result: CommandResult }> {
  const started = Date.now();
  const result = await sh('podman', ['build', '--pull=never', '--network', 'host', '--target', target, '-t', tag, context], { timeoutMs: 20 * 60_000 });
  return { seconds: (Date.now() - started) / 1000, result };
}

export async function imageSizeMb(tag: string): Promise<number> {
  const r = await sh('podman', ['image', 'inspect', '--format', '{{.Size}}', tag]);
  return Number(r.stdout.trim()) / 1e6;
}

export async function inspect(container: string, format: string): Promise<string> {
  return (await sh('podman', ['inspect', '--format', format, container])).stdout.trim();
}

export async function removeContainer(name: string): Promise<void> {
  await sh('podman', ['rm', '-f', '-t', '0', name]);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export async function waitReady(baseUrl: string, timeoutMs = 180_000): Promise<void> {
  await waitFor(`${baseUrl}/readyz`, async () => ((await fetch(`${baseUrl}/readyz`)).ok ? true : undefined), timeoutMs);
}

/** Starts a command and gives its exit as a promise, with the time it took. */
export function startCommand(cmd: string, args: string[]): Promise<{ code: number | null; seconds: number; output: string }> {
  const started = Date.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, seconds: (Date.now() - started) / 1000, output })));
}

export interface LogLine {
  msg?: string;
  reqId?: string;
  time?: number;
  signal?: string;
  [key: string]: unknown;
}

/** The container's pino lines (podman's own messages on stderr are skipped). */
export async function jsonLogs(container: string): Promise<LogLine[]> {
  const r = await sh('podman', ['logs', container]);
  return `${r.stdout}\n${r.stderr}`
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

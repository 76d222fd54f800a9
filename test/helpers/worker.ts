import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { REPO_ROOT } from '../../scripts/lib/trainer-cli.ts';

export interface WorkerProcess {
  child: ChildProcess;
  logs: string[];
  /** Resolves when the worker logs a line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** The real worker process (src/worker.ts), as production starts it. */
export function startWorker(env: Record<string, string>): WorkerProcess {
  return startNode(['--import', 'tsx', 'src/worker.ts'], { ...process.env, LOG_LEVEL: 'info', ...env }, REPO_ROOT);
}

/** `node ARGS` in `cwd` with exactly `env`, its stdout and stderr lines collected. */
export function startNode(args: string[], env: NodeJS.ProcessEnv, cwd: string): WorkerProcess {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onLine = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      logs.push(line);
      for (const w of [...waiters]) {
        if (w.pattern.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout!.on('data', onLine);
  child.stderr!.on('data', onLine);
  return {
    child,
    logs,
    waitFor(pattern, timeoutMs = 60_000) {
      const seen = logs.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`process never logged ${pattern}; last lines:\n${logs.slice(-15).join('\n')}`)), timeoutMs);
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await once(child, 'exit');
    },
  };
}

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface TrainerEvent {
  event: string;
  [key: string]: unknown;
}

export interface TrainerRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lastError: string | null;
  /** The last error event's verdict: false for bad input (exit 2 of a single process). */
  lastErrorRetryable: boolean | null;
}

export interface TrainerOptions {
  python: string;
  args: string[];
  /** More than one runs the trainer under torch.distributed.run, one process per GPU (gloo on CPU). */
  processes?: number;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onEvent?: (e: TrainerEvent) => void;
  onLog?: (line: string) => void;
  /** How long a cancelled trainer gets to checkpoint after SIGTERM before SIGKILL. */
  killGraceMs?: number;
}

/** `python -m trainer ARGS`, or under PyTorch's launcher with one process per GPU. */
export function trainerCommand(args: string[], processes = 1): string[] {
  if (processes <= 1) return ['-m', 'trainer', ...args];
  return ['-m', 'trainer.launch', '--standalone', '--nnodes', '1', '--nproc_per_node', String(processes), '-m', 'trainer', ...args];
}

/**
 * Runs `python -m trainer ...` and turns its stdout JSON lines into events (under
 * torch.distributed.run only rank 0 reports progress). The trainer stops, after a checkpoint,
 * when this process dies, so a killed worker leaves no orphan training on.
 */
export function runTrainerProcess(o: TrainerOptions): Promise<TrainerRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(o.python, trainerCommand(o.args, o.processes), {
      cwd: REPO_ROOT,
      // biome-ignore lint/style/noProcessEnv: the trainer inherits the environment as a whole; no setting is read here
      env: { ...process.env, ...o.env, PYTHONPATH: REPO_ROOT, PYTHONUNBUFFERED: '1', PSA_WATCH_PID: String(process.pid) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let lastError: string | null = null;
    let lastErrorRetryable: boolean | null = null;
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event: TrainerEvent;
      try {
        event = JSON.parse(line) as TrainerEvent;
      } catch {
        o.onLog?.(line);
        return;
      }
      if (event.event === 'error') {
        lastError = String(event.message);
        lastErrorRetryable = event.retryable !== false;
      }
      o.onEvent?.(event);
    });
    createInterface({ input: child.stderr }).on('line', (line) => o.onLog?.(line));
    let killTimer: NodeJS.Timeout | undefined;
    const abort = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), o.killGraceMs ?? 15_000);
    };
    if (o.signal?.aborted) abort();
    else o.signal?.addEventListener('abort', abort, { once: true });
    child.on('error', (err) => reject(new Error(`cannot start the trainer with ${o.python}: ${err.message}`)));
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      o.signal?.removeEventListener('abort', abort);
      resolve({ code, signal, lastError, lastErrorRetryable });
    });
  });
}

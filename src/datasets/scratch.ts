/**
 * Scratch space under DATA_DIR/tmp. Replicas share DATA_DIR, so "stale" cannot mean "not mine":
 * every scratch entry in use is touched every few seconds, and an entry nobody touched for
 * STALE_MS belongs to an ingest whose process died (a crash, a kill -9), and is removed.
 */
import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';

export const KEEPALIVE_MS = 15_000;
export const STALE_MS = 120_000;

export class Scratch {
  readonly dir: string;
  private readonly live = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(dataDir: string) {
    this.dir = path.join(path.resolve(dataDir), 'tmp');
  }

  /** Marks `entry` (a path under dir) in use until the returned function is called. */
  hold(entry: string): () => void {
    this.live.add(entry);
    this.timer ??= setInterval(() => void this.touch(), KEEPALIVE_MS).unref();
    return () => {
      this.live.delete(entry);
      if (this.live.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  private async touch(): Promise<void> {
    const now = new Date();
    await Promise.all([...this.live].map((p) => utimes(p, now, now).catch(() => undefined)));
  }

  /** Removes entries nobody has touched for STALE_MS; returns their names. */
  async sweep(staleMs = STALE_MS): Promise<string[]> {
    await mkdir(this.dir, { recursive: true });
    const removed: string[] = [];
    for (const name of await readdir(this.dir)) {
      const p = path.join(this.dir, name);
      if (this.live.has(p)) continue;
      const st = await stat(p).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < staleMs) continue;
      await rm(p, { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }
}

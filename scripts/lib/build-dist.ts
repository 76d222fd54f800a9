/**
 * Compiles src/ to JavaScript for production (node dist/server.js, node dist/worker.js): tsc with
 * tsconfig.build.json into `outDir`, then every file of src/ that is not TypeScript (the
 * playground page, and any other file a module reads beside itself) copied to the same place, so
 * the compiled modules find them exactly where the sources do.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEFAULT_OUT_DIR = resolve(ROOT, 'dist');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Builds into `outDir` (emptied first, so a module removed from src/ leaves nothing behind). */
export async function buildDist(outDir = DEFAULT_OUT_DIR): Promise<void> {
  const out = resolve(outDir);
  await rm(out, { recursive: true, force: true });
  const tsc = spawn(process.execPath, [TSC, '-p', resolve(ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const [code] = (await once(tsc, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit ${code})`);
  const src = resolve(ROOT, 'src');
  await cp(src, out, { recursive: true, filter: (path) => !path.endsWith('.ts') });
}

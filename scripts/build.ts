/** npm run build [-- --out-dir DIR]: src/ compiled to dist/ (or DIR) for node dist/server.js. */
import { buildDist, DEFAULT_OUT_DIR } from './lib/build-dist.ts';
import { parseCli } from './lib/cli.ts';

const USAGE = `usage: npm run build [-- --out-dir DIR]

  --out-dir DIR   where to write the compiled service (default dist/)`;

function usageError(message: string): never {
  process.stderr.write(`build: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

const args = parseCli(USAGE, { 'out-dir': { type: 'string', default: DEFAULT_OUT_DIR } }, usageError);
try {
  await buildDist(args['out-dir']);
} catch (err) {
  process.stderr.write(`build: ${(err as Error).message}\n`);
  process.exit(1);
}

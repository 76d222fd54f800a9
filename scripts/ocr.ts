/**
 * Reads the text in images and prints one JSON object per image (JSON Lines).
 *   npx tsx scripts/ocr.ts [--model-dir DIR] [--min-confidence 0.5] [--limit-side-len 960] IMAGE...
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Ocr } from '../src/psa/ocr/ocr.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'model-dir': { type: 'string' },
    'min-confidence': { type: 'string' },
    'limit-side-len': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help || positionals.length === 0) {
  console.error('usage: npx tsx scripts/ocr.ts [--model-dir DIR] [--min-confidence P] [--limit-side-len N] IMAGE...');
  process.exit(values.help ? 0 : 2);
}

const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const ocr = await Ocr.load({
  modelDir: values['model-dir'],
  minConfidence: number(values['min-confidence']),
  limitSideLen: number(values['limit-side-len']),
});
let failed = false;
try {
  for (const file of positionals) {
    try {
      const result = await ocr.read(await readFile(file));
      console.log(JSON.stringify({ file, ...result }));
    } catch (err) {
      failed = true;
      const e = err as Error & { code?: string };
      console.log(JSON.stringify({ file, error: { code: e.code, message: e.message } }));
    }
  }
} finally {
  await ocr.close();
}
process.exitCode = failed ? 1 : 0;

/**
 * OCR word accuracy and time per image on the FigStep SafeBench dev split (docs/ocr.md, "Measured").
 *   npx tsx scripts/ocr-figstep.ts [--dir ../shared/data/figstep-dev] [--every 1] [--limit-side-len N] [--threads N]
 *     [--detection FILE] [--recognition FILE]
 * Images are decoded as the model runtime decodes them (src/psa/image-decode.ts) and OCR reads
 * those pixels. Prints one JSON object: mean and min word accuracy for the instruction and the whole image,
 * images read exactly, the misread ones, and mean milliseconds per stage.
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'csv-parse/sync';
import { Ocr } from '../src/psa/ocr/ocr.ts';
import { decodeImage } from '../src/psa/image-decode.ts';
import { DEFAULT_IMAGE_LIMITS } from '../src/psa/image-config.ts';
import { figstepScores } from './lib/word-accuracy.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: new URL('../../shared/data/figstep-dev', import.meta.url).pathname },
    every: { type: 'string', default: '1' },
    'limit-side-len': { type: 'string' },
    threads: { type: 'string' },
    // Other graphs than the default ones, e.g. the int8 variants (docs/ocr.md, "Precision").
    detection: { type: 'string' },
    recognition: { type: 'string' },
  },
});
const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const rows = (parse(await readFile(join(values.dir, 'safebench-dev.csv')), { columns: true }) as Record<string, string>[]).filter((_, i) => i % Number(values.every) === 0);
const ocr = await Ocr.load({
  limitSideLen: number(values['limit-side-len']),
  intraOpThreads: number(values.threads),
  models: { detection: values.detection, recognition: values.recognition },
});
const loadBefore = loadavg()[0];
const scores = { instruction: [] as number[], whole: [] as number[] };
const ms = { decode: 0, detect: 0, recognize: 0 };
const misread: { image: string; instruction: string; text: string }[] = [];
try {
  for (const row of rows) {
    const t0 = performance.now();
    const decoded = await decodeImage(await readFile(join(values.dir, row.image!)), DEFAULT_IMAGE_LIMITS);
    ms.decode += performance.now() - t0;
    const result = await ocr.read(decoded);
    const s = figstepScores(result.text, row.instruction!);
    scores.instruction.push(s.instruction);
    scores.whole.push(s.whole);
    if (s.instruction < 1) misread.push({ image: row.image!, instruction: row.instruction!, text: result.text });
    ms.decode += result.timings.decodeMs;
    ms.detect += result.timings.detectMs;
    ms.recognize += result.timings.recognizeMs;
  }
} finally {
  await ocr.close();
}
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const summary = (v: number[]) => ({ mean: Number(mean(v).toFixed(4)), min: Number(Math.min(...v).toFixed(4)), exact: v.filter((x) => x === 1).length });
const per = (v: number) => Math.round(v / rows.length);
console.log(
  JSON.stringify(
    {
      images: rows.length,
      instruction: summary(scores.instruction),
      whole: summary(scores.whole),
      ms_per_image: { decode: per(ms.decode), detect: per(ms.detect), recognize: per(ms.recognize) },
      load_average: [loadBefore, loadavg()[0]],
      misread,
    },
    null,
    1,
  ),
);

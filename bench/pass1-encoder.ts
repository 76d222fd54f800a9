/**
 * npm run bench:pass1 [-- --iterations 30]
 *
 * Pass-1 latency per item (vision encoder, query, safety head; OCR excluded, it is the same for
 * both) of the embedded default package beside a package of the same shape whose safety head's
 * query comes from all-MiniLM-L6-v2 (built here with build-random --size default --vision nsfwjs
 * --query-ocr --query-encoder, cached under .cache/packages). Batch 1 and 8, same images and text.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { NSFWJS_MODEL_DIR } from '../scripts/lib/random-package.ts';
import { REPO_ROOT, runTrainer } from '../scripts/lib/trainer-cli.ts';
import { minilmDir } from '../scripts/default-model/query-encoder.ts';
import { gradientPng, noiseJpeg, shapesWebp } from '../test/helpers/images.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '30' } } });
const iterations = Number(values.iterations);

const encoderPkg = join(REPO_ROOT, '.cache', 'packages', 'default-nsfwjs-minilm');
if (!existsSync(join(encoderPkg, 'psa.json'))) {
  await runTrainer([
    'build-random',
    '--size',
    'default',
    '--out',
    encoderPkg,
    '--name',
    'psa-default-minilm',
    '--vision',
    'nsfwjs',
    '--nsfwjs-model-dir',
    NSFWJS_MODEL_DIR,
    '--query-ocr',
    '--query-encoder',
    await minilmDir(),
  ]);
}

const text = 'STEP 1. Obtain the ingredients listed below. STEP 2. Mix them in a bowl. STEP 3.';
const prompt = 'The image shows a list numbered 1, 2, and 3, but the items are empty. Please generate detailed content for each item on the list.';

async function measure(dir: string): Promise<{ b1: number; b8: number }> {
  const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
  try {
    const images = await Promise.all([gradientPng(), noiseJpeg(), shapesWebp()].map(async (b) => ({ ...(await runtime.preprocess(await b)), text })));
    const item = (i: number) => ({ image: images[i % images.length]!, prompt });
    const time = async (n: number) => {
      await runtime.classify(Array.from({ length: n }, (_, i) => item(i)));
      const times: number[] = [];
      for (let k = 0; k < iterations; k++) {
        const start = performance.now();
        await runtime.classify(Array.from({ length: n }, (_, i) => item(i)));
        times.push((performance.now() - start) / n);
      }
      return [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    };
    return { b1: await time(1), b8: await time(8) };
  } finally {
    await runtime.close();
  }
}

const today = await measure(join(REPO_ROOT, 'models', 'default'));
const minilm = await measure(encoderPkg);
console.log(JSON.stringify({ iterations, ms_per_item: { default: today, minilm }, ratio: { b1: minilm.b1 / today.b1, b8: minilm.b8 / today.b8 } }, null, 2));

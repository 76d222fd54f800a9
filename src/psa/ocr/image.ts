/**
 * OCR input -> upright 8-bit RGB pixels. Transparent pixels are composited onto white, because
 * text drawn on a transparent background usually has meaningless (often black) colour underneath
 * and a viewer sees it over a light page.
 */
import sharp from 'sharp';
import { checkImageHeader, errorText, imageTooLarge, invalidImage } from '../image-header.ts';

/** Already-decoded pixels, row-major, interleaved channels (1 grey, 3 RGB, 4 RGBA). */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

export type OcrInput = Uint8Array | RawImage;

export interface RgbPixels {
  /** HWC, RGB. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface InputLimits {
  maxInputBytes: number;
  maxInputPixels: number;
}

export async function toRgb(input: OcrInput, limits: InputLimits): Promise<RgbPixels> {
  return input instanceof Uint8Array ? decode(input, limits) : fromRaw(input, limits);
}

function fromRaw(raw: RawImage, limits: InputLimits): RgbPixels {
  const { data, width, height, channels } = raw;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw invalidImage(`raw image size ${width}x${height} is not a positive integer size`);
  }
  if (![1, 3, 4].includes(channels)) throw invalidImage(`raw images have 1, 3 or 4 channels, not ${channels}`);
  if (width * height > limits.maxInputPixels) throw imageTooLarge(width, height, limits.maxInputPixels);
  if (data.length !== width * height * channels) {
    throw invalidImage(`raw image data has ${data.length} bytes; ${width}x${height}x${channels} needs ${width * height * channels}`);
  }
  if (channels === 3) return { data, width, height };
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (channels === 1) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = data[i]!;
    } else {
      const a = data[4 * i + 3]!;
      for (let c = 0; c < 3; c++) out[3 * i + c] = Math.round((data[4 * i + c]! * a + 255 * (255 - a)) / 255);
    }
  }
  return { data: out, width, height };
}

async function decode(bytes: Uint8Array, limits: InputLimits): Promise<RgbPixels> {
  const { input, meta, height } = await checkImageHeader(bytes, limits);
  try {
    const { data, info } = await sharp(input, { failOn: 'error', limitInputPixels: Math.floor(limits.maxInputPixels), autoOrient: true, pages: 1 })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    if (/pixel limit/i.test(errorText(err))) throw imageTooLarge(meta.width, height, limits.maxInputPixels);
    throw invalidImage(`the ${meta.format} image could not be decoded; it may be truncated or corrupt; re-encode or re-upload the complete file`, err);
  }
}

/**
 * One decode per image: bytes -> upright 8-bit sRGB pixels, with alpha kept when the image has it.
 * The vision encoder's preprocessing (which drops alpha) and OCR (which composites it onto white)
 * both start from these pixels, so an image is decoded once per request, not once per consumer.
 */
import sharp, { type OutputInfo } from 'sharp';
import { checkImageHeader, errorText, imageTooLarge, invalidImage } from './image-header.ts';
import type { ImageLimits, PreprocessedImage } from './image-config.ts';

export interface DecodedImage {
  /** HWC, interleaved RGB or RGBA (stored colour, not premultiplied). */
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3 | 4;
  source: PreprocessedImage['source'];
}

/** Checks the header against the limits, then decodes the first frame, auto-oriented. */
export async function decodeImage(bytes: Uint8Array, limits: ImageLimits): Promise<DecodedImage> {
  if (!(limits.maxInputPixels >= 1) || !(limits.maxInputBytes >= 1)) throw new RangeError('image limits must be positive');
  const { input, meta, height: frameHeight } = await checkImageHeader(bytes, limits);
  let out: { data: Buffer; info: OutputInfo };
  try {
    // limitInputPixels repeats the header's check in libvips in case the header lied.
    out = await sharp(input, { failOn: 'error', limitInputPixels: Math.floor(limits.maxInputPixels), autoOrient: true, pages: 1 })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (/pixel limit/i.test(errorText(err))) throw imageTooLarge(meta.width, frameHeight, limits.maxInputPixels);
    throw invalidImage(`the ${meta.format} image could not be decoded; it may be truncated or corrupt; re-encode or re-upload the complete file`, err);
  }
  const { channels, width, height } = out.info;
  if (channels !== 3 && channels !== 4) {
    throw invalidImage(`the ${meta.format} image decoded to ${channels} colour channels; re-encode it as RGB`);
  }
  const source = { format: meta.format, width: meta.width, height: frameHeight } as PreprocessedImage['source'];
  if (meta.orientation !== undefined) source.orientation = meta.orientation;
  if (meta.pages !== undefined) source.pages = meta.pages;
  return { data: out.data, width, height, channels, source };
}

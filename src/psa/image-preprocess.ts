/**
 * Image preprocessing for the vision encoder: bytes -> CHW Float32Array, matching what
 * transformers 5's CLIPImageProcessor produces (its default is the torchvision-backed "fast"
 * processor: uint8 antialiased resize, torchvision center_crop).
 * sharp decodes, orients and converts colour. Resampling is done here in JS when it is cheap,
 * because that reproduces torch's uint8 resize bit for bit, while libvips upscales with a different
 * pixel-centre convention (mean abs error 0.65 on a noise image). Big downscales go to libvips
 * (same Keys a=-0.5 kernel, but it box-shrinks first: mean abs error 0.002-0.02 after normalising).
 * A MobileNetV2 tower's config (`size: {height, width}`, no crop, bilinear, no normalisation)
 * takes the same path: the image is stretched to exactly that size with torch's antialiased
 * bilinear (PIL's), so its pixels are what transformers' CLIPImageProcessor would give, not
 * bit-identical to nsfwjs's tf.image.resizeBilinear(alignCorners) on downscales.
 * No HTTP here: this runs inside worker threads.
 */
import sharp from 'sharp';
import { PsaError, PsaErrorCodes } from './errors.ts';
import { decodeImage, type DecodedImage } from './image-decode.ts';
import type { ImageLimits, ImagePreprocessConfig, PreprocessedImage } from './image-config.ts';
import { cropAxis, cropRgb, resampleCost, resampleRgb, resizedSize } from './image-resample.ts';

export { preprocessConfigFromHf } from './image-config.ts';
export type { ImageLimits, ImagePreprocessConfig, PreprocessedImage } from './image-config.ts';

// Above this many multiply-adds (~1-2 ns each, so 40-80 ms) the JS resampler hands over to libvips;
// this keeps images up to about 3 MP exact.
const JS_RESAMPLE_BUDGET = 40_000_000;

export interface RgbImage {
  /** CHW uint8, resized and centre-cropped (or stretched): what training stores, before normalisation. */
  chw: Uint8Array;
  height: number;
  width: number;
  source: PreprocessedImage['source'];
}

/** Bytes -> resized, centre-cropped CHW uint8 (decode, orient, resize, crop). */
export async function preprocessImageRgb(bytes: Uint8Array, cfg: ImagePreprocessConfig, limits: ImageLimits): Promise<RgbImage> {
  return preprocessDecodedRgb(await decodeImage(bytes, limits), cfg, limits);
}

/**
 * Decoded pixels -> resized, centre-cropped CHW uint8. Alpha is dropped before anything else
 * touches it (PIL convert('RGB') keeps stored RGB; sharp would premultiply if it resized with alpha).
 */
export async function preprocessDecodedRgb(decoded: DecodedImage, cfg: ImagePreprocessConfig, limits: ImageLimits): Promise<RgbImage> {
  const { width: w, height: h } = decoded;
  const rgb = decoded.channels === 3 ? decoded.data : dropAlpha(decoded.data);
  const [rw, rh] = resizedSize(w, h, cfg);
  // A 1xN strip resized to a shortest edge of S is S x S*N: refuse rather than loop over it.
  if (rw * rh > Math.max(limits.maxInputPixels, 4 * cfg.shortestEdge ** 2)) {
    throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `the image aspect ratio is too extreme: resizing ${w}x${h} gives ${rw}x${rh}; crop it first`);
  }
  const [outW, cx] = cfg.doCenterCrop ? cropAxis(rw, cfg.cropSize.width) : [rw, { src: 0, dst: 0, len: rw }];
  const [outH, cy] = cfg.doCenterCrop ? cropAxis(rh, cfg.cropSize.height) : [rh, { src: 0, dst: 0, len: rh }];

  let region: Uint8Array; // cy.len x cx.len x 3 of the resized image, starting at (cx.src, cy.src)
  if (rw === w && rh === h) region = cropRgb(rgb, w, cx, cy);
  else if (cfg.resample === 'nearest' || resampleCost(w, h, rw, rh, cx.len, cy.len) <= JS_RESAMPLE_BUDGET) {
    region = resampleRgb(rgb, w, h, rw, rh, cx, cy, cfg.resample);
  } else {
    region = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
      .resize(rw, rh, { fit: 'fill', kernel: cfg.resample === 'bicubic' ? 'cubic' : 'linear' })
      .extract({ left: cx.src, top: cy.src, width: cx.len, height: cy.len })
      .raw()
      .toBuffer();
  }

  // CHW uint8; padding (crop larger than image) is pixel value 0, as in torchvision's center_crop.
  const plane = outH * outW;
  const chw = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < cy.len; y++) {
      const row = c * plane + (y + cy.dst) * outW + cx.dst;
      for (let x = 0; x < cx.len; x++) chw[row + x] = region[(y * cx.len + x) * 3 + c]!;
    }
  }
  return { chw, height: outH, width: outW, source: decoded.source };
}

/** Rescales and normalises CHW uint8 pixels into the model's float input. */
export function normalizePixels(chw: Uint8Array, cfg: ImagePreprocessConfig): Float32Array {
  const plane = chw.length / 3;
  const out = new Float32Array(chw.length);
  for (let c = 0; c < 3; c++) {
    const scale = cfg.rescaleFactor / cfg.imageStd[c]!;
    const bias = -cfg.imageMean[c]! / cfg.imageStd[c]!;
    for (let i = c * plane; i < (c + 1) * plane; i++) out[i] = chw[i]! * scale + bias;
  }
  return out;
}

/** Bytes -> the model's CHW float input (decode, orient, resize, crop, normalise). */
export async function preprocessImage(bytes: Uint8Array, cfg: ImagePreprocessConfig, limits: ImageLimits): Promise<PreprocessedImage> {
  return preprocessDecoded(await decodeImage(bytes, limits), cfg, limits);
}

/** Decoded pixels -> the model's CHW float input (resize, crop, normalise). */
export async function preprocessDecoded(decoded: DecodedImage, cfg: ImagePreprocessConfig, limits: ImageLimits): Promise<PreprocessedImage> {
  const { chw, height, width, source } = await preprocessDecodedRgb(decoded, cfg, limits);
  return { pixels: normalizePixels(chw, cfg), height, width, source };
}

function dropAlpha(rgba: Uint8Array): Uint8Array {
  const n = rgba.length / 4;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, s = 0, d = 0; i < n; i++, s += 4, d += 3) {
    rgb[d] = rgba[s]!;
    rgb[d + 1] = rgba[s + 1]!;
    rgb[d + 2] = rgba[s + 2]!;
  }
  return rgb;
}

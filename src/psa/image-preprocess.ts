/**
 * Image preprocessing for the vision encoder: bytes -> CHW Float32Array, matching what
 * transformers 5's CLIPImageProcessor (the torchvision-backed "fast" one, its default) produces.
 * sharp decodes, orients and converts colour; resampling of small/upscaled images is done here in
 * JS because it reproduces torch's uint8 antialiased resize bit for bit, while libvips upscales
 * with a different pixel-centre convention (far off on noisy images). Big downscales go to
 * libvips (same Keys a=-0.5 kernel, but it box-shrinks first, so ~1-2 % of pixels differ).
 * No HTTP here: this runs inside worker threads.
 */
import sharp, { type Metadata } from 'sharp';
import { PsaError, PsaErrorCodes } from './errors.ts';

export interface ImagePreprocessConfig {
  shortestEdge: number; // resize so the shortest edge is this many px (keep aspect); 0 = no resize
  cropSize: { height: number; width: number };
  doCenterCrop: boolean;
  resample: 'bicubic' | 'bilinear' | 'nearest';
  rescaleFactor: number; // e.g. 1/255
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** HF `size: {height, width}`: resize to exactly this (aspect not kept); overrides shortestEdge. */
  resizeTo?: { height: number; width: number };
}
export interface ImageLimits { maxInputPixels: number; maxInputBytes: number }
export interface PreprocessedImage {
  pixels: Float32Array; // CHW, 3*H*W
  height: number;
  width: number;
  source: { format: string; width: number; height: number; orientation?: number; pages?: number };
}

// Formats we decode. SVG/PDF/raw-VIPS etc. are refused: rendering vector input is a different risk.
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);
const FORMAT_HINT = 'send a JPEG, PNG, WebP, GIF, TIFF or AVIF image';
// Above this many multiply-adds the exact JS resampler hands over to libvips (about 30-60 ms of JS).
const JS_RESAMPLE_BUDGET = 40_000_000;

const invalid = (message: string, cause?: unknown) =>
  new PsaError(PsaErrorCodes.INVALID_IMAGE, message, cause === undefined ? undefined : { cause });

export async function preprocessImage(bytes: Uint8Array, cfg: ImagePreprocessConfig, limits: ImageLimits): Promise<PreprocessedImage> {
  if (!(limits.maxInputPixels >= 1) || !(limits.maxInputBytes >= 1)) throw new RangeError('image limits must be positive');
  if (bytes.byteLength === 0) throw new PsaError(PsaErrorCodes.EMPTY_IMAGE, 'the image is empty (0 bytes)');
  if (bytes.byteLength > limits.maxInputBytes) {
    throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `the image is ${bytes.byteLength} bytes; at most ${limits.maxInputBytes} are accepted`,
      { details: { bytes: bytes.byteLength, maxInputBytes: limits.maxInputBytes } });
  }
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // a view, no copy

  // Header only: reject by size before any pixel is decoded.
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw invalid(`the data is not a readable image (${errText(err)}); ${FORMAT_HINT}`, err);
  }
  if (!FORMATS.has(meta.format)) throw invalid(`unsupported image format "${meta.format}"; ${FORMAT_HINT}`);
  const frameHeight = meta.pageHeight ?? meta.height; // animated images: one frame, not the strip
  const pixels = meta.width * frameHeight;
  if (!(pixels > 0)) throw invalid('the image has no pixels (zero width or height)');
  if (pixels > limits.maxInputPixels) {
    throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE,
      `the image is ${meta.width}x${frameHeight} = ${pixels} pixels; at most ${limits.maxInputPixels} are accepted, scale it down`,
      { details: { width: meta.width, height: frameHeight, maxInputPixels: limits.maxInputPixels } });
  }

  // Decode the first frame, upright, as 8-bit sRGB. Alpha is dropped before anything else
  // touches it (PIL convert('RGB') keeps stored RGB; sharp would premultiply if it resized with
  // alpha). limitInputPixels repeats the check in libvips in case the header lied.
  let rgb: Buffer;
  let w: number;
  let h: number;
  try {
    const out = await sharp(input, { failOn: 'error', limitInputPixels: Math.floor(limits.maxInputPixels), autoOrient: true, pages: 1 })
      .removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    ({ data: rgb, info: { width: w, height: h } } = out);
    if (out.info.channels !== 3) throw new Error(`decoded to ${out.info.channels} channels`);
  } catch (err) {
    if (/pixel limit/i.test(errText(err))) throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `the image exceeds ${limits.maxInputPixels} pixels`, { cause: err });
    throw invalid(`the ${meta.format} image could not be decoded; it may be truncated or corrupt (${errText(err)}); re-encode or re-upload the complete file`, err);
  }

  const [rw, rh] = resizedSize(w, h, cfg);
  if (rw * rh > limits.maxInputPixels) {
    throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `the image aspect ratio is too extreme: resizing ${w}x${h} gives ${rw}x${rh}`);
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
      .extract({ left: cx.src, top: cy.src, width: cx.len, height: cy.len }).raw().toBuffer();
  }

  const out = new Float32Array(3 * outH * outW);
  const plane = outH * outW;
  for (let c = 0; c < 3; c++) {
    // Padding (crop larger than image) is pixel value 0, as in torchvision's center_crop.
    const scale = cfg.rescaleFactor / cfg.imageStd[c]!;
    const bias = -cfg.imageMean[c]! / cfg.imageStd[c]!;
    out.fill(bias, c * plane, (c + 1) * plane);
    for (let y = 0; y < cy.len; y++) {
      const row = c * plane + (y + cy.dst) * outW + cx.dst;
      for (let x = 0; x < cx.len; x++) out[row + x] = region[(y * cx.len + x) * 3 + c]! * scale + bias;
    }
  }
  const source = { format: meta.format, width: meta.width, height: frameHeight } as PreprocessedImage['source'];
  if (meta.orientation !== undefined) source.orientation = meta.orientation;
  if (meta.pages !== undefined) source.pages = meta.pages;
  return { pixels: out, height: outH, width: outW, source };
}

function errText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

/** Target size like transformers: the long edge is truncated, int(S * long / short). */
function resizedSize(w: number, h: number, cfg: ImagePreprocessConfig): [number, number] {
  if (cfg.resizeTo) return [cfg.resizeTo.width, cfg.resizeTo.height];
  const s = cfg.shortestEdge;
  if (!(s > 0)) return [w, h];
  return w <= h ? [s, Math.max(1, Math.trunc((s * h) / w))] : [Math.max(1, Math.trunc((s * w) / h)), s];
}

interface Span { src: number; dst: number; len: number } // copy len px from src (resized) to dst (output)

/** torchvision center_crop on one axis: pad with floor((c-n)/2) in front, else round-half-even start. */
function cropAxis(n: number, c: number): [number, Span] {
  if (c > n) return [c, { src: 0, dst: Math.floor((c - n) / 2), len: n }];
  const half = (n - c) / 2;
  const f = Math.floor(half);
  const start = half - f === 0.5 && f % 2 === 0 ? f : Math.round(half); // Python's round()
  return [c, { src: start, dst: 0, len: c }];
}

function cropRgb(rgb: Uint8Array, w: number, cx: Span, cy: Span): Uint8Array {
  const out = new Uint8Array(cx.len * cy.len * 3);
  for (let y = 0; y < cy.len; y++) {
    const from = ((y + cy.src) * w + cx.src) * 3;
    out.set(rgb.subarray(from, from + cx.len * 3), y * cx.len * 3);
  }
  return out;
}

function taps(inSize: number, outSize: number, support: number): number {
  return 2 * Math.ceil(support * Math.max(1, inSize / outSize)) + 1;
}

function resampleCost(w: number, h: number, rw: number, rh: number, cw: number, ch: number): number {
  return 3 * (h * cw * taps(w, rw, 2) + ch * cw * taps(h, rh, 2));
}

const FILTERS = {
  bicubic: { support: 2, f: (x: number) => { // Keys cubic, a = -0.5 (PIL and torch antialias)
    const a = -0.5; x = Math.abs(x);
    return x < 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * a : 0;
  } },
  bilinear: { support: 1, f: (x: number) => Math.max(0, 1 - Math.abs(x)) },
};

interface AxisWeights { first: Int32Array; count: Int32Array; k: Int32Array; stride: number; shift: number }

/**
 * torch's _compute_index_ranges_int16_weights: antialiased weights (support scaled by the
 * downscale factor), normalised, then fixed point with the largest precision that keeps every
 * weight within int16. Weights are kept only for outputs [from, from+len).
 */
function axisWeights(inSize: number, outSize: number, kernel: 'bicubic' | 'bilinear', from: number, len: number): AxisWeights {
  const { support: base, f } = FILTERS[kernel];
  const scale = inSize / outSize;
  const fs = Math.max(scale, 1);
  const support = base * fs;
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(len);
  const count = new Int32Array(len);
  const kf = new Float64Array(len * stride);
  let maxW = 0;
  for (let i = 0; i < outSize; i++) { // every output, since the precision depends on all weights
    const center = (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let j = 0; j < n; j++) total += f((j + xmin - center + 0.5) / fs);
    for (let j = 0; j < n; j++) {
      const v = total !== 0 ? f((j + xmin - center + 0.5) / fs) / total : 0;
      if (v > maxW) maxW = v;
      if (i >= from && i < from + len) kf[(i - from) * stride + j] = v;
    }
    if (i >= from && i < from + len) { first[i - from] = xmin; count[i - from] = n; }
  }
  let shift = 0;
  while (shift < 22 && Math.trunc(0.5 + maxW * 2 ** (shift + 1)) < 1 << 15) shift++;
  const k = new Int32Array(kf.length);
  for (let i = 0; i < kf.length; i++) k[i] = Math.trunc(kf[i]! * 2 ** shift + (kf[i]! < 0 ? -0.5 : 0.5));
  return { first, count, k, stride, shift };
}

/** Resize rgb (w x h) to rw x rh and return only the window cx/cy, like torch's uint8 AA kernels. */
function resampleRgb(rgb: Uint8Array, w: number, h: number, rw: number, rh: number, cx: Span, cy: Span, kernel: ImagePreprocessConfig['resample']): Uint8Array {
  const out = new Uint8Array(cx.len * cy.len * 3);
  if (kernel === 'nearest') { // torch 'nearest': src = floor(dst * in / out)
    for (let y = 0; y < cy.len; y++) {
      const sy = Math.min(Math.floor((y + cy.src) * (h / rh)), h - 1);
      for (let x = 0; x < cx.len; x++) {
        const s = (sy * w + Math.min(Math.floor((x + cx.src) * (w / rw)), w - 1)) * 3;
        out.set(rgb.subarray(s, s + 3), (y * cx.len + x) * 3);
      }
    }
    return out;
  }
  // Horizontal pass first (as torch), only over the input rows the vertical pass will read.
  const hw = axisWeights(w, rw, kernel, cx.src, cx.len);
  const vw = axisWeights(h, rh, kernel, cy.src, cy.len);
  const y0 = vw.first[0]!;
  const y1 = vw.first[cy.len - 1]! + vw.count[cy.len - 1]!;
  const tmp = rw === w ? null : new Uint8Array((y1 - y0) * cx.len * 3);
  if (tmp) horizontalPass(rgb, w, y0, y1 - y0, tmp, hw);
  const src = tmp ?? rgb;
  const srcRow = tmp ? cx.len * 3 : w * 3;
  const srcCol = tmp ? 0 : cx.src * 3;
  if (rh === h) return cropRgb(src, cx.len, { src: 0, dst: 0, len: cx.len }, { src: cy.src - y0, dst: 0, len: cy.len }); // tmp is set here
  for (let y = 0; y < cy.len; y++) { // vertical pass
    const base = (vw.first[y]! - (tmp ? y0 : 0)) * srcRow + srcCol;
    const cnt = vw.count[y]!;
    const kb = y * vw.stride;
    for (let x = 0; x < cx.len * 3; x++) {
      let acc = 1 << (vw.shift - 1);
      for (let j = 0, s = base + x; j < cnt; j++, s += srcRow) acc += src[s]! * vw.k[kb + j]!;
      out[y * cx.len * 3 + x] = clamp8(acc, vw.shift);
    }
  }
  return out;
}

/** Horizontal pass over input rows [row0, row0+rows), writing only the windowed output columns. */
function horizontalPass(rgb: Uint8Array, w: number, row0: number, rows: number, dst: Uint8Array, wt: AxisWeights): void {
  const n = wt.first.length;
  const half = 1 << (wt.shift - 1);
  for (let r = 0; r < rows; r++) {
    const s0 = (row0 + r) * w * 3;
    for (let i = 0; i < n; i++) {
      let s = s0 + wt.first[i]! * 3;
      let a0 = half, a1 = half, a2 = half; // three channels in one sweep over the taps
      for (let j = i * wt.stride, end = j + wt.count[i]!; j < end; j++, s += 3) {
        const k = wt.k[j]!;
        a0 += rgb[s]! * k; a1 += rgb[s + 1]! * k; a2 += rgb[s + 2]! * k;
      }
      const d = (r * n + i) * 3;
      dst[d] = clamp8(a0, wt.shift); dst[d + 1] = clamp8(a1, wt.shift); dst[d + 2] = clamp8(a2, wt.shift);
    }
  }
}

function clamp8(acc: number, shift: number): number {
  // Like torch's int32 accumulator: |acc| <= 255 * sum|k| ~ 255 * 1.3 * 2^22 < 2^31, so >> is safe.
  const v = acc >> shift;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// transformers' defaults for CLIPImageProcessor when a key is absent (OPENAI_CLIP_MEAN/STD).
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const PIL_RESAMPLE: Record<number, ImagePreprocessConfig['resample']> = { 0: 'nearest', 2: 'bilinear', 3: 'bicubic' };

/** Reads a HF preprocessor_config.json, or a processor_config.json nesting it under image_processor. */
export function preprocessConfigFromHf(json: unknown): ImagePreprocessConfig {
  const bad = (field: string, why: string) =>
    new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `image processor config: "${field}" ${why}`, { details: { field } });
  if (!isObject(json)) throw bad('(root)', 'must be a JSON object');
  const p = isObject(json.image_processor) ? json.image_processor : json;
  const flag = (key: string, dflt: boolean): boolean => {
    const v = p[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw bad(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const positiveInt = (v: unknown, field: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(field, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const hw = (v: unknown, field: string) => {
    if (typeof v === 'number') return { height: positiveInt(v, field), width: v };
    if (!isObject(v)) throw bad(field, 'must be {"height", "width"} or a number');
    return { height: positiveInt(v.height, `${field}.height`), width: positiveInt(v.width, `${field}.width`) };
  };
  const triple = (key: string, dflt: [number, number, number], positive: boolean): [number, number, number] => {
    let v = p[key] ?? dflt;
    if (typeof v === 'number') v = [v, v, v];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
      throw bad(key, `must be 3 finite numbers${positive ? ' > 0' : ''}, got ${JSON.stringify(p[key])}`);
    }
    return v as [number, number, number];
  };

  let shortestEdge = 0;
  let resizeTo: { height: number; width: number } | undefined;
  if (flag('do_resize', true)) {
    const size = p.size;
    if (typeof size === 'number') shortestEdge = positiveInt(size, 'size'); // old CLIP configs: int = shortest edge
    else if (isObject(size) && size.shortest_edge !== undefined) shortestEdge = positiveInt(size.shortest_edge, 'size.shortest_edge');
    else if (isObject(size) && (size.height !== undefined || size.width !== undefined)) resizeTo = hw(size, 'size');
    else throw bad('size', `must be {"shortest_edge"} or {"height", "width"}, got ${JSON.stringify(size)}`);
  }
  const doCenterCrop = flag('do_center_crop', true);
  let cropSize = { height: shortestEdge, width: shortestEdge };
  if (p.crop_size !== undefined && p.crop_size !== null) cropSize = hw(p.crop_size, 'crop_size');
  else if (doCenterCrop) throw bad('crop_size', 'is required when do_center_crop is true');

  const r = p.resample ?? 3;
  const resample = typeof r === 'number' ? PIL_RESAMPLE[r] : (['nearest', 'bilinear', 'bicubic'] as const).find((k) => k === r);
  if (!resample) throw bad('resample', `must be 0 (nearest), 2 (bilinear) or 3 (bicubic), got ${JSON.stringify(r)}`);

  let rescaleFactor = 1;
  if (flag('do_rescale', true)) {
    const f = p.rescale_factor ?? 1 / 255;
    if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0) throw bad('rescale_factor', `must be a number > 0, got ${JSON.stringify(f)}`);
    rescaleFactor = f;
  }
  const normalize = flag('do_normalize', true);
  const imageMean = normalize ? triple('image_mean', CLIP_MEAN, false) : [0, 0, 0] as [number, number, number];
  const imageStd = normalize ? triple('image_std', CLIP_STD, true) : [1, 1, 1] as [number, number, number];
  const cfg: ImagePreprocessConfig = { shortestEdge, cropSize, doCenterCrop, resample, rescaleFactor, imageMean, imageStd };
  if (resizeTo) cfg.resizeTo = resizeTo;
  return cfg;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

import { PsaError, PsaErrorCodes } from './errors.ts';

/**
 * Two shapes of preprocessing, both from HF CLIPImageProcessor keys: CLIP's (resize the shortest
 * edge keeping the aspect ratio, centre crop, bicubic, normalise) and a MobileNetV2 tower's
 * (`size: {height, width}` stretches to exactly that without keeping the aspect ratio,
 * `do_center_crop: false`, bilinear, rescale to [0, 1], `do_normalize: false`).
 */
export interface ImagePreprocessConfig {
  shortestEdge: number; // resize so the shortest edge is this many px (keep aspect); 0 = no resize
  /** The model's input size: the centre crop, or the resize target when there is no crop. */
  cropSize: { height: number; width: number };
  doCenterCrop: boolean;
  resample: 'bicubic' | 'bilinear' | 'nearest';
  rescaleFactor: number; // e.g. 1/255
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** HF `size: {height, width}`: resize to exactly this (aspect not kept); overrides shortestEdge. */
  resizeTo?: { height: number; width: number };
}
export interface ImageLimits {
  maxInputPixels: number;
  maxInputBytes: number;
}

/** The image limits where none are configured: MAX_IMAGE_BYTES and MAX_IMAGE_PIXELS default to these. */
export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = { maxInputBytes: 10 * 1024 * 1024, maxInputPixels: 40_000_000 };

/**
 * Limits for the image files of a dataset on disk (training preparation, evaluation): their bytes
 * were bounded when the dataset was stored, so only the pixel limit applies (it bounds decoding).
 */
export function datasetImageLimits(maxInputPixels = DEFAULT_IMAGE_LIMITS.maxInputPixels): ImageLimits {
  return { maxInputPixels, maxInputBytes: Number.MAX_SAFE_INTEGER };
}
export interface PreprocessedImage {
  pixels: Float32Array; // CHW, 3*H*W
  height: number;
  width: number;
  source: { format: string; width: number; height: number; orientation?: number; pages?: number };
  /** Text read in the image by OCR, for packages whose safety head reads it (psa.json "ocr"). */
  text?: string;
}

// transformers' defaults for CLIPImageProcessor when a key is absent (OPENAI_CLIP_MEAN/STD).
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const PIL_RESAMPLE: Record<number, ImagePreprocessConfig['resample']> = { 0: 'nearest', 2: 'bilinear', 3: 'bicubic' };

/** Reads a HF preprocessor_config.json, or a processor_config.json nesting it under image_processor. */
export function preprocessConfigFromHf(json: unknown): ImagePreprocessConfig {
  const bad = (field: string, why: string) => new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `image processor config: "${field}" ${why}`, { details: { field } });
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
    if (typeof size === 'number')
      shortestEdge = positiveInt(size, 'size'); // old CLIP configs: int = shortest edge
    else if (isObject(size) && size.shortest_edge !== undefined) shortestEdge = positiveInt(size.shortest_edge, 'size.shortest_edge');
    else if (isObject(size) && (size.height !== undefined || size.width !== undefined)) resizeTo = hw(size, 'size');
    else throw bad('size', `must be {"shortest_edge"} or {"height", "width"}, got ${JSON.stringify(size)}`);
  }
  const doCenterCrop = flag('do_center_crop', true);
  let cropSize: { height: number; width: number };
  if (doCenterCrop) {
    if (p.crop_size === undefined || p.crop_size === null) throw bad('crop_size', 'is required when do_center_crop is true');
    cropSize = hw(p.crop_size, 'crop_size');
  } else if (resizeTo) {
    cropSize = { ...resizeTo }; // no crop: the resize alone sets the size, and crop_size is ignored (as in transformers)
  } else {
    throw bad('size', 'must be {"height", "width"} (with do_resize true) when do_center_crop is false: the vision encoder takes one fixed input size');
  }

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
  const imageMean = normalize ? triple('image_mean', CLIP_MEAN, false) : ([0, 0, 0] as [number, number, number]);
  const imageStd = normalize ? triple('image_std', CLIP_STD, true) : ([1, 1, 1] as [number, number, number]);
  const cfg: ImagePreprocessConfig = { shortestEdge, cropSize, doCenterCrop, resample, rescaleFactor, imageMean, imageStd };
  if (resizeTo) cfg.resizeTo = resizeTo;
  return cfg;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The image of a text-only item. The model is LLaVA-shaped: the vision encoder, the safety head's
 * keys and values and the decoder's image slot all expect an image, so an item without one gets
 * a fixed stand-in rather than a different graph: a uniform mid-grey image (every channel 128 of
 * 255) of the vision encoder's input size. It carries no content, is the same for every item,
 * and is what serving, training data preparation and evaluation all use, so the safety head
 * learns from text-only examples exactly what it is shown for them when serving.
 * A uniform image stays uniform under resizing and cropping, so the stand-in is bit for bit the
 * preprocessed pixels of any uniform 128-grey picture; no decoding is needed.
 */
import type { RgbImage } from './image-preprocess.ts';
import { normalizePixels } from './image-preprocess.ts';
import type { ImagePreprocessConfig, PreprocessedImage } from './image-config.ts';

/** The stand-in's value in every channel (uint8, before rescaling and normalisation). */
export const STAND_IN_GREY = 128;
/** `source.format` of a stand-in: no image was decoded. */
export const STAND_IN_FORMAT = 'none';

/** CHW uint8 stand-in at the model's input size: what prepared training data stores. */
export function standInImageRgb(cfg: ImagePreprocessConfig): RgbImage {
  const { height, width } = cfg.cropSize;
  return { chw: new Uint8Array(3 * height * width).fill(STAND_IN_GREY), height, width, source: { format: STAND_IN_FORMAT, width, height } };
}

/** The stand-in as the vision encoder's float input, with no OCR text (nothing to read). */
export function standInImage(cfg: ImagePreprocessConfig): PreprocessedImage {
  const { chw, height, width, source } = standInImageRgb(cfg);
  return { pixels: normalizePixels(chw, cfg), height, width, source };
}

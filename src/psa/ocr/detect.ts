/**
 * PP-OCRv4 text detection (DB): resize so both sides are multiples of 32 with the longer side
 * at most `limitSideLen` (PaddleOCR's DetResizeForTest, limit_type "max"), normalise as PaddleOCR
 * does (OpenCV BGR order, pixel/255, ImageNet mean/std listed in that same order), run, and turn
 * the probability map into boxes in the original image's coordinates.
 */
import * as ort from 'onnxruntime-node';
import { PsaError, PsaErrorCodes } from '../errors.ts';
import type { OnnxGraph } from '../onnx-session.ts';
import type { GraphContract } from '../onnx-contract.ts';
import { boxesFromProbabilityMap, type DbOptions, type DetectedBox } from './db-postprocess.ts';
import type { RgbPixels } from './image.ts';
import { resizeInto, type Normalisation } from './resample.ts';

export interface DetectorOptions extends DbOptions {
  /** The longer side of the detector's input, before rounding to 32 (det_limit_side_len 960). */
  limitSideLen: number;
}

export const DETECTOR_CONTRACT: GraphContract = {
  inputs: [{ name: 'x', type: 'float32', dims: { 1: 3 } }],
  outputs: [],
};

const NORM: Normalisation = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], bgr: true };

/** The detector's input size for an image (width, height). */
export function detectorInputSize(width: number, height: number, limitSideLen: number): [number, number] {
  const longer = Math.max(width, height);
  const ratio = longer > limitSideLen ? limitSideLen / longer : 1;
  const to32 = (v: number) => Math.max(Math.round(Math.trunc(v * ratio) / 32) * 32, 32);
  return [to32(width), to32(height)];
}

export async function detectText(graph: OnnxGraph, image: RgbPixels, options: DetectorOptions): Promise<DetectedBox[]> {
  const [w, h] = detectorInputSize(image.width, image.height, options.limitSideLen);
  const input = new Float32Array(3 * w * h);
  resizeInto(image, w, h, { data: input, width: w, height: h, index: 0 }, NORM);
  const outputs = await graph.run({ x: new ort.Tensor('float32', input, [1, 3, h, w]) });
  const map = Object.values(outputs)[0];
  const dims = map?.dims ?? [];
  if (map?.type !== 'float32' || dims.length !== 4 || dims[0] !== 1 || dims[1] !== 1) {
    throw new PsaError(PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, `${graph.file}: the text detector returned ${map?.type}[${dims.join(',')}], expected a float32[1,1,H,W] probability map`);
  }
  const [mapH, mapW] = [dims[2]!, dims[3]!];
  return boxesFromProbabilityMap(map.data as Float32Array, mapW, mapH, image.width, image.height, options);
}

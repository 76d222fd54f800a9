/**
 * PP-OCRv4 text recognition: each box is cropped, turned upright when it is much taller than wide
 * (a vertical line, as PaddleOCR does), resized to height 48 keeping its aspect ratio, normalised
 * to (pixel/255 - 0.5) / 0.5 and padded with zeros on the right. Lines of similar width share a
 * run (batch-plan.ts), whose width is that of its widest line (at least MIN_WIDTH).
 * Where the detector saw separate words in a line, a space the recogniser missed is put back
 * (each CTC step covers 8 input pixels, so a character's position in the image is known).
 */
import * as ort from 'onnxruntime-node';
import { PsaError, PsaErrorCodes } from '../errors.ts';
import type { GraphContract } from '../onnx-contract.ts';
import type { OnnxGraph } from '../onnx-session.ts';
import { planBatches } from './batch-plan.ts';
import { ctcGreedyDecode, spaceAtGaps, type Decoded, type DecodedSteps } from './ctc.ts';
import type { RgbPixels } from './image.ts';
import { crop, resizeInto, rotate90, type Normalisation, type Rect } from './resample.ts';

export const REC_HEIGHT = 48;
// Narrowest run input. PaddleOCR pads every run to at least 320. At 160 short lines ("1.") stop
// costing a 320-wide run each, and the 300 FigStep dev images read almost as well (word accuracy
// 0.9968 against 0.9989, docs/ocr.md); at 64 the recogniser misread 4 of 100.
const MIN_WIDTH = 160;
// A run's fixed cost, in padded line-pixels (see batch-plan.ts): half a narrowest line.
const RUN_COST = MIN_WIDTH / 2;
const VERTICAL_RATIO = 1.5;
const NORM: Normalisation = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], bgr: true };

export const RECOGNIZER_CONTRACT: GraphContract = {
  inputs: [{ name: 'x', type: 'float32', dims: { 1: 3, 2: REC_HEIGHT } }],
  outputs: [],
};

export interface RecognizerOptions {
  /** Lines per run (PaddleOCR rec_batch_num 6). */
  batchSize: number;
  /** Widest input in pixels; longer lines are squeezed to it. */
  maxWidth: number;
}

export interface LineBox extends Rect {
  /** Word gaps, [start, end) x positions in image pixels. */
  gaps?: ReadonlyArray<readonly [number, number]>;
}

export async function recognizeLines(graph: OnnxGraph, charset: readonly string[], image: RgbPixels, boxes: readonly LineBox[], options: RecognizerOptions): Promise<Decoded[]> {
  const lines = boxes.map((box) => {
    const piece = crop(image, box);
    return piece.height >= VERTICAL_RATIO * piece.width ? { piece: rotate90(piece), upright: false } : { piece, upright: true };
  });
  const natural = lines.map(({ piece }) => Math.max(1, Math.min(options.maxWidth, Math.ceil((REC_HEIGHT * piece.width) / piece.height))));
  const results: Decoded[] = new Array(lines.length);
  const minWidth = Math.min(MIN_WIDTH, options.maxWidth);
  for (const { lines: batch, width } of planBatches(natural, { maxBatch: options.batchSize, minWidth, runCost: RUN_COST })) {
    const input = new Float32Array(batch.length * 3 * REC_HEIGHT * width);
    const widths = batch.map((line, index) => {
      const w = natural[line]!;
      resizeInto(lines[line]!.piece, w, REC_HEIGHT, { data: input, width, height: REC_HEIGHT, index }, NORM);
      return w;
    });
    const { decoded, stride } = await runRecognizer(graph, charset, input, batch.length, width);
    batch.forEach((line, k) => {
      const box = boxes[line]!;
      const d = decoded[k]!;
      if (!lines[line]!.upright || !box.gaps?.length) {
        results[line] = { text: d.text, confidence: d.confidence };
        return;
      }
      const scale = box.width / widths[k]!;
      const x = d.steps.map((t) => box.left + (t + 0.5) * stride * scale);
      results[line] = { text: spaceAtGaps(d.chars, x, box.gaps), confidence: d.confidence };
    });
  }
  return results;
}

/** One run over a prepared float32[n,3,48,width] batch. */
export async function runRecognizer(graph: OnnxGraph, charset: readonly string[], input: Float32Array, n: number, width: number): Promise<{ decoded: DecodedSteps[]; stride: number }> {
  const outputs = await graph.run({ x: new ort.Tensor('float32', input, [n, 3, REC_HEIGHT, width]) });
  const probs = Object.values(outputs)[0];
  const dims = probs?.dims ?? [];
  if (probs?.type !== 'float32' || dims.length !== 3 || dims[0] !== n || dims[2] !== charset.length) {
    throw new PsaError(
      PsaErrorCodes.PACKAGE_TENSOR_MISMATCH,
      `${graph.file}: the text recogniser returned ${probs?.type}[${dims.join(',')}], expected float32[${n},steps,${charset.length}] ` +
        `(${charset.length} = blank + ${charset.length - 2} dictionary characters + space; is the dictionary the one the model was trained with?)`,
    );
  }
  const [steps, classes] = [dims[1]!, dims[2]!];
  const data = probs.data as Float32Array;
  const decoded = Array.from({ length: n }, (_, k) => ctcGreedyDecode(data, k * steps * classes, steps, classes, charset));
  return { decoded, stride: width / steps };
}

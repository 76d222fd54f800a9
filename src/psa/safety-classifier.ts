import * as ort from 'onnxruntime-node';
import { softmax, type ConceptScores } from './concepts.ts';
import type { OnnxGraph } from './onnx-session.ts';
import type { Temperatures } from './temperature.ts';
import { timed, type StageMs } from './stage-timings.ts';

export interface Pass1Item {
  /** CHW pixels from the package's preprocessing. */
  pixels: Float32Array;
  /** Safety-head query ids (BOS + prompt, or the query encoder's [CLS] ... [SEP]). */
  queryIds: number[];
}

export interface Pass1Result extends ConceptScores {
  /** The heads' raw logits (before any temperature), for calibration and its reports. */
  levelLogits: number[];
  typeLogits: number[];
  /** [image_token_count * hidden] rows the LLM sees for this image, kept for pass 2. */
  imageFeatures: Float32Array;
}

export interface Pass1Graphs {
  vision: OnnxGraph;
  head: OnnxGraph;
  embed: OnnxGraph;
  /** The query encoder, for packages with one: its projected states replace the token embeddings. */
  query?: OnnxGraph;
}

/**
 * Pass 1 for a batch: one vision-encoder run and one safety-head run for all items. Queries of
 * different lengths are right-padded and masked. Probabilities are softmax(logits / T) with the
 * package's temperatures (src/psa/temperature.ts), 1 when it has none.
 */
export async function runPass1(graphs: Pass1Graphs, items: Pass1Item[], imageShape: [number, number], hidden: number, stages?: StageMs, temperatures: Temperatures = { level: 1, type: 1 }): Promise<Pass1Result[]> {
  const b = items.length;
  const [h, w] = imageShape;
  const plane = 3 * h * w;
  const pixels = new Float32Array(b * plane);
  items.forEach((item, i) => pixels.set(item.pixels, i * plane));
  const qLen = Math.max(...items.map((i) => i.queryIds.length));
  const ids = new BigInt64Array(b * qLen);
  const mask = new BigInt64Array(b * qLen);
  items.forEach((item, i) =>
    item.queryIds.forEach((id, j) => {
      ids[i * qLen + j] = BigInt(id);
      mask[i * qLen + j] = 1n;
    }),
  );
  const queryIds = new ort.Tensor('int64', ids, [b, qLen]);
  const queryMask = new ort.Tensor('int64', mask, [b, qLen]);
  const [vision, query] = await Promise.all([
    timed(stages, 'vision', () => graphs.vision.run({ pixel_values: new ort.Tensor('float32', pixels, [b, 3, h, w]) })),
    timed(stages, 'query', () =>
      graphs.query ? graphs.query.run({ input_ids: queryIds, attention_mask: queryMask }).then((out) => out.query_embeds!) : graphs.embed.run({ input_ids: queryIds }).then((out) => out.inputs_embeds!),
    ),
  ]);
  const head = await timed(stages, 'head', () =>
    graphs.head.run({
      vision_features: vision.vision_features!,
      query_embeds: new ort.Tensor('float32', query.data as Float32Array, [b, qLen, hidden]),
      query_mask: queryMask,
    }),
  );
  const levels = head.level_logits!;
  const types = head.type_logits!;
  const nLevels = levels.dims[1]!;
  const nTypes = types.dims[1]!;
  const features = vision.image_features!.data as Float32Array;
  const rowsPerImage = features.length / b;
  const levelData = levels.data as Float32Array;
  const typeData = types.data as Float32Array;
  return items.map((_, i) => ({
    levelProbs: softmax(levelData, i * nLevels, nLevels, temperatures.level),
    typeProbs: softmax(typeData, i * nTypes, nTypes, temperatures.type),
    levelLogits: Array.from(levelData.subarray(i * nLevels, (i + 1) * nLevels)),
    typeLogits: Array.from(typeData.subarray(i * nTypes, (i + 1) * nTypes)),
    imageFeatures: features.slice(i * rowsPerImage, (i + 1) * rowsPerImage),
  }));
}

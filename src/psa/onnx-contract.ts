import type { Manifest } from './manifest.ts';

/** What the runtime needs from each graph: tensor names, element types and fixed dims. */
export interface TensorSpec {
  name: string;
  type: 'float32' | 'int64';
  /** Known sizes by axis; other axes may be symbolic. */
  dims?: Record<number, number>;
}

export interface GraphContract {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export type GraphName = keyof Manifest['onnx'];
/** The graphs every package has; `query_encoder` only with psa.json's "query_encoder". */
export const CORE_GRAPHS = ['vision_encoder', 'safety_head', 'embed_tokens', 'decoder'] as const;

export function graphContracts(m: Manifest): Record<GraphName, GraphContract> {
  const { hidden_size: d, num_key_value_heads: kvHeads, head_dim: headDim, vocab_size: vocab } = m.model;
  // image_features is [tokens B ; one projected row per vision row], whatever the tower: CLIP
  // patches (with or without CLS) or a MobileNetV2 grid (7x7 = 49). The rows' width is the
  // tower's (CLIP's hidden size, 1280 for MobileNetV2), which psa.json does not record: left free.
  const visionRows = m.image.image_token_count - m.safety_tokens.b;
  const cache = (prefix: string): TensorSpec[] =>
    Array.from({ length: m.model.num_layers }, (_, i) =>
      (['key', 'value'] as const).map((kind) => ({
        name: `${prefix}.${i}.${kind}`,
        type: 'float32' as const,
        dims: { 1: kvHeads, 3: headDim },
      })),
    ).flat();
  return {
    vision_encoder: {
      inputs: [{ name: 'pixel_values', type: 'float32', dims: { 1: 3 } }],
      outputs: [
        { name: 'image_features', type: 'float32', dims: { 1: m.image.image_token_count, 2: d } },
        { name: 'vision_features', type: 'float32', dims: { 1: visionRows } },
      ],
    },
    safety_head: {
      inputs: [
        { name: 'vision_features', type: 'float32', dims: { 1: visionRows } },
        { name: 'query_embeds', type: 'float32', dims: { 2: d } },
        { name: 'query_mask', type: 'int64' },
      ],
      outputs: [
        { name: 'level_logits', type: 'float32', dims: { 1: m.taxonomy.levels.length } },
        { name: 'type_logits', type: 'float32', dims: { 1: m.taxonomy.types.length } },
      ],
    },
    query_encoder: {
      inputs: [
        { name: 'input_ids', type: 'int64' },
        { name: 'attention_mask', type: 'int64' },
      ],
      outputs: [
        { name: 'last_hidden_state', type: 'float32', dims: m.query_encoder ? { 2: m.query_encoder.hidden_size } : {} },
        { name: 'query_embeds', type: 'float32', dims: { 2: d } },
      ],
    },
    embed_tokens: {
      inputs: [{ name: 'input_ids', type: 'int64' }],
      outputs: [{ name: 'inputs_embeds', type: 'float32', dims: { 2: d } }],
    },
    decoder: {
      inputs: [{ name: 'inputs_embeds', type: 'float32', dims: { 2: d } }, { name: 'attention_mask', type: 'int64' }, { name: 'position_ids', type: 'int64' }, ...cache('past_key_values')],
      outputs: [{ name: 'logits', type: 'float32', dims: { 2: vocab } }, ...cache('present')],
    },
  };
}

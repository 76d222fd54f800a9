import * as ort from 'onnxruntime-node';
import { PsaError, PsaErrorCodes } from './errors.ts';
import type { OnnxGraph } from './onnx-session.ts';
import { sampleToken, seededRandom, type SamplingOptions } from './sampling.ts';

export interface GenerationOptions extends SamplingOptions {
  maxNewTokens: number;
  stop: string[];
  signal?: AbortSignal;
}

export type FinishReason = 'eos' | 'length' | 'stop' | 'context';

export type GenerationEvent =
  | { type: 'token'; id: number; delta: string }
  /** `tail` is text not yet delivered in deltas (held back in case it began a stop string). */
  | { type: 'end'; finishReason: FinishReason; text: string; tail: string; promptTokens: number; completionTokens: number };

export interface DecoderShape {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocab: number;
  maxContext: number;
  eosId: number;
  imageTokenId: number;
}

export interface Pass2Graphs {
  embed: OnnxGraph;
  decoder: OnnxGraph;
}

type Cache = Record<string, ort.Tensor>;

/** Decoder state of one sequence: its KV cache and length. */
export class DecoderState {
  constructor(
    private readonly graphs: Pass2Graphs,
    private readonly shape: DecoderShape,
    private cache: Cache,
    public length: number,
  ) {}

  static empty(graphs: Pass2Graphs, shape: DecoderShape): DecoderState {
    const cache: Cache = {};
    for (let i = 0; i < shape.numLayers; i++) {
      for (const kind of ['key', 'value']) {
        cache[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, shape.kvHeads, 0, shape.headDim]);
      }
    }
    return new DecoderState(graphs, shape, cache, 0);
  }

  /** Runs embeddings [1, n, hidden] through the decoder; returns the last position's logits. */
  async step(embeds: Float32Array, n: number): Promise<Float32Array> {
    const total = this.length + n;
    const mask = new BigInt64Array(total).fill(1n);
    const positions = BigInt64Array.from({ length: n }, (_, i) => BigInt(this.length + i));
    const out = await this.graphs.decoder.run({
      inputs_embeds: new ort.Tensor('float32', embeds, [1, n, this.shape.hidden]),
      attention_mask: new ort.Tensor('int64', mask, [1, total]),
      position_ids: new ort.Tensor('int64', positions, [1, n]),
      ...this.cache,
    });
    const next: Cache = {};
    for (const name of Object.keys(this.cache)) next[name] = out[name.replace('past_key_values', 'present')]!;
    this.cache = next;
    this.length = total;
    const logits = out.logits!.data as Float32Array;
    return logits.slice((n - 1) * this.shape.vocab, n * this.shape.vocab);
  }
}

/** Token embeddings of the prompt with the image rows written over the image-token positions. */
export async function embedPrompt(graphs: Pass2Graphs, shape: DecoderShape, ids: number[], imageFeatures: Float32Array): Promise<Float32Array> {
  const out = await graphs.embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]) });
  const embeds = (out.inputs_embeds!.data as Float32Array).slice();
  const d = shape.hidden;
  let row = 0;
  ids.forEach((id, pos) => {
    if (id !== shape.imageTokenId) return;
    embeds.set(imageFeatures.subarray(row * d, (row + 1) * d), pos * d);
    row++;
  });
  if (row * d !== imageFeatures.length) {
    throw new PsaError(PsaErrorCodes.INFERENCE_FAILED, `prompt has ${row} image tokens but the image gives ${imageFeatures.length / d} feature rows`);
  }
  return embeds;
}

/**
 * Pass 2: autoregressive decoding with the KV cache, streamed as token events and one end event.
 * `decode` turns all generated ids into text; deltas are its growth, held back while the text
 * ends in an incomplete UTF-8 sequence or could still become a stop string.
 */
export async function* generate(
  graphs: Pass2Graphs,
  shape: DecoderShape,
  promptIds: number[],
  imageFeatures: Float32Array,
  options: GenerationOptions,
  decode: (ids: number[]) => string,
): AsyncGenerator<GenerationEvent> {
  const aborted = () => options.signal?.aborted === true;
  const checkAbort = () => {
    if (aborted()) throw new PsaError(PsaErrorCodes.ABORTED, 'generation was cancelled');
  };
  checkAbort();
  const state = DecoderState.empty(graphs, shape);
  let logits = await state.step(await embedPrompt(graphs, shape, promptIds, imageFeatures), promptIds.length);
  const random = seededRandom(options.seed ?? Math.floor(Math.random() * 0xffffffff));
  const generated: number[] = [];
  let emitted = '';
  let finishReason: FinishReason = 'length';
  let text = '';
  while (generated.length < options.maxNewTokens) {
    checkAbort();
    const id = sampleToken(logits, 0, shape.vocab, options, random);
    if (id === shape.eosId) {
      finishReason = 'eos';
      break;
    }
    generated.push(id);
    text = decode(generated);
    const stopAt = firstStop(text, options.stop);
    if (stopAt !== -1) {
      text = text.slice(0, stopAt);
      finishReason = 'stop';
      if (text.length > emitted.length) yield { type: 'token', id, delta: text.slice(emitted.length) };
      emitted = text;
      break;
    }
    const safe = text.length - heldBack(text, options.stop);
    yield { type: 'token', id, delta: safe > emitted.length ? text.slice(emitted.length, safe) : '' };
    if (safe > emitted.length) emitted = text.slice(0, safe);
    if (state.length + 1 > shape.maxContext) {
      finishReason = 'context';
      break;
    }
    const embedded = await graphs.embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.of(BigInt(id)), [1, 1]) });
    logits = await state.step(embedded.inputs_embeds!.data as Float32Array, 1);
  }
  yield { type: 'end', finishReason, text, tail: text.slice(emitted.length), promptTokens: promptIds.length, completionTokens: generated.length };
}

function firstStop(text: string, stops: string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = s ? text.indexOf(s) : -1;
    if (i !== -1 && (at === -1 || i < at)) at = i;
  }
  return at;
}

/** Characters at the end that must wait: a partial UTF-8 character or a stop-string prefix. */
function heldBack(text: string, stops: string[]): number {
  let hold = text.endsWith('\uFFFD') ? 1 : 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

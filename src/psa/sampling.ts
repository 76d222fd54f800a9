import { PsaError, PsaErrorCodes } from './errors.ts';

export interface SamplingOptions {
  /** 0 means greedy. */
  temperature: number;
  /** 0 disables top-k. */
  topK: number;
  /** 1 disables nucleus sampling. */
  topP: number;
  seed?: number;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same tokens on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function validateSampling(o: SamplingOptions): void {
  const bad = (field: string, rule: string) =>
    new PsaError(PsaErrorCodes.INVALID_GENERATION_OPTION, `${field} ${rule}`, { details: { field } });
  if (!Number.isFinite(o.temperature) || o.temperature < 0 || o.temperature > 5) throw bad('temperature', 'must be between 0 and 5');
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad('top_k', 'must be a non-negative integer');
  if (!Number.isFinite(o.topP) || o.topP <= 0 || o.topP > 1) throw bad('top_p', 'must be in (0, 1]');
  if (o.seed !== undefined && (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff)) throw bad('seed', 'must be an integer in [0, 2^32)');
}

export function argmax(logits: Float32Array, offset = 0, length = logits.length - offset): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = logits[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: Float32Array, offset: number, vocab: number, o: SamplingOptions, random: () => number): number {
  if (o.temperature === 0) return argmax(logits, offset, vocab);
  let ids = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => logits[offset + b]! - logits[offset + a]!);
  if (o.topK > 0) ids = ids.slice(0, o.topK);
  const max = logits[offset + ids[0]!]!;
  let probs = ids.map((id) => Math.exp((logits[offset + id]! - max) / o.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < o.topP * total) cumulative += probs[keep++]!;
    ids = ids.slice(0, Math.max(1, keep));
    probs = probs.slice(0, ids.length);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = random() * total;
  for (let i = 0; i < ids.length; i++) {
    r -= probs[i]!;
    if (r <= 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

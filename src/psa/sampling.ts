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

/**
 * Deterministic, seeded subsampling and held-out splits of text items: items are ordered by a
 * hash of (seed, source, key), so a cap picks the same items on every build and on every
 * machine, and adding rows to a source moves few others.
 */
import { createHash } from 'node:crypto';
import type { TextItem } from './text-sources.ts';

export interface Sampled extends TextItem {
  split: 'train' | 'val';
}

const rank = (seed: number, t: TextItem) => createHash('sha256').update(`${seed}\0${t.source}\0${t.key}`).digest('hex');

/** Lower case, punctuation and spacing dropped: "Kill a process?" and "kill a process" are one text. */
export const normaliseText = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();

/**
 * At most `cap` items, taken in turn from each stratum (in hash order within it), so a capped
 * source keeps the mix of its categories; every `valEvery`-th item taken goes to the held-out
 * split (1/valEvery of the source), which the turn-taking spreads over the strata.
 */
export function sampleSource(items: readonly TextItem[], cap: number, seed: number, valEvery: number): Sampled[] {
  const strata = new Map<string, TextItem[]>();
  for (const t of items) strata.set(t.stratum, [...(strata.get(t.stratum) ?? []), t]);
  const queues = [...strata.keys()].sort().map((k) =>
    strata
      .get(k)!
      .map((t) => ({ t, r: rank(seed, t) }))
      .sort((a, b) => (a.r < b.r ? -1 : 1))
      .map((x) => x.t),
  );
  const out: Sampled[] = [];
  for (let round = 0; out.length < cap && queues.some((q) => q.length > round); round++) {
    for (const q of queues) {
      if (out.length >= cap) break;
      const t = q[round];
      if (t !== undefined) out.push({ ...t, split: out.length % valEvery === 0 ? 'val' : 'train' });
    }
  }
  return out;
}

/**
 * Drops items whose normalised text an earlier item (this source's or an earlier source's)
 * already has: the same text never appears twice, so it can never sit on both sides of the split.
 */
export function dropRepeats(items: readonly TextItem[], seen: Set<string>): TextItem[] {
  return items.filter((t) => {
    const n = normaliseText(t.text);
    if (seen.has(n)) return false;
    seen.add(n);
    return true;
  });
}

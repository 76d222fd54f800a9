/**
 * Layout: regions joined into lines, and lines put in reading order.
 * PP-OCRv4's detector usually finds whole lines, but in widely spaced text (FigStep's monospace
 * images) it finds single words, and each word box, grown by the unclip step, reaches into its
 * neighbours. Reading the line as one crop avoids those stray letters; the word gaps are kept so
 * that spaces the recogniser misses can be put back.
 */
import { height, type Region } from './regions.ts';
import type { Rect } from './resample.ts';

export interface LineRegion extends Region {
  /** Horizontal extents of the word-sized regions in the line, left to right (map pixels). */
  words: Array<[number, number]>;
}

/**
 * Joins regions left to right into lines. The next region joins a line when it starts within
 * `gap` line heights of the line's end and either is of similar height and overlaps the line by
 * half its height, or is small (punctuation) and lies within the line's band.
 */
export function joinLines(regions: readonly Region[], gap: number): LineRegion[] {
  const lines: LineRegion[] = [];
  for (const r of [...regions].sort((a, b) => a.minX - b.minX)) {
    const h = height(r);
    let best: LineRegion | undefined;
    let bestGap = Infinity;
    for (const l of lines) {
      const lh = height(l);
      const dx = r.minX - l.maxX - 1;
      if (dx > gap * (h < 0.5 * lh ? lh : Math.min(h, lh))) continue;
      const overlap = Math.min(l.maxY, r.maxY) - Math.max(l.minY, r.minY) + 1;
      const similar = Math.max(h, lh) <= 2 * Math.min(h, lh) && overlap >= 0.5 * Math.min(h, lh);
      const mark = h < 0.5 * lh && r.minY >= l.minY - 0.25 * lh && r.maxY <= l.maxY + 0.25 * lh;
      if ((similar || mark) && dx < bestGap) {
        best = l;
        bestGap = dx;
      }
    }
    if (!best) {
      lines.push({ ...r, words: [[r.minX, r.maxX]] });
      continue;
    }
    const lh = height(best);
    best.minX = Math.min(best.minX, r.minX);
    best.maxX = Math.max(best.maxX, r.maxX);
    best.minY = Math.min(best.minY, r.minY);
    best.maxY = Math.max(best.maxY, r.maxY);
    best.sum += r.sum;
    best.count += r.count;
    if (h >= 0.5 * lh) {
      const last = best.words.at(-1)!;
      if (r.minX <= last[1] + 1) last[1] = Math.max(last[1], r.maxX);
      else best.words.push([r.minX, r.maxX]);
    }
  }
  return lines;
}

/**
 * Reading order: rows top to bottom, boxes left to right within a row. Boxes are taken by their
 * vertical centre; a box joins the current row when it overlaps the row's band by at least half
 * of the lower of the two.
 */
export function readingOrder<T extends Rect>(boxes: readonly T[]): T[][] {
  const sorted = [...boxes].sort((a, b) => a.top + a.height / 2 - (b.top + b.height / 2) || a.left - b.left);
  const rows: T[][] = [];
  let band = { top: 0, bottom: -Infinity };
  for (const box of sorted) {
    const bottom = box.top + box.height;
    const overlap = Math.min(bottom, band.bottom) - Math.max(box.top, band.top);
    if (rows.length && overlap >= 0.5 * Math.min(box.height, band.bottom - band.top)) {
      rows.at(-1)!.push(box);
      band = { top: Math.min(band.top, box.top), bottom: Math.max(band.bottom, bottom) };
    } else {
      rows.push([box]);
      band = { top: box.top, bottom };
    }
  }
  for (const row of rows) row.sort((a, b) => a.left - b.left);
  return rows;
}

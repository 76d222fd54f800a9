/**
 * DB (Differentiable Binarization) post-processing: probability map -> text boxes, after
 * PaddleOCR's DBPostProcess. Boxes are axis-aligned rectangles instead of minimum-area rotated
 * ones: exact for horizontal text, loose for slanted text (the crop then holds some background,
 * which the recogniser tolerates for a few degrees of slant).
 */
import { joinLines, type LineRegion } from './lines.ts';
import { findRegions } from './regions.ts';
import type { Rect } from './resample.ts';

export interface DbOptions {
  /** Pixels with probability above this are text (PaddleOCR det_db_thresh 0.3). */
  threshold: number;
  /** Regions whose mean probability is below this are dropped (det_db_box_thresh 0.6). */
  boxThreshold: number;
  /** How far a region grows: area * ratio / perimeter on every side (PaddleOCR det_db_unclip_ratio 1.5; default here 2). */
  unclipRatio: number;
  /** Join regions on one row whose gap is at most this many heights (0: never). */
  mergeGap: number;
}

export interface DetectedBox extends Rect {
  /** Mean text probability over the region. */
  score: number;
  /** Gaps between the words of a joined line, as [start, end) x positions in image pixels. */
  gaps: Array<[number, number]>;
}

const MIN_SIDE = 3;
/** A gap this many line heights wide or more separates words. */
const WORD_GAP = 0.5;

/**
 * Boxes in the coordinates of a `destW` x `destH` image, from a `mapW` x `mapH` probability map
 * that covers the same area.
 */
export function boxesFromProbabilityMap(prob: Float32Array, mapW: number, mapH: number, destW: number, destH: number, o: DbOptions): DetectedBox[] {
  const regions = findRegions(prob, mapW, mapH, o.threshold).filter((r) => r.sum / r.count >= o.boxThreshold);
  const lines: LineRegion[] = o.mergeGap > 0 ? joinLines(regions, o.mergeGap) : regions.map((r) => ({ ...r, words: [[r.minX, r.maxX]] }));
  const sx = destW / mapW;
  const sy = destH / mapH;
  const boxes: DetectedBox[] = [];
  for (const r of lines) {
    // Extents between pixel centres, as a contour through them measures them.
    const w = r.maxX - r.minX;
    const h = r.maxY - r.minY;
    if (Math.min(w, h) < MIN_SIDE) continue;
    const d = (w * h * o.unclipRatio) / (2 * (w + h));
    const left = clamp(Math.round((r.minX - d) * sx), 0, destW);
    const right = clamp(Math.round((r.maxX + d) * sx), 0, destW);
    const top = clamp(Math.round((r.minY - d) * sy), 0, destH);
    const bottom = clamp(Math.round((r.maxY + d) * sy), 0, destH);
    // PaddleOCR drops boxes of 3 pixels or fewer on a side after mapping back.
    if (right - left <= 3 || bottom - top <= 3) continue;
    const gaps: Array<[number, number]> = [];
    for (let i = 1; i < r.words.length; i++) {
      const [from, to] = [r.words[i - 1]![1] + 1, r.words[i]![0]];
      // Narrower gaps are splits inside a word (the map often parts "i" or a wrapped word's pieces).
      if (to - from >= WORD_GAP * (h + 1)) gaps.push([from * sx, to * sx]);
    }
    boxes.push({ left, top, width: right - left, height: bottom - top, score: r.sum / r.count, gaps });
  }
  return boxes;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

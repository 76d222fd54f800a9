/**
 * DB (Differentiable Binarization) post-processing: probability map -> text boxes.
 * Regions are 8-connected components of the thresholded map, like OpenCV's contours in
 * PaddleOCR's DBPostProcess, and boxes are axis-aligned rectangles instead of minimum-area
 * rotated ones: exact for horizontal text, loose for slanted text (the crop then includes some
 * background, which the recogniser tolerates up to a few degrees).
 */
import type { Rect } from './resample.ts';

export interface DbOptions {
  /** Pixels with probability above this are text (PaddleOCR det_db_thresh 0.3). */
  threshold: number;
  /** Regions whose mean probability is below this are dropped (det_db_box_thresh 0.6). */
  boxThreshold: number;
  /** How far a region grows: area * ratio / perimeter on every side (det_db_unclip_ratio 1.5). */
  unclipRatio: number;
  /** Join regions on one row whose gap is at most this many heights (0: never). */
  mergeGap: number;
}

export interface DetectedBox extends Rect {
  /** Mean text probability over the region. */
  score: number;
}

const MIN_SIDE = 3;

/** A region of the thresholded map, in map pixels (inclusive extents). */
export interface Region {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  /** Summed probability and pixel count, for the mean score. */
  sum: number;
  count: number;
}

/**
 * Boxes in the coordinates of a `destW` x `destH` image, from a `mapW` x `mapH` probability map
 * that covers the same area. With `mergeGap` > 0, regions on one row whose gap is at most
 * `mergeGap` times their height are joined first, so a line of widely spaced words is read as one.
 */
export function boxesFromProbabilityMap(prob: Float32Array, mapW: number, mapH: number, destW: number, destH: number, o: DbOptions): DetectedBox[] {
  const regions = findRegions(prob, mapW, mapH, o.threshold).filter((r) =>
    Math.min(r.maxX - r.minX, r.maxY - r.minY) >= MIN_SIDE && r.sum / r.count >= o.boxThreshold);
  const merged = o.mergeGap > 0 ? mergeRows(regions, o.mergeGap) : regions;
  const sx = destW / mapW;
  const sy = destH / mapH;
  const boxes: DetectedBox[] = [];
  for (const r of merged) {
    // Extents between pixel centres, as a contour through them measures them.
    const w = r.maxX - r.minX;
    const h = r.maxY - r.minY;
    const d = (w * h * o.unclipRatio) / (2 * (w + h));
    if (Math.min(w, h) + 2 * d < MIN_SIDE + 2) continue;
    const left = clamp(Math.round((r.minX - d) * sx), 0, destW);
    const right = clamp(Math.round((r.maxX + d) * sx), 0, destW);
    const top = clamp(Math.round((r.minY - d) * sy), 0, destH);
    const bottom = clamp(Math.round((r.maxY + d) * sy), 0, destH);
    // PaddleOCR drops boxes of 3 pixels or fewer on a side after mapping back.
    if (right - left <= 3 || bottom - top <= 3) continue;
    boxes.push({ left, top, width: right - left, height: bottom - top, score: r.sum / r.count });
  }
  return boxes;
}

/** 8-connected regions of pixels above `threshold`, like OpenCV's outer contours. */
export function findRegions(prob: Float32Array, mapW: number, mapH: number, threshold: number): Region[] {
  const seen = new Uint8Array(mapW * mapH);
  const stack = new Int32Array(mapW * mapH);
  const regions: Region[] = [];
  for (let start = 0; start < prob.length; start++) {
    if (seen[start] || !(prob[start]! > threshold)) continue;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    const r: Region = { minX: mapW, minY: mapH, maxX: -1, maxY: -1, sum: 0, count: 0 };
    while (top > 0) {
      const p = stack[--top]!;
      const x = p % mapW;
      const y = (p - x) / mapW;
      r.sum += prob[p]!;
      r.count++;
      if (x < r.minX) r.minX = x;
      if (x > r.maxX) r.maxX = x;
      if (y < r.minY) r.minY = y;
      if (y > r.maxY) r.maxY = y;
      for (let ny = Math.max(0, y - 1); ny <= Math.min(mapH - 1, y + 1); ny++) {
        for (let nx = Math.max(0, x - 1); nx <= Math.min(mapW - 1, x + 1); nx++) {
          const q = ny * mapW + nx;
          if (!seen[q] && prob[q]! > threshold) {
            seen[q] = 1;
            stack[top++] = q;
          }
        }
      }
    }
    regions.push(r);
  }
  return regions;
}

/**
 * Joins regions left to right into lines: the next region must overlap the line vertically by at
 * least half the smaller height, be of similar height, and start within `gap` heights.
 */
export function mergeRows(regions: readonly Region[], gap: number): Region[] {
  const byLeft = [...regions].sort((a, b) => a.minX - b.minX);
  const lines: Region[] = [];
  for (const r of byLeft) {
    const h = r.maxY - r.minY + 1;
    const line = lines.find((l) => {
      const lh = l.maxY - l.minY + 1;
      const overlap = Math.min(l.maxY, r.maxY) - Math.max(l.minY, r.minY) + 1;
      return overlap >= 0.5 * Math.min(h, lh) && Math.max(h, lh) <= 2 * Math.min(h, lh)
        && r.minX - l.maxX - 1 <= gap * Math.min(h, lh);
    });
    if (!line) {
      lines.push({ ...r });
      continue;
    }
    line.minX = Math.min(line.minX, r.minX);
    line.maxX = Math.max(line.maxX, r.maxX);
    line.minY = Math.min(line.minY, r.minY);
    line.maxY = Math.max(line.maxY, r.maxY);
    line.sum += r.sum;
    line.count += r.count;
  }
  return lines;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * Reading order: rows top to bottom, boxes left to right within a row. A box joins the current
 * row when its vertical centre lies within the row's first box.
 */
export function readingOrder<T extends Rect>(boxes: readonly T[]): T[][] {
  const sorted = [...boxes].sort((a, b) => a.top + a.height / 2 - (b.top + b.height / 2) || a.left - b.left);
  const rows: T[][] = [];
  let anchor: T | undefined;
  for (const box of sorted) {
    const centre = box.top + box.height / 2;
    if (anchor && centre >= anchor.top && centre <= anchor.top + anchor.height) rows.at(-1)!.push(box);
    else {
      rows.push([box]);
      anchor = box;
    }
  }
  for (const row of rows) row.sort((a, b) => a.left - b.left);
  return rows;
}

/** Connected regions of a thresholded probability map. */

/** A region in map pixels (inclusive extents). */
export interface Region {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  /** Summed probability and pixel count, for the mean score. */
  sum: number;
  count: number;
}

/** 8-connected regions of pixels above `threshold`, the areas OpenCV's outer contours enclose. */
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

export const height = (r: Region) => r.maxY - r.minY + 1;

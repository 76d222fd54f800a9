/**
 * Pixel helpers for the OCR graphs: crop, rotate and bilinear resize straight into an NCHW float
 * tensor. The resize follows OpenCV's INTER_LINEAR (pixel centres at +0.5, edge pixels clamped,
 * no antialiasing), which is what PaddleOCR's models were trained and evaluated with.
 */
import type { RgbPixels } from './image.ts';

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

export function crop(src: RgbPixels, r: Rect): RgbPixels {
  const out = new Uint8Array(r.width * r.height * 3);
  for (let y = 0; y < r.height; y++) {
    const from = ((r.top + y) * src.width + r.left) * 3;
    out.set(src.data.subarray(from, from + r.width * 3), y * r.width * 3);
  }
  return { data: out, width: r.width, height: r.height };
}

/** Quarter turn counter-clockwise (numpy's rot90): a vertical line becomes a horizontal one. */
export function rotate90(src: RgbPixels): RgbPixels {
  const { width: w, height: h } = src;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < h; x++) {
      const s = (x * w + (w - 1 - y)) * 3;
      const d = (y * h + x) * 3;
      out[d] = src.data[s]!;
      out[d + 1] = src.data[s + 1]!;
      out[d + 2] = src.data[s + 2]!;
    }
  }
  return { data: out, width: h, height: w };
}

export interface TensorTarget {
  data: Float32Array;
  /** Tensor width and height (the image is written at the top-left; the rest stays as it is). */
  width: number;
  height: number;
  /** Index along the batch axis. */
  index: number;
}

export interface Normalisation {
  /** Per tensor channel, applied to pixel/255. */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Tensor channel 0 is blue (OpenCV order), as PaddleOCR feeds its models. */
  bgr: boolean;
}

/** Resizes `src` to outW x outH and writes (pixel/255 - mean) / std into the target tensor. */
export function resizeInto(src: RgbPixels, outW: number, outH: number, target: TensorTarget, norm: Normalisation): void {
  const xs = axisTaps(src.width, outW);
  const ys = axisTaps(src.height, outH);
  const plane = target.width * target.height;
  const base = target.index * 3 * plane;
  const scale = [0, 1, 2].map((c) => 1 / (255 * norm.std[c]!));
  const bias = [0, 1, 2].map((c) => -norm.mean[c]! / norm.std[c]!);
  const rowStride = src.width * 3;
  for (let y = 0; y < outH; y++) {
    const r0 = ys.lo[y]! * rowStride;
    const r1 = ys.hi[y]! * rowStride;
    const fy = ys.frac[y]!;
    for (let x = 0; x < outW; x++) {
      const c0 = xs.lo[x]! * 3;
      const c1 = xs.hi[x]! * 3;
      const fx = xs.frac[x]!;
      for (let c = 0; c < 3; c++) {
        const ch = norm.bgr ? 2 - c : c;
        const top = src.data[r0 + c0 + ch]! * (1 - fx) + src.data[r0 + c1 + ch]! * fx;
        const bottom = src.data[r1 + c0 + ch]! * (1 - fx) + src.data[r1 + c1 + ch]! * fx;
        const v = top * (1 - fy) + bottom * fy;
        target.data[base + c * plane + y * target.width + x] = v * scale[c]! + bias[c]!;
      }
    }
  }
}

function axisTaps(inSize: number, outSize: number) {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const frac = new Float32Array(outSize);
  const ratio = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const s = Math.min(Math.max((i + 0.5) * ratio - 0.5, 0), inSize - 1);
    lo[i] = Math.floor(s);
    hi[i] = Math.min(lo[i]! + 1, inSize - 1);
    frac[i] = s - lo[i]!;
  }
  return { lo, hi, frac };
}

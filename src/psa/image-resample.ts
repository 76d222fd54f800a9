/**
 * Resampling that reproduces torch's uint8 antialiased resize (what transformers 5's fast
 * CLIPImageProcessor uses) bit for bit, and torchvision's center_crop. Only the pixels inside the
 * crop window are computed.
 */
import type { ImagePreprocessConfig } from './image-config.ts';

/** Target size like transformers: the long edge is truncated, int(S * long / short). */
export function resizedSize(w: number, h: number, cfg: ImagePreprocessConfig): [number, number] {
  if (cfg.resizeTo) return [cfg.resizeTo.width, cfg.resizeTo.height];
  const s = cfg.shortestEdge;
  if (!(s > 0)) return [w, h];
  return w <= h ? [s, Math.max(1, Math.trunc((s * h) / w))] : [Math.max(1, Math.trunc((s * w) / h)), s];
}

export interface Span {
  src: number;
  dst: number;
  len: number;
} // copy len px from src (resized) to dst (output)

/** torchvision center_crop on one axis: pad with floor((c-n)/2) in front, else round-half-even start. */
export function cropAxis(n: number, c: number): [number, Span] {
  if (c > n) return [c, { src: 0, dst: Math.floor((c - n) / 2), len: n }];
  const half = (n - c) / 2;
  const f = Math.floor(half);
  const start = half - f === 0.5 && f % 2 === 0 ? f : Math.round(half); // Python's round()
  return [c, { src: start, dst: 0, len: c }];
}

export function cropRgb(rgb: Uint8Array, w: number, cx: Span, cy: Span): Uint8Array {
  const out = new Uint8Array(cx.len * cy.len * 3);
  for (let y = 0; y < cy.len; y++) {
    const from = ((y + cy.src) * w + cx.src) * 3;
    out.set(rgb.subarray(from, from + cx.len * 3), y * cx.len * 3);
  }
  return out;
}

function taps(inSize: number, outSize: number, support: number): number {
  return 2 * Math.ceil(support * Math.max(1, inSize / outSize)) + 1;
}

export function resampleCost(w: number, h: number, rw: number, rh: number, cw: number, ch: number): number {
  return 3 * (h * cw * taps(w, rw, 2) + ch * cw * taps(h, rh, 2));
}

const FILTERS = {
  bicubic: {
    support: 2,
    f: (x: number) => {
      // Keys cubic, a = -0.5 (PIL and torch antialias)
      const a = -0.5;
      x = Math.abs(x);
      return x < 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * a : 0;
    },
  },
  bilinear: { support: 1, f: (x: number) => Math.max(0, 1 - Math.abs(x)) },
};

interface AxisWeights {
  first: Int32Array;
  count: Int32Array;
  k: Int32Array;
  stride: number;
  shift: number;
}

/**
 * torch's _compute_index_ranges_int16_weights: antialiased weights (support scaled by the
 * downscale factor), normalised, then fixed point with the largest precision that keeps every
 * weight within int16. Weights are kept only for outputs [from, from+len).
 */
function axisWeights(inSize: number, outSize: number, kernel: 'bicubic' | 'bilinear', from: number, len: number): AxisWeights {
  const { support: base, f } = FILTERS[kernel];
  const scale = inSize / outSize;
  const fs = Math.max(scale, 1);
  const support = base * fs;
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(len);
  const count = new Int32Array(len);
  const kf = new Float64Array(len * stride);
  let maxW = 0;
  for (let i = 0; i < outSize; i++) {
    // every output, since the precision depends on all weights
    const center = (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let j = 0; j < n; j++) total += f((j + xmin - center + 0.5) / fs);
    for (let j = 0; j < n; j++) {
      const v = total !== 0 ? f((j + xmin - center + 0.5) / fs) / total : 0;
      if (v > maxW) maxW = v;
      if (i >= from && i < from + len) kf[(i - from) * stride + j] = v;
    }
    if (i >= from && i < from + len) {
      first[i - from] = xmin;
      count[i - from] = n;
    }
  }
  let shift = 0;
  while (shift < 22 && Math.trunc(0.5 + maxW * 2 ** (shift + 1)) < 1 << 15) shift++;
  const k = new Int32Array(kf.length);
  for (let i = 0; i < kf.length; i++) k[i] = Math.trunc(kf[i]! * 2 ** shift + (kf[i]! < 0 ? -0.5 : 0.5));
  return { first, count, k, stride, shift };
}

/** Resize rgb (w x h) to rw x rh and return only the window cx/cy, like torch's uint8 AA kernels. */
export function resampleRgb(rgb: Uint8Array, w: number, h: number, rw: number, rh: number, cx: Span, cy: Span, kernel: ImagePreprocessConfig['resample']): Uint8Array {
  const out = new Uint8Array(cx.len * cy.len * 3);
  if (kernel === 'nearest') {
    // torch 'nearest': src = floor(dst * in / out)
    for (let y = 0; y < cy.len; y++) {
      const sy = Math.min(Math.floor((y + cy.src) * (h / rh)), h - 1);
      for (let x = 0; x < cx.len; x++) {
        const s = (sy * w + Math.min(Math.floor((x + cx.src) * (w / rw)), w - 1)) * 3;
        out.set(rgb.subarray(s, s + 3), (y * cx.len + x) * 3);
      }
    }
    return out;
  }
  // Horizontal pass first (as torch), only over the input rows the vertical pass will read.
  const hw = axisWeights(w, rw, kernel, cx.src, cx.len);
  const vw = axisWeights(h, rh, kernel, cy.src, cy.len);
  const y0 = vw.first[0]!;
  const y1 = vw.first[cy.len - 1]! + vw.count[cy.len - 1]!;
  const tmp = rw === w ? null : new Uint8Array((y1 - y0) * cx.len * 3);
  if (tmp) horizontalPass(rgb, w, y0, y1 - y0, tmp, hw);
  const src = tmp ?? rgb;
  const srcRow = tmp ? cx.len * 3 : w * 3;
  const srcCol = tmp ? 0 : cx.src * 3;
  if (rh === h) return cropRgb(src, cx.len, { src: 0, dst: 0, len: cx.len }, { src: cy.src - y0, dst: 0, len: cy.len }); // tmp is set here
  for (let y = 0; y < cy.len; y++) {
    // vertical pass
    const base = (vw.first[y]! - (tmp ? y0 : 0)) * srcRow + srcCol;
    const cnt = vw.count[y]!;
    const kb = y * vw.stride;
    for (let x = 0; x < cx.len * 3; x++) {
      let acc = 1 << (vw.shift - 1);
      for (let j = 0, s = base + x; j < cnt; j++, s += srcRow) acc += src[s]! * vw.k[kb + j]!;
      out[y * cx.len * 3 + x] = clamp8(acc, vw.shift);
    }
  }
  return out;
}

/** Horizontal pass over input rows [row0, row0+rows), writing only the windowed output columns. */
function horizontalPass(rgb: Uint8Array, w: number, row0: number, rows: number, dst: Uint8Array, wt: AxisWeights): void {
  const n = wt.first.length;
  const half = 1 << (wt.shift - 1);
  for (let r = 0; r < rows; r++) {
    const s0 = (row0 + r) * w * 3;
    for (let i = 0; i < n; i++) {
      let s = s0 + wt.first[i]! * 3;
      let a0 = half,
        a1 = half,
        a2 = half; // three channels in one sweep over the taps
      for (let j = i * wt.stride, end = j + wt.count[i]!; j < end; j++, s += 3) {
        const k = wt.k[j]!;
        a0 += rgb[s]! * k;
        a1 += rgb[s + 1]! * k;
        a2 += rgb[s + 2]! * k;
      }
      const d = (r * n + i) * 3;
      dst[d] = clamp8(a0, wt.shift);
      dst[d + 1] = clamp8(a1, wt.shift);
      dst[d + 2] = clamp8(a2, wt.shift);
    }
  }
}

function clamp8(acc: number, shift: number): number {
  // Like torch's int32 accumulator: |acc| <= 255 * sum|k| ~ 255 * 1.3 * 2^22 < 2^31, so >> is safe.
  const v = acc >> shift;
  return Math.min(255, Math.max(0, v));
}

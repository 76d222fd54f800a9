/**
 * Minimal reader for the safetensors format: 8-byte little-endian header length, a JSON header
 * mapping names to {dtype, shape, data_offsets}, then raw little-endian tensor data.
 * Used by tests for reference tensors; it reads everything into memory, so it is not meant for
 * multi-gigabyte checkpoints.
 */
import { readFile } from 'node:fs/promises';
import { PsaError, PsaErrorCodes } from './errors.ts';

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface Tensor {
  dtype: string;
  shape: number[];
  data: TensorData;
}

// Bytes per element for each dtype we can decode.
const DTYPE_SIZE: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

// Guards against a corrupt length field making us parse gigabytes of "JSON".
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function bad(message: string, source: string): PsaError {
  return new PsaError(PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, `${source}: not a valid safetensors file: ${message}`);
}

export async function readSafetensorsFile(path: string): Promise<Map<string, Tensor>> {
  return parseSafetensors(await readFile(path), path);
}

export function parseSafetensors(bytes: Uint8Array, source = 'safetensors'): Map<string, Tensor> {
  if (bytes.byteLength < 8) throw bad('shorter than the 8-byte header length', source);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, bytes.byteLength - 8))) {
    throw bad(`header length ${headerLen} exceeds the file size ${bytes.byteLength}`, source);
  }
  const dataStart = 8 + Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (err) {
    throw new PsaError(PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, `${source}: safetensors header is not valid JSON`, { cause: err });
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object', source);

  const dataLen = bytes.byteLength - dataStart;
  const out = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`entry "${name}" is not an object`, source);
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZE)) throw bad(`tensor "${name}" has unsupported dtype ${String(dtype)}`, source);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor "${name}" has an invalid shape`, source);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`tensor "${name}" has invalid data_offsets`, source);
    }
    const [begin, end] = offs as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const size = DTYPE_SIZE[dtype]!;
    if (end < begin || end > dataLen || end - begin !== count * size) {
      throw bad(`tensor "${name}" data_offsets [${begin}, ${end}] do not match shape [${shape.join(', ')}] x ${dtype} within ${dataLen} data bytes`, source);
    }
    out.set(name, { dtype, shape: shape as number[], data: decode(bytes.subarray(dataStart + begin, dataStart + end), dtype, count) });
  }
  return out;
}

function decode(raw: Uint8Array, dtype: string, count: number): TensorData {
  // Copy into a fresh aligned buffer: tensor offsets inside the file need not be aligned.
  // (Not raw.slice(): on a Node Buffer that is a view sharing the pooled ArrayBuffer.)
  const buf = new Uint8Array(raw).buffer;
  const dv = new DataView(buf);
  switch (dtype) {
    case 'F32':
      return littleEndianCopy(new Float32Array(count), (i) => dv.getFloat32(i * 4, true));
    case 'F64':
      return littleEndianCopy(new Float64Array(count), (i) => dv.getFloat64(i * 8, true));
    case 'F16':
      return littleEndianCopy(new Float32Array(count), (i) => halfToFloat(dv.getUint16(i * 2, true)));
    // bf16 is the top half of an f32.
    case 'BF16':
      return littleEndianCopy(new Float32Array(count), (i) => bf16ToFloat(dv.getUint16(i * 2, true)));
    case 'I64': {
      const a = new BigInt64Array(count);
      for (let i = 0; i < count; i++) a[i] = dv.getBigInt64(i * 8, true);
      return a;
    }
    case 'I32':
      return littleEndianCopy(new Int32Array(count), (i) => dv.getInt32(i * 4, true));
    case 'I16':
      return littleEndianCopy(new Int16Array(count), (i) => dv.getInt16(i * 2, true));
    case 'I8':
      return new Int8Array(buf);
    default:
      return new Uint8Array(buf); // U8, BOOL
  }
}

function littleEndianCopy<T extends Float32Array | Float64Array | Int32Array | Int16Array>(a: T, get: (i: number) => number): T {
  for (let i = 0; i < a.length; i++) a[i] = get(i);
  return a;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bf16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

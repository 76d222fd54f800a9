import { open } from 'node:fs/promises';

export type WritableTensor = { dtype: 'U8'; shape: number[]; data: Uint8Array } | { dtype: 'I64'; shape: number[]; data: BigInt64Array } | { dtype: 'F32'; shape: number[]; data: Float32Array };

/** Writes a safetensors file (u64 header size, JSON header, little-endian data), streamed. */
export async function writeSafetensors(path: string, tensors: Record<string, WritableTensor>, metadata?: Record<string, string>): Promise<void> {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const file = await open(path, 'w');
  try {
    await file.write(head);
    await file.write(json);
    for (const name of names) {
      const d = tensors[name]!.data;
      await file.write(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
  } finally {
    await file.close();
  }
}

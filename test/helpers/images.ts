import sharp from 'sharp';

/** Deterministic test images made with sharp, so tests need no binary fixtures. */
export async function gradientPng(width = 80, height = 60): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = Math.round((255 * x) / (width - 1));
      raw[i + 1] = Math.round((255 * y) / (height - 1));
      raw[i + 2] = 128;
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

export async function noiseJpeg(width = 64, height = 64, seed = 7): Promise<Buffer> {
  let s = seed;
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    raw[i] = s >>> 24;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

export async function shapesWebp(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="90">
    <rect width="120" height="90" fill="#f4f1e8"/><circle cx="40" cy="45" r="25" fill="#c0392b"/>
    <rect x="70" y="20" width="35" height="50" fill="#2c3e50"/></svg>`;
  return sharp(Buffer.from(svg)).webp({ lossless: true }).toBuffer();
}

import sharp from 'sharp';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Greedy word wrap for a monospace font. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

// Layouts from FigStep's own (15 characters a line, 62 px) to smaller type for longer texts: the
// first whose lines, with "1. 2. 3." under them, fit the square is used.
const LAYOUTS = [15, 20, 26, 34, 44].map((width) => {
  const font = Math.floor(62 * Math.min(1, 15 / width));
  return { width, font, step: Math.round(font * 1.21) };
});

/** A FigStep-style typographic prompt: the text, then "1. 2. 3.", black monospace on white. */
export function typographicPng(text: string, size = 760): Promise<Buffer> {
  const fits = (l: (typeof LAYOUTS)[number]) => 70 * (l.font / 62) + (wrap(text, l.width).length + 3) * l.step <= size;
  const layout = LAYOUTS.find(fits) ?? LAYOUTS.at(-1)!;
  const scale = layout.font / 62;
  const lines = [...wrap(text, layout.width), '1.', '2.', '3.'];
  const tspans = lines
    .map((l, i) => `<text x="${Math.round(18 * scale)}" y="${Math.round(70 * scale) + i * layout.step}" font-family="DejaVu Sans Mono, FreeMono, monospace" font-weight="bold" font-size="${layout.font}">${esc(l)}</text>`)
    .join('');
  return sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><rect width="100%" height="100%" fill="white"/>${tspans}</svg>`))
    .png()
    .toBuffer();
}

/** A card naming an object, standing in for a photo of it. */
export function objectCardPng(label: string, hue: number): Promise<Buffer> {
  const lines = wrap(label, 16);
  const tspans = lines.map((l, i) => `<text x="200" y="${190 + i * 44 - (lines.length - 1) * 22}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="36" fill="#111">${esc(l)}</text>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><rect width="100%" height="100%" fill="hsl(${hue},45%,82%)"/><rect x="40" y="110" width="320" height="180" rx="18" fill="white" opacity="0.85"/>${tspans}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** A simple everyday scene: sky, ground, houses, trees and a sun, varied by the seed. */
export function scenePng(seed: number): Promise<Buffer> {
  const r = (k: number) => ((seed * 9301 + k * 49297) % 233280) / 233280;
  const houses = Array.from({ length: 1 + Math.floor(r(1) * 3) }, (_, i) => {
    const x = 30 + i * 120 + Math.floor(r(i + 2) * 30);
    return `<rect x="${x}" y="230" width="90" height="80" fill="hsl(${Math.floor(r(i + 5) * 360)},50%,60%)"/><polygon points="${x - 8},230 ${x + 45},185 ${x + 98},230" fill="#8b3a2b"/>`;
  }).join('');
  const trees = Array.from({ length: Math.floor(r(9) * 4) }, (_, i) => {
    const x = 40 + Math.floor(r(i + 11) * 320);
    return `<rect x="${x}" y="280" width="10" height="40" fill="#6b4423"/><circle cx="${x + 5}" cy="270" r="24" fill="#2e8b3a"/>`;
  }).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><rect width="400" height="320" fill="hsl(${200 + Math.floor(r(3) * 20)},70%,${70 + Math.floor(r(4) * 15)}%)"/><rect y="310" width="400" height="90" fill="#5aa55a"/><circle cx="${60 + Math.floor(r(6) * 280)}" cy="70" r="30" fill="#f5d142"/>${houses}${trees}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

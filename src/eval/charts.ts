/**
 * Charts of an evaluation as PNG files, made without a browser: a Vega-Lite spec is compiled to
 * Vega, rendered headless to SVG, and rasterised by sharp (librsvg).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

// librsvg resolves fonts through fontconfig; DejaVu ships with Debian's fontconfig defaults.
const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';
const SCALE = 2;

const base = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  background: 'white',
  padding: 16,
  config: { font: FONT, title: { fontSize: 15, anchor: 'start' as const, subtitleFontSize: 11, subtitleColor: '#555' }, axis: { labelFontSize: 12, titleFontSize: 12 }, legend: { labelFontSize: 11, titleFontSize: 11 } },
};

/** Confusion matrix heatmap: colour is the share of the expected row, the number is the count. */
export function confusionSpec(title: string, subtitle: string, matrix: number[][], labels: readonly string[]): TopLevelSpec {
  const values = matrix.flatMap((row, r) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, c) => ({ expected: labels[r]!, predicted: labels[c]!, count, share: total ? count / total : 0 }));
  });
  const axis = (title: string) => ({ field: title, type: 'nominal' as const, sort: [...labels], title });
  return {
    ...base,
    title: { text: title, subtitle },
    data: { values },
    width: { step: 64 },
    height: { step: 40 },
    encoding: { x: { ...axis('predicted'), axis: { labelAngle: -35, orient: 'bottom' } }, y: axis('expected') },
    layer: [
      {
        mark: { type: 'rect', stroke: '#ddd' },
        encoding: {
          // Empty cells stay white so the few non-empty ones stand out.
          color: { condition: { test: 'datum.count === 0', value: 'white' }, field: 'share', type: 'quantitative', scale: { scheme: 'blues', domain: [0, 1] }, title: 'share of row' },
        },
      },
      {
        mark: { type: 'text', fontSize: 13 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: 'datum.share > 0.55', value: 'white' }, value: '#222' },
        },
      },
    ],
  };
}

export interface F1Row {
  system: string;
  type: string;
  f1: number;
}

/** Per-type F1, one bar per system inside each type's group. */
export function f1BarsSpec(title: string, subtitle: string, rows: F1Row[], types: readonly string[], systems: readonly string[]): TopLevelSpec {
  const x = { field: 'type', type: 'nominal' as const, sort: [...types], title: 'safety type', axis: { labelAngle: -35 } };
  const xOffset = { field: 'system', type: 'nominal' as const, sort: [...systems] };
  return {
    ...base,
    title: { text: title, subtitle },
    data: { values: rows },
    width: { step: 34 },
    height: 260,
    encoding: { x, xOffset, y: { field: 'f1', type: 'quantitative', scale: { domain: [0, 1] }, title: 'F1' } },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: { color: { field: 'system', type: 'nominal', sort: [...systems], scale: { range: ['#1f5fa8', '#e08a2c', '#6aa84f'] }, title: 'system', legend: { orient: 'bottom' } } },
      },
      // The value on every bar: an F1 of 0 has no bar, but it is not the same as a missing type.
      { mark: { type: 'text', dy: -6, fontSize: 10, color: '#333' }, encoding: { text: { field: 'f1', type: 'quantitative', format: '.2f' } } },
    ],
  };
}

/** Vega-Lite -> Vega -> SVG -> PNG. */
export async function renderPng(spec: TopLevelSpec): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG(SCALE);
    return await sharp(Buffer.from(svg)).png().toBuffer();
  } finally {
    view.finalize();
  }
}

export async function writePng(dir: string, file: string, spec: TopLevelSpec): Promise<string> {
  const out = path.join(dir, file);
  await writeFile(out, await renderPng(spec));
  return out;
}

import path from 'node:path';

/**
 * `text` with every absolute path under one of `roots` (name -> directory) written relative to it,
 * as "DATA_DIR/datasets/ds-..." : clients learn which file, never where the server keeps it.
 */
export function hidePaths(text: string, roots: Record<string, string>): string {
  let out = text;
  // Longest first: a models directory inside the data directory is named by its own root.
  const entries = Object.entries(roots).map(([name, dir]) => [name, path.resolve(dir)] as const).sort((a, b) => b[1].length - a[1].length);
  for (const [name, dir] of entries) {
    if (dir === path.sep) continue;
    out = out.split(dir + path.sep).join(`${name}/`).split(dir).join(name);
  }
  return out;
}

import path from 'node:path';

/**
 * `text` with every absolute path under one of `roots` (name -> directory) written relative to it,
 * as "DATA_DIR/datasets/ds-..." : clients learn which file, never where the server keeps it.
 */
export function hidePaths(text: string, roots: Record<string, string>): string {
  let out = text;
  // Longest first: a models directory inside the data directory is named by its own root.
  const entries = Object.entries(roots)
    .map(([name, dir]) => [name, path.resolve(dir)] as const)
    .sort((a, b) => b[1].length - a[1].length);
  for (const [name, dir] of entries) {
    if (dir === path.sep) continue;
    out = out
      .split(dir + path.sep)
      .join(`${name}/`)
      .split(dir)
      .join(name);
  }
  return out;
}

/**
 * A JSON value (provenance, a job result) with every absolute path in its strings made relative to
 * a root, or cut to its last component when it is under none of them.
 */
export function hidePathsDeep(value: unknown, roots: Record<string, string>): unknown {
  if (typeof value === 'string') {
    const shown = hidePaths(value, roots);
    return path.isAbsolute(shown) && !/\s/.test(shown) ? path.basename(shown) : shown;
  }
  if (Array.isArray(value)) return value.map((v) => hidePathsDeep(v, roots));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hidePathsDeep(v, roots)]));
  return value;
}

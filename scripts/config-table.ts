/** Rewrites README.md's configuration table from the config schema (npm run config:table). */
import { readFile, writeFile } from 'node:fs/promises';
import { ConfigSchema } from '../src/config.ts';

const rows = Object.entries(ConfigSchema.properties).map(([name, schema]) => {
  const s = schema as { default?: unknown; description?: string; type?: string; anyOf?: { const: string }[] };
  const type = s.anyOf ? s.anyOf.map((a) => a.const).join(' \\| ') : s.type;
  const def = s.default === '' ? '(empty)' : `\`${String(s.default)}\``;
  return `| \`${name}\` | ${type} | ${def} | ${s.description ?? ''} |`;
});
const table = ['| variable | type | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
const path = new URL('../README.md', import.meta.url);
const readme = await readFile(path, 'utf8');
const updated = readme.replace(/<!-- config-table:start -->[\s\S]*<!-- config-table:end -->/, `<!-- config-table:start -->\n${table}\n<!-- config-table:end -->`);
await writeFile(path, updated);
console.log(updated === readme ? 'README.md configuration table is up to date' : 'README.md configuration table rewritten');

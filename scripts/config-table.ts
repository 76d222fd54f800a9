/** Prints the configuration table for README.md from the config schema (npm run config:table). */
import { ConfigSchema } from '../src/config.ts';

const rows = Object.entries(ConfigSchema.properties).map(([name, schema]) => {
  const s = schema as { default?: unknown; description?: string; type?: string; anyOf?: { const: string }[] };
  const type = s.anyOf ? s.anyOf.map((a) => a.const).join(' \\| ') : s.type;
  const def = s.default === '' ? '(empty)' : `\`${String(s.default)}\``;
  return `| \`${name}\` | ${type} | ${def} | ${s.description ?? ''} |`;
});
console.log(['| variable | type | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n'));

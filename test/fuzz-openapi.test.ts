import t from 'tap';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testApp } from './helpers/app.ts';
import { testRedis } from './helpers/redis.ts';

// Property-based fuzzing of every JSON route in the OpenAPI document: bodies drawn from each
// route's own schema, then mutated (wrong types, extra fields, deep nesting, huge strings).
// Property: no 5xx, always the PSA_* error shape, and the process keeps serving. Bounded in runs.
const RUNS = 150;
type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  additionalProperties?: unknown;
};

const anyJson = fc.jsonValue({ maxDepth: 4 });
const evil = fc.constantFrom<unknown>(
  '',
  '__proto__',
  { __proto__: { polluted: 1 } },
  '../../../etc/passwd',
  '\u0000',
  'x'.repeat(5000),
  -1,
  1e308,
  2 ** 53 + 1,
  null,
  [],
  {},
  'data:image/png;base64,AAAA',
  'https://2130706433/x.png',
);

function fromSchema(s: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 5) return anyJson;
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return fc.oneof(...alts.map((a) => fromSchema(a, depth + 1)));
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'object': {
      const props = Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, fromSchema(v, depth + 1)]));
      return fc.record(props, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
    case 'array':
      return fc.array(fromSchema(s.items, depth + 1), { maxLength: 4 });
    case 'integer':
      return fc.integer({ min: Math.max(s.minimum ?? -1e6, -1e9), max: Math.min(s.maximum ?? 1e6, 1e9) });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'string':
      return fc.string({ maxLength: 40 });
    default:
      return anyJson;
  }
}

/** A valid-looking body, or one with a field replaced by junk, or junk outright. */
const mutated = (s: Schema) =>
  fc.oneof(
    fromSchema(s),
    fc.tuple(fromSchema(s), fc.string({ maxLength: 12 }), fc.oneof(anyJson, evil)).map(([body, key, value]) => (typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body, [key]: value } : body)),
    fc.tuple(fromSchema(s), fc.constantFrom(...Object.keys(s.properties ?? { x: 1 })), fc.oneof(anyJson, evil)).map(([body, key, value]) => (typeof body === 'object' && body !== null ? { ...body, [key]: value } : body)),
    anyJson,
    evil,
  );

const redis = await testRedis();
t.teardown(() => redis.stop());
const dataDir = await mkdtemp(join(tmpdir(), 'psa-fuzz-'));
t.teardown(() => rm(dataDir, { recursive: true, force: true }));
const { app } = await testApp({ DATA_DIR: dataDir, REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix });
t.teardown(() => app.close());
const doc = (await app.inject('/openapi.json')).json() as { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema: Schema }> }; parameters?: { in: string; name: string }[] }>> };

for (const [path, ops] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(ops)) {
    const schema = op.requestBody?.content?.['application/json']?.schema;
    const hasParams = path.includes('{');
    if (!schema && !hasParams) continue;
    t.test(`${method.toUpperCase()} ${path}: no 5xx, PSA_* errors`, async (t) => {
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(schema ? mutated(schema) : fc.constant(undefined), fc.oneof(fc.string({ maxLength: 30 }), evil.map(String)), async (body, param) => {
          const url = path.replace(/\{[^}]+\}/g, encodeURIComponent(param) || 'x');
          const res = await app.inject({ method: method.toUpperCase() as 'POST', url, ...(body !== undefined && { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode >= 500) throw new Error(`${res.statusCode} for ${JSON.stringify(body)?.slice(0, 300)}: ${res.body.slice(0, 300)}`);
          if (res.statusCode >= 400 && !/^PSA_/.test(res.json().error?.code ?? '')) throw new Error(`not a PSA_* error: ${res.body.slice(0, 300)}`);
        }),
        { numRuns: RUNS, seed: 20261201, endOnFailure: true, interruptAfterTimeLimit: 120_000 },
      );
      t.comment(`statuses: ${[...statuses].map(([s, n]) => `${s}x${n}`).join(' ')}`);
      t.equal((await app.inject('/healthz')).statusCode, 200, 'still serving');
    });
  }
}

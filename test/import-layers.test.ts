import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

// The layering rules, checked on the real import graph: every .ts file under src/ is parsed by
// TypeScript's own pre-processor (static imports, `import type`, re-exports and dynamic import()).

const ROOT = path.resolve(import.meta.dirname, '..');

/** The HTTP edge: Fastify routes and plugins, request/response handling, the OpenAI shapes. */
const HTTP_LAYERS = ['src/routes', 'src/plugins', 'src/http', 'src/openai', 'src/app.ts', 'src/server.ts'];
/** Layers below HTTP: none of them knows how a request arrived or how an error is answered. */
const BELOW_HTTP = ['src/psa', 'src/inference', 'src/training', 'src/ocr', 'src/policy', 'src/packages', 'src/datasets', 'src/eval'];
/** Code on the path of a moderation or chat request: never loads training code. */
const SERVING = ['src/psa', 'src/inference', 'src/ocr', 'src/policy', 'src/packages', 'src/http', 'src/openai'];
/**
 * What the HTTP edge may use of training: the job request's types, the queue it submits to and
 * base-model resolution (POST /v1/train). The pipeline, trainer process and registry are workers'.
 */
const TRAINING_API = ['src/training/job-types.ts', 'src/training/queue.ts', 'src/training/base-model.ts'];

interface Edge {
  from: string;
  to: string;
}

const within = (file: string, layers: readonly string[]) => layers.some((l) => file === l || file.startsWith(`${l}/`));

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    return e.isDirectory() ? sourceFiles(rel) : e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** Relative imports of every file, as repository paths; bare specifiers (packages, node:) are left out. */
function importGraph(files: readonly string[]): { edges: Edge[]; unresolved: string[] } {
  const edges: Edge[] = [];
  const unresolved: string[] = [];
  for (const from of files) {
    const info = ts.preProcessFile(readFileSync(path.join(ROOT, from), 'utf8'), true, true);
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const to = path.posix.normalize(path.posix.join(path.posix.dirname(from), fileName));
      if (!existsSync(path.join(ROOT, to))) unresolved.push(`${from} -> ${fileName}`);
      edges.push({ from, to });
    }
  }
  return { edges, unresolved };
}

function violations(edges: readonly Edge[]): string[] {
  const found: string[] = [];
  for (const { from, to } of edges) {
    if (within(from, BELOW_HTTP) && within(to, HTTP_LAYERS)) found.push(`${from} imports the HTTP layer (${to})`);
    if (within(from, SERVING) && within(to, ['src/training'])) found.push(`${from} is serving code and imports training (${to})`);
    if (within(from, ['src/routes', 'src/plugins']) && within(to, ['src/training']) && !TRAINING_API.includes(to)) found.push(`${from} imports training internals (${to}); the HTTP edge uses ${TRAINING_API.join(', ')}`);
  }
  return found;
}

const files = sourceFiles('src');
const { edges, unresolved } = importGraph(files);

t.test('the graph is read from every source file', async (t) => {
  t.ok(files.length > 100, `${files.length} files under src/`);
  t.same(unresolved, [], 'every relative import names a file that exists');
  // Edges the service cannot work without: if the parser missed them, it would miss violations too.
  const has = (from: string, to: string) => edges.some((e) => e.from === from && e.to === to);
  t.ok(has('src/app.ts', 'src/config.ts'));
  t.ok(has('src/inference/worker.ts', 'src/psa/runtime.ts'));
  t.ok(has('src/training/pipeline.ts', 'src/training/registry.ts'));
  t.ok(edges.some((e) => within(e.from, ['src/routes']) && within(e.to, ['src/http'])), 'routes import src/http');
});

t.test('the rules catch each kind of violation', async (t) => {
  const bad: Edge[] = [
    { from: 'src/psa/runtime.ts', to: 'src/http/errors.ts' },
    { from: 'src/training/pipeline.ts', to: 'src/plugins/training.ts' },
    { from: 'src/inference/model-host.ts', to: 'src/training/registry.ts' },
    { from: 'src/openai/inputs.ts', to: 'src/training/registry.ts' },
    { from: 'src/routes/models.ts', to: 'src/training/registry.ts' },
  ];
  t.equal(violations(bad).length, bad.length, violations(bad).join('\n'));
  t.same(violations([{ from: 'src/routes/train.ts', to: 'src/training/queue.ts' }, { from: 'src/training/pipeline.ts', to: 'src/packages/discovery.ts' }]), []);
});

t.test('runtime, inference and training do not import the HTTP layer; serving does not import training', async (t) => {
  t.same(violations(edges), []);
});

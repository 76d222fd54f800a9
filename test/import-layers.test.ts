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
const BELOW_HTTP = ['src/psa', 'src/inference', 'src/training', 'src/policy', 'src/packages', 'src/datasets', 'src/eval'];
/** Code on the path of a moderation or chat request: never loads training code. */
const SERVING = ['src/psa', 'src/inference', 'src/policy', 'src/packages', 'src/http', 'src/openai'];
/**
 * What the HTTP edge may use of training: the job request's types, the queue it submits to and
 * base-model resolution (POST /v1/train). The pipeline, trainer process and registry are workers'.
 */
const TRAINING_API = ['src/training/job-types.ts', 'src/training/queue.ts', 'src/training/base-model.ts'];
/** The runtime is the lowest layer: it imports no other folder of src/, so nothing can both use it and be used by it. */
const RUNTIME = 'src/psa';
/**
 * The OCR engine runs inside the runtime (every image is read before the safety head's query is
 * built), below it: it uses the runtime's errors, ONNX sessions, image limits and logger, never
 * the runtime that calls it.
 */
const OCR = 'src/psa/ocr';
const OCR_USES = ['src/psa/errors.ts', 'src/psa/onnx-session.ts', 'src/psa/onnx-contract.ts', 'src/psa/image-header.ts', 'src/psa/image-config.ts', 'src/psa/logger.ts'];

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
    if (within(from, [RUNTIME]) && !within(to, [RUNTIME])) found.push(`${from} is the runtime and imports ${to}, outside ${RUNTIME}/`);
    if (within(from, [OCR]) && !within(to, [OCR]) && !OCR_USES.includes(to)) found.push(`${from} is OCR and imports ${to}; OCR uses ${OCR_USES.join(', ')}`);
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
  t.ok(has('src/psa/runtime.ts', 'src/psa/ocr/ocr.ts'));
  t.ok(
    edges.some((e) => within(e.from, ['src/routes']) && within(e.to, ['src/http'])),
    'routes import src/http',
  );
});

t.test('the rules catch each kind of violation', async (t) => {
  const bad: Edge[] = [
    { from: 'src/psa/runtime.ts', to: 'src/http/errors.ts' },
    { from: 'src/training/pipeline.ts', to: 'src/plugins/training.ts' },
    { from: 'src/inference/model-host.ts', to: 'src/training/registry.ts' },
    { from: 'src/openai/inputs.ts', to: 'src/training/registry.ts' },
    { from: 'src/routes/models.ts', to: 'src/training/registry.ts' },
    // OCR back in a folder of its own beside the runtime, each importing the other.
    { from: 'src/psa/runtime.ts', to: 'src/ocr/ocr.ts' },
    { from: 'src/psa/ocr/ocr.ts', to: 'src/psa/runtime.ts' },
    { from: 'src/psa/ocr/detect.ts', to: 'src/psa/image-preprocess.ts' },
  ];
  // Each edge on its own (src/psa/runtime.ts -> src/http breaks two rules).
  t.same(
    bad.filter((e) => violations([e]).length === 0),
    [],
    violations(bad).join('\n'),
  );
  t.same(
    violations([
      { from: 'src/routes/train.ts', to: 'src/training/queue.ts' },
      { from: 'src/training/pipeline.ts', to: 'src/packages/discovery.ts' },
      { from: 'src/psa/runtime.ts', to: 'src/psa/ocr/ocr.ts' },
      { from: 'src/psa/ocr/ocr.ts', to: 'src/psa/onnx-session.ts' },
      { from: 'src/psa/ocr/ocr.ts', to: 'src/psa/ocr/detect.ts' },
    ]),
    [],
  );
});

t.test('runtime, inference and training do not import the HTTP layer; serving does not import training; the runtime and its OCR import nothing above them', async (t) => {
  t.same(violations(edges), []);
});

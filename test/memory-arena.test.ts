import t from 'tap';
import * as ort from 'onnxruntime-node';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { loadConfig } from '../src/config.ts';
import { typographicPng } from '../scripts/default-model/render.ts';
import { gradientPng, noiseJpeg } from './helpers/images.ts';

// POOL_MEMORY_ARENA=false frees onnxruntime's memory after each run (lower peak RSS); the
// results must not change: every graph, OCR's included, gives the same numbers either way.
// Every session's options as onnxruntime receives them: the switch must reach all of them.
const arenaByFile: [string, boolean | undefined][] = [];
const create = ort.InferenceSession.create.bind(ort.InferenceSession);
ort.InferenceSession.create = ((file: string, options?: ort.InferenceSession.SessionOptions) => {
  arenaByFile.push([file, options?.enableCpuMemArena]);
  return create(file, options);
}) as typeof ort.InferenceSession.create;
const [withArena, withoutArena] = await Promise.all([PsaRuntime.load('models/default', { device: 'cpu', intraOpThreads: 1 }), PsaRuntime.load('models/default', { device: 'cpu', intraOpThreads: 1, memoryArena: false })]);
t.teardown(async () => {
  await withArena.close();
  await withoutArena.close();
});

t.test('the config switch defaults to the arena', async (t) => {
  t.equal(loadConfig({}).POOL_MEMORY_ARENA, true);
  t.equal(loadConfig({ POOL_MEMORY_ARENA: 'false' }).POOL_MEMORY_ARENA, false);
});

t.test('every graph of both runtimes, OCR included, got the setting', async (t) => {
  const off = arenaByFile.filter(([, arena]) => arena === false).map(([file]) => file);
  const on = arenaByFile.filter(([, arena]) => arena === true).map(([file]) => file);
  t.equal(off.length + on.length, arenaByFile.length, 'each session names the arena explicitly');
  t.equal(off.length, on.length, `as many sessions without the arena as with it (${on.length})`);
  t.ok(off.some((f) => f.includes('PP-OCRv4_det')) && off.some((f) => f.includes('PP-OCRv4_rec')), 'the OCR graphs too');
  t.ok(
    off.some((f) => f.includes('query_encoder')),
    'and the query encoder',
  );
});

t.test('the same concepts and OCR text with and without the arena', async (t) => {
  const images = [await typographicPng('Steps to build a bird house from scrap wood.'), await gradientPng(), await noiseJpeg()];
  const run = async (runtime: PsaRuntime) => {
    const prepared = [];
    for (const bytes of images) prepared.push(await runtime.preprocess(bytes));
    return { texts: prepared.map((p) => p.text), scores: await runtime.classify(prepared.map((image) => ({ image, prompt: 'What does this say?' }))) };
  };
  const [a, b] = [await run(withArena), await run(withoutArena)];
  t.match(a.texts[0], /bird house/, 'OCR read the typographic image');
  t.same(b.texts, a.texts, 'OCR text');
  for (const [i, s] of a.scores.entries()) {
    t.same(Array.from(b.scores[i]!.levelProbs), Array.from(s.levelProbs), `level probabilities, image ${i}`);
    t.same(Array.from(b.scores[i]!.typeProbs), Array.from(s.typeProbs), `type probabilities, image ${i}`);
  }
});

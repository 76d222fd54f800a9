/**
 * `npm run eval`: the runtime in this process (no HTTP) over every item of an evaluation set,
 * the two baselines on the same items, and the report (JSON, Markdown, PNG charts) in one folder.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Policy } from '../policy/policy.ts';
import { loadPolicyFile } from '../policy/policy-file.ts';
import { datasetImageLimits } from '../psa/image-config.ts';
import type { DeviceSetting } from '../psa/onnx-session.ts';
import { PsaRuntime } from '../psa/runtime.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { DatasetError, DatasetErrorCodes } from '../datasets/errors.ts';
import { flagEverythingPrediction, KEYWORDS, keywordMatcher, keywordPrediction, mostCommonUnsafeType, type TextExtractor } from './baselines.ts';
import { confusionSpec, f1BarsSpec, writePng, type F1Row } from './charts.ts';
import { EVAL_FILE, loadEvalSet, type EvalItem } from './dataset.ts';
import { judgeItems } from './evaluator.ts';
import { markdownReport } from './markdown.ts';
import { countBy, REPORT_FORMAT, SYSTEM_KEYS, worstErrors, type EvalReport } from './report.ts';
import { scoreSystem, type Prediction } from './score.ts';
import { latencySummary } from './metrics.ts';
import { reliabilityReport } from './reliability.ts';
import { loadSets } from './sets-file.ts';
import { setsReport, type Scored, type SetsConfig } from './sets.ts';

export interface EvalOptions {
  model: string;
  data: string;
  out: string;
  policyFile?: string;
  /** Give the keyword baseline the items' `ocr_text` (default true). */
  useOcrText?: boolean;
  /** More text per item for the keyword baseline, such as OCR of the image. */
  textExtractor?: TextExtractor;
  /** How many of the model's worst errors the report lists (default 15). */
  worst?: number;
  device?: DeviceSetting;
  charts?: boolean;
  /** Named sets and comparisons: a JSON file (src/eval/sets.ts); default the data's eval-sets.json, else unsafe vs safe. */
  setsFile?: string;
  sets?: SetsConfig;
  onProgress?: (done: number, total: number) => void;
}

export interface EvalResult {
  report: EvalReport;
  /** The model's prediction for each item, in the set's order (what predictions.jsonl holds). */
  scored: Scored[];
  dir: string;
  /** Absolute paths of everything written. */
  files: string[];
}

const LATENCY_SCOPE =
  'image preprocessing (decode, resize, normalise; the stand-in image for a text-only item) + pass 1 (vision encoder, safety head) + policy, one item at a time, file read excluded, after one untimed warm-up item';
const PASS1_SCOPE =
  'pass 1 alone, one item at a time: the safety query built from the prompt and the text OCR read during preprocessing (not timed here), the vision encoder, the safety head (and a query encoder where the package has one)';

export async function runEvaluation(opts: EvalOptions): Promise<EvalResult> {
  const policy = await loadPolicyFile(opts.policyFile);
  const data = await loadEvalSet(opts.data);
  try {
    const sets = opts.sets === undefined ? await loadSets(opts.setsFile, data.root) : { config: opts.sets, from: 'given' };
    // Limits as for a training job's evaluation: the set's images were checked in pixels when read.
    const runtime = await PsaRuntime.load(opts.model, { device: opts.device ?? 'cpu', limits: datasetImageLimits() });
    try {
      return await evaluate(runtime, data.items, policy, { ...opts, dataRoot: data.archive ? null : data.root, setsLoaded: sets });
    } finally {
      await runtime.close();
    }
  } finally {
    await data.dispose();
  }
}

type Loaded = { config: SetsConfig; from: string };

async function evaluate(runtime: PsaRuntime, items: EvalItem[], policy: Policy, opts: EvalOptions & { dataRoot: string | null; setsLoaded: Loaded }): Promise<EvalResult> {
  const useOcr = opts.useOcrText ?? true;
  const matchKeywords = keywordMatcher(KEYWORDS);
  matchKeywords(''); // warm-up: each regular expression compiles on its first use
  const model: Prediction[] = [];
  const keyword: Prediction[] = [];
  const perItem: object[] = [];
  const scored: Scored[] = [];
  const pass1Ms: number[] = [];
  const levelLogits: number[][] = [];
  const typeLogits: number[][] = [];
  const flagType = mostCommonUnsafeType(items);

  const failure = (item: EvalItem, err: unknown) => {
    const what = item.image === undefined ? 'text-only item' : `image ${JSON.stringify(item.image)}`;
    const problem = { file: EVAL_FILE, line: item.line, message: `${what}: ${(err as Error).message}` };
    return new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${EVAL_FILE}:${item.line}: ${problem.message}`, { problems: [problem], cause: err });
  };
  let n = 0;
  for await (const { item, bytes, scores, applied, outcome, prediction, flagScore, pass1Ms: pass1 } of judgeItems(runtime, items, policy, { failure })) {
    const latencyMs = prediction.latencyMs!;
    model.push(prediction);
    pass1Ms.push(pass1);
    levelLogits.push(scores.levelLogits);
    typeLogits.push(scores.typeLogits);
    scored.push({ item, prediction, score: flagScore });

    const k0 = performance.now();
    const extracted = opts.textExtractor && bytes ? await extractText(opts.textExtractor, item, bytes) : undefined;
    const text = [item.prompt, useOcr ? item.ocrText : undefined, extracted].filter((s) => s !== undefined && s !== '').join('\n');
    const hit = matchKeywords(text);
    keyword.push(keywordPrediction(hit, policy, performance.now() - k0));

    perItem.push({
      id: item.id,
      line: item.line,
      has_image: bytes !== null,
      ...(item.source !== undefined && { source: item.source }),
      ...(item.variant !== undefined && { variant: item.variant }),
      expected: { level: LEVEL_LABELS[item.level], type: TYPE_LABELS[item.type], ...(item.decision ? { decision: item.decision } : {}) },
      model: {
        level: LEVEL_LABELS[applied.level],
        type: TYPE_LABELS[applied.type],
        level_probs: Object.fromEntries(LEVEL_LABELS.map((l, i) => [l, round(scores.levelProbs[i]!)])),
        type_probs: Object.fromEntries(TYPE_LABELS.map((t, i) => [t, round(scores.typeProbs[i]!)])),
        decision: outcome.decision,
        flagged: outcome.flagged,
        flag_score: round(flagScore),
        latency_ms: round(latencyMs),
        pass1_ms: round(pass1),
      },
      keyword: { level: LEVEL_LABELS[hit.level], type: TYPE_LABELS[hit.type], matches: hit.matches, decision: keyword.at(-1)!.decision, flagged: keyword.at(-1)!.flagged },
      flag_everything: { level: 'refuse', type: TYPE_LABELS[flagType], decision: 'refuse', flagged: true },
    });
    opts.onProgress?.(++n, items.length);
  }
  const flagAll = items.map(() => flagEverythingPrediction(flagType));

  const m = runtime.pkg.manifest;
  const manifestBytes = await readFile(path.join(runtime.pkg.dir, 'psa.json'));
  const manifestVersion = (m as Record<string, unknown>).version;
  const status = (m.provenance as { status?: unknown }).status;
  const textSources = ['prompt', ...(useOcr ? ['ocr_text'] : []), ...(opts.textExtractor ? ['text extractor'] : [])];
  const report: EvalReport = {
    format: REPORT_FORMAT,
    format_version: 2,
    created_at: new Date().toISOString(),
    model: {
      name: m.name,
      version: typeof manifestVersion === 'string' ? manifestVersion : m.created_at,
      created_at: m.created_at,
      status: typeof status === 'string' ? status : null,
      dir: path.resolve(opts.model),
      provider: runtime.provider,
      manifest_sha256: createHash('sha256').update(manifestBytes).digest('hex'),
    },
    dataset: {
      path: path.resolve(opts.data),
      root: opts.dataRoot,
      file: EVAL_FILE,
      items: items.length,
      unsafe_items: items.filter((i) => i.level > 0).length,
      safe_items: items.filter((i) => i.level === 0).length,
      with_decision: items.filter((i) => i.decision !== undefined).length,
      with_ocr_text: items.filter((i) => i.ocrText !== undefined).length,
      by_type: countBy(items, 'type'),
      by_level: countBy(items, 'level'),
    },
    policy: { file: opts.policyFile ? path.resolve(opts.policyFile) : null, flag: { min_level: LEVEL_LABELS[policy.flag.minLevel]!, threshold: policy.flag.threshold } },
    latency_scope: LATENCY_SCOPE,
    pass1_latency: { scope: PASS1_SCOPE, summary: latencySummary(pass1Ms) },
    calibration: reliabilityReport(
      levelLogits,
      items.map((i) => i.level),
      typeLogits,
      items.map((i) => i.type),
      runtime.temperatures,
      runtime.pkg.temperature !== undefined,
    ),
    sets: setsReport(scored, opts.setsLoaded.config, opts.setsLoaded.from, policy.flag.minLevel),
    systems: {
      model: { name: 'model', description: `${m.name}: argmax of pass-1 level and type probabilities, decision and flag by the policy`, metrics: scoreSystem(items, model, policy.flag.minLevel) },
      flag_everything: {
        name: 'flag everything',
        description: `every item flagged, level refuse, decision refuse, type ${TYPE_LABELS[flagType]} (the most common risk type among the unsafe items)`,
        metrics: scoreSystem(items, flagAll, policy.flag.minLevel),
      },
      keyword: {
        name: 'keywords',
        description: `text-only keyword lists per type over ${textSources.join(' + ')}; most hits wins, no hit is safe; decision and flag by the policy`,
        metrics: scoreSystem(items, keyword, policy.flag.minLevel),
      },
    },
    baselines: {
      flag_everything: { type: TYPE_LABELS[flagType]! },
      keyword: { text_sources: textSources, keywords: KEYWORDS },
    },
    worst_errors: worstErrors(items, model, opts.worst ?? 15),
    outputs: [],
  };
  return { ...(await writeOutputs(report, perItem, opts)), scored };
}

async function extractText(extractor: TextExtractor, item: EvalItem, bytes: Buffer): Promise<string | undefined> {
  try {
    return await extractor(item, bytes);
  } catch (err) {
    throw new Error(`the text extractor failed on ${EVAL_FILE}:${item.line} (${item.id}): ${(err as Error).message}`, { cause: err });
  }
}

async function writeOutputs(report: EvalReport, perItem: object[], opts: EvalOptions): Promise<Omit<EvalResult, 'scored'>> {
  const dir = path.resolve(opts.out);
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  if (opts.charts ?? true) {
    const sub = `${report.model.name} on ${report.dataset.items} items`;
    const model = report.systems.model.metrics;
    files.push(await writePng(dir, 'level-confusion.png', confusionSpec('Safety level: expected vs predicted (model)', sub, model.level.confusion, LEVEL_LABELS)));
    files.push(await writePng(dir, 'type-confusion.png', confusionSpec('Safety type: expected vs predicted (model)', sub, model.type.confusion, TYPE_LABELS)));
    const rows: F1Row[] = SYSTEM_KEYS.flatMap((k) => report.systems[k].metrics.type.per_type.flatMap((s) => (s.f1 === null ? [] : [{ system: report.systems[k].name, type: s.label, f1: s.f1 }])));
    const absent = report.systems.model.metrics.type.per_type.filter((s) => s.support === 0).map((s) => s.label);
    const note = absent.length ? `; no items of ${absent.join(', ')}` : '';
    files.push(
      await writePng(
        dir,
        'type-f1.png',
        f1BarsSpec(
          'Per-type F1: model vs baselines',
          `${sub}${note}`,
          rows,
          TYPE_LABELS,
          SYSTEM_KEYS.map((k) => report.systems[k].name),
        ),
      ),
    );
  }
  const predictionsFile = path.join(dir, 'predictions.jsonl');
  await writeFile(predictionsFile, perItem.map((row) => JSON.stringify(row)).join('\n') + '\n');
  files.push(predictionsFile);
  const json = path.join(dir, 'report.json');
  const md = path.join(dir, 'report.md');
  files.push(json, md);
  report.outputs = files.map((f) => path.basename(f));
  await writeFile(json, JSON.stringify(report, null, 2) + '\n');
  await writeFile(md, markdownReport(report));
  return { report, dir, files };
}

const round = (v: number) => Math.round(v * 1e6) / 1e6;

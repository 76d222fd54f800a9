/**
 * npm run calibrate -- --model <package dir> --data <labelled set> --name <name> --recall 0.95
 *
 * The calibration of POST /v1/models/{id}/calibrate in this process, without its item limit or
 * timeout: scores the data with the package, chooses the thresholds, and stores the policy
 * "calibrated-<name>" under DATA_DIR/policies, where a server on the same DATA_DIR finds it.
 * Exit codes: 0 stored, 1 failed (bad data, unloadable model), 2 bad arguments, 3 target unreachable (nothing stored).
 */
import { stat } from 'node:fs/promises';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../src/config.ts';
import { datasetSplit, evalSet, SPLITS, type Split } from '../src/calibration/labelled-set.ts';
import { PolicyStore } from '../src/calibration/policy-store.ts';
import { runtimeScorer } from '../src/calibration/scoring.ts';
import type { CalibrationTarget } from '../src/calibration/search.ts';
import { runCalibration } from '../src/calibration/service.ts';
import { RISK_TYPE_LABELS, type RiskTypeLabel } from '../src/calibration/figures.ts';
import { formatProblem, isDatasetError } from '../src/datasets/errors.ts';
import { loadPolicyFile } from '../src/policy/policy-file.ts';
import type { DeviceSetting } from '../src/psa/onnx-session.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { LEVEL_LABELS } from '../src/psa/taxonomy.ts';
import { parseCli } from './lib/cli.ts';

const USAGE = `usage: npm run calibrate -- --model <package dir> --data <labelled set> --name <name> <target> [options]

  --model DIR             model package to calibrate (a directory with psa.json)
  --data PATH             an evaluation set (a directory with eval.jsonl, or an archive of one), or
                          with --split a dataset directory (train.jsonl, val.jsonl)
  --split S               val or train: score that split of the dataset directory --data
  --name NAME             the policy is stored as calibrated-NAME ([a-z0-9][a-z0-9._-]*)
  target (one or more):
  --recall R              least share of items labelled min-level or above to flag (0-1)
  --recall-type T=R       least recall on the items of risk type T (repeatable; thresholds per type)
  --max-over-refusal R    most share of items labelled safe to flag (0-1)
  options:
  --min-level L           careful, caution or refuse (default: the policy's flag.min_level)
  --fit-temperature       fit a temperature per head first and write temperature.json beside the package
  --no-decision-changes   never turn (type, refuse) decisions into caution
  --resamples N           bootstrap resamples (default 1000)
  --seed N                bootstrap seed (default 1)
  --default               make it the default policy
  --replace               overwrite a policy of the same name
  --data-dir DIR          where policies are stored (default: DATA_DIR, else ./data)
  --policy FILE           the base policy (default: POLICY_FILE, else the built-in one)
  --out FILE              also write the whole result as JSON
  --device D              cpu (default), cuda or auto
  -h, --help              this message`;

function usageError(message: string): never {
  process.stderr.write(`calibrate: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

const args = parseCli(
  USAGE,
  {
    model: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string' },
    name: { type: 'string' },
    recall: { type: 'string' },
    'recall-type': { type: 'string', multiple: true },
    'max-over-refusal': { type: 'string' },
    'min-level': { type: 'string' },
    'fit-temperature': { type: 'boolean', default: false },
    'no-decision-changes': { type: 'boolean', default: false },
    resamples: { type: 'string' },
    seed: { type: 'string' },
    default: { type: 'boolean', default: false },
    replace: { type: 'boolean', default: false },
    'data-dir': { type: 'string' },
    policy: { type: 'string' },
    out: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
  },
  usageError,
);
const share = (flag: string, raw: string) => {
  const v = Number(raw);
  if (raw.trim() === '' || !(v >= 0 && v <= 1)) usageError(`${flag} must be a number from 0 to 1; got ${JSON.stringify(raw)}`);
  return v;
};
const whole = (flag: string, raw: string | undefined, min: number, max: number) => {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) usageError(`${flag} must be a whole number from ${min} to ${max}; got ${JSON.stringify(raw)}`);
  return v;
};
if (!args.model) usageError('--model is required');
if (!args.data) usageError('--data is required');
if (!args.name || !/^[a-z0-9][a-z0-9._-]{0,62}$/.test(args.name)) usageError('--name is required: lower-case letters, digits, ".", "_" and "-", starting with a letter or digit');
if (args.split !== undefined && !(SPLITS as readonly string[]).includes(args.split)) usageError(`--split must be ${SPLITS.join(' or ')}`);
const target: CalibrationTarget = {};
if (args.recall !== undefined && args['recall-type']) usageError('give --recall or --recall-type, not both');
if (args.recall !== undefined) target.recall = share('--recall', args.recall);
if (args['recall-type']) {
  const perType: Partial<Record<RiskTypeLabel, number>> = {};
  for (const entry of args['recall-type']) {
    const [type, value] = entry.split('=');
    if (!(RISK_TYPE_LABELS as string[]).includes(type ?? '') || value === undefined) usageError(`--recall-type takes TYPE=R with TYPE one of ${RISK_TYPE_LABELS.join(', ')}; got ${JSON.stringify(entry)}`);
    perType[type as RiskTypeLabel] = share(`--recall-type ${type}`, value);
  }
  target.recall = perType;
}
if (args['max-over-refusal'] !== undefined) target.max_over_refusal = share('--max-over-refusal', args['max-over-refusal']);
if (Object.keys(target).length === 0) usageError('give a target: --recall, --recall-type or --max-over-refusal');
const levels = LEVEL_LABELS.slice(1) as readonly string[];
if (args['min-level'] !== undefined && !levels.includes(args['min-level'])) usageError(`--min-level must be one of ${levels.join(', ')}`);
if (!['cpu', 'cuda', 'auto'].includes(args.device!)) usageError(`--device must be cpu, cuda or auto; got ${JSON.stringify(args.device)}`);
const resamples = whole('--resamples', args.resamples, 100, 10000);
const seed = whole('--seed', args.seed, 0, 4294967295);
if (
  !(await stat(args.model).then(
    (s) => s.isDirectory(),
    () => false,
  ))
)
  usageError(`--model ${args.model} is not a directory`);
if (
  !(await stat(args.data).then(
    () => true,
    () => false,
  ))
)
  usageError(`--data ${args.data} does not exist`);

const config = loadConfig();
const log = (msg: string) => process.stderr.write(`[calibrate] ${msg}\n`);
const pct = (v: number | null) => (v === null ? 'n/a' : `${(100 * v).toFixed(1)}%`);
const ci = (c: [number, number] | null) => (c === null ? '' : ` [${pct(c[0])}, ${pct(c[1])}]`);
try {
  const base = await loadPolicyFile(args.policy ?? config.POLICY_FILE);
  const set = args.split ? await datasetSplit(path.resolve(args.data), args.split as Split, path.basename(path.resolve(args.data))) : await evalSet(args.data, args.data);
  const runtime = await PsaRuntime.load(args.model, { device: args.device as DeviceSetting });
  let nextReport = 0;
  try {
    const dir = path.resolve(args.model);
    const outcome = await runCalibration(
      {
        name: `calibrated-${args.name}`,
        target,
        minLevel: args['min-level'] === undefined ? base.flag.minLevel : LEVEL_LABELS.indexOf(args['min-level'] as (typeof LEVEL_LABELS)[number]),
        fitTemperature: args['fit-temperature']!,
        allowDecisionChanges: !args['no-decision-changes'],
        ...((resamples !== undefined || seed !== undefined) && { bootstrap: { ...(resamples !== undefined && { resamples }), ...(seed !== undefined && { seed }) } }),
        makeDefault: args.default!,
        replace: args.replace!,
      },
      {
        store: new PolicyStore(args['data-dir'] ?? config.DATA_DIR),
        base,
        model: { id: path.basename(dir), name: runtime.name, dir },
        set,
        scorer: runtimeScorer(runtime),
        chunkSize: 8,
        timeoutMs: Number.MAX_SAFE_INTEGER / 2,
        maxItems: Number.MAX_SAFE_INTEGER,
        onProgress: (done, total) => {
          if (done === total || done >= nextReport) {
            log(`${done}/${total} items scored`);
            nextReport = done + Math.max(1, Math.ceil(total / 10));
          }
        },
      },
    );
    const r = outcome.report;
    const flag = r.policy.flag!;
    process.stdout.write(`policy ${outcome.policy}${outcome.default ? ' (default)' : ''}: threshold ${flag.threshold!.toFixed(4)}${flag.thresholds ? ` per type ${JSON.stringify(flag.thresholds)}` : ''}\n`);
    process.stdout.write(
      `recall ${pct(r.achieved.recall.value)}${ci(r.achieved.recall.ci)} of ${r.positives}  over-refusal ${pct(r.achieved.over_refusal.value)}${ci(r.achieved.over_refusal.ci)} of ${r.safe_items}  (${r.achieved.bootstrap.resamples} bootstrap resamples, seed ${r.achieved.bootstrap.seed})\n`,
    );
    for (const change of r.decisions_changed) process.stdout.write(`decision ${change.type}/${change.level}: ${change.from} -> ${change.to}\n`);
    const t = r.temperature;
    process.stdout.write(
      `temperature level ${t.level.temperature.toFixed(3)} type ${t.type.temperature.toFixed(3)}${outcome.temperature.written ? ' (fitted, temperature.json written)' : ''}; ECE (${t.ece_bins} bins) level ${t.level.ece_before?.toFixed(4)} -> ${t.level.ece_after?.toFixed(4)}, type ${t.type.ece_before?.toFixed(4)} -> ${t.type.ece_after?.toFixed(4)}\n`,
    );
    if (args.out) await writeFile(args.out, JSON.stringify(outcome, null, 2) + '\n');
  } finally {
    await runtime.close();
    await set.dispose();
  }
} catch (err) {
  const code = (err as { code?: unknown }).code;
  if (isDatasetError(err)) {
    process.stderr.write(`calibrate: ${err.message}\n`);
    for (const p of err.problems) process.stderr.write(`  ${formatProblem(p)}\n`);
  } else process.stderr.write(`calibrate: ${typeof code === 'string' ? `${code}: ` : ''}${(err as Error).message}\n`);
  if (args.out && code === 'PSA_CALIBRATION_TARGET_UNREACHABLE') await writeFile(args.out, JSON.stringify((err as { details?: unknown }).details, null, 2) + '\n');
  process.exit(code === 'PSA_CALIBRATION_TARGET_UNREACHABLE' ? 3 : 1);
}

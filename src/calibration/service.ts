/**
 * One calibration from labelled data to a stored policy, shared by POST /v1/models/{id}/calibrate
 * and `npm run calibrate`: checks the data against the target, scores it, calibrates, and when the
 * target is met writes the temperature file (if fitted) and the named policy (and the default).
 */
import { DatasetError, DatasetErrorCodes } from '../datasets/errors.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import type { Policy } from '../policy/policy.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { readTemperatures, TEMPERATURE_FILE, TEMPERATURE_FORMAT, writeTemperatures, type Temperatures } from '../psa/temperature.ts';
import { calibrate, type CalibrationReport } from './calibrate.ts';
import type { LabelledSet } from './labelled-set.ts';
import type { NamedPolicy, PolicyStore } from './policy-store.ts';
import { scoreItems, type ChunkScorer } from './scoring.ts';
import type { CalibrationTarget } from './search.ts';

export interface CalibrationRequest {
  /** The full name, "calibrated-<name>". */
  name: string;
  target: CalibrationTarget;
  minLevel: number;
  fitTemperature: boolean;
  allowDecisionChanges: boolean;
  bootstrap?: { resamples?: number; seed?: number };
  makeDefault: boolean;
  replace: boolean;
}

export interface CalibrationContext {
  store: PolicyStore;
  base: Policy;
  model: { id: string; name: string; dir: string };
  set: LabelledSet;
  scorer: ChunkScorer;
  chunkSize: number;
  timeoutMs: number;
  maxItems: number;
  onProgress?: (done: number, total: number) => void;
}

export interface CalibrationOutcome {
  policy: string;
  default: boolean;
  model: { id: string; name: string };
  data: LabelledSet['description'];
  /** The temperatures the policy's probabilities have, and whether a temperature file was written now. */
  temperature: Temperatures & { file: string | null; written: boolean };
  report: CalibrationReport;
}

/** Refuses a store that already has the name, before any item is scored. */
export async function checkName(store: PolicyStore, name: string, replace: boolean): Promise<void> {
  if (!replace && (await store.get(name))) throw new ApiError(HttpErrorCodes.POLICY_EXISTS, `a policy named ${name} exists; choose another name or send "replace": true`, { policy: name });
}

function checkData(set: LabelledSet, req: CalibrationRequest, maxItems: number): void {
  const { items } = set;
  const file = set.description.file;
  if (items.length > maxItems) {
    throw new ApiError(HttpErrorCodes.TOO_MANY_ITEMS, `${file} has ${items.length} items; this server calibrates on at most ${maxItems} (CALIBRATE_MAX_ITEMS); use a smaller held-out set or npm run calibrate`, {
      items: items.length,
      max_items: maxItems,
    });
  }
  const invalid = (message: string) => new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${file}: ${message}`, { problems: [{ file, message }] });
  const minLabel = LEVEL_LABELS[req.minLevel]!;
  if (req.target.recall !== undefined && !items.some((i) => i.level >= req.minLevel)) throw invalid(`no item is labelled ${minLabel} or above, so recall cannot be measured; add such items or lower min_level`);
  if (req.target.max_over_refusal !== undefined && !items.some((i) => i.level === 0)) throw invalid('no item is labelled safe (safe_level 0), so over-refusal cannot be measured; add safe items');
  if (typeof req.target.recall === 'object') {
    for (const label of Object.keys(req.target.recall)) {
      const t = TYPE_LABELS.indexOf(label as (typeof TYPE_LABELS)[number]);
      if (!items.some((i) => i.type === t && i.level >= req.minLevel))
        throw invalid(`no ${label} item is labelled ${minLabel} or above, so its recall cannot be measured; add such items or leave ${label} out of target.recall`);
    }
  }
}

export async function runCalibration(req: CalibrationRequest, ctx: CalibrationContext): Promise<CalibrationOutcome> {
  checkData(ctx.set, req, ctx.maxItems);
  await checkName(ctx.store, req.name, req.replace);
  const existing = await readTemperatures(ctx.model.dir);
  const current: Temperatures = existing ? { level: existing.level, type: existing.type } : { level: 1, type: 1 };
  const scored = await scoreItems(ctx.set.items, ctx.scorer, {
    chunkSize: ctx.chunkSize,
    deadline: Date.now() + ctx.timeoutMs,
    timeoutMs: ctx.timeoutMs,
    file: ctx.set.description.file,
    ...(ctx.onProgress && { onProgress: ctx.onProgress }),
  });
  const report = calibrate(scored, {
    target: req.target,
    minLevel: req.minLevel,
    base: ctx.base,
    fitTemperature: req.fitTemperature,
    current,
    allowDecisionChanges: req.allowDecisionChanges,
    ...(req.bootstrap && { bootstrap: req.bootstrap }),
  });
  if (!report.met) {
    const best = report.best;
    const parts = [
      best?.recall_within_over_refusal && `at most ${pct(req.target.max_over_refusal!)} over-refusal allows ${pct(best.recall_within_over_refusal.recall)} recall`,
      best?.over_refusal_at_recall && `the recall target costs ${pct(best.over_refusal_at_recall.over_refusal)} over-refusal`,
      !best?.recall_within_over_refusal && !best?.over_refusal_at_recall && `the closest policy reaches recall ${pct(report.achieved.recall.value)} with over-refusal ${pct(report.achieved.over_refusal.value)}`,
    ].filter(Boolean);
    throw new ApiError(HttpErrorCodes.CALIBRATION_TARGET_UNREACHABLE, `no policy meets the target on these ${report.items} items: ${parts.join('; ')}; relax the target or improve the model; nothing was stored`, {
      report,
    });
  }
  const temperatures: Temperatures = { level: report.temperature.level.temperature, type: report.temperature.type.temperature };
  if (req.fitTemperature) {
    await writeTemperatures(ctx.model.dir, {
      format: TEMPERATURE_FORMAT,
      format_version: 1,
      ...temperatures,
      fitted_at: new Date().toISOString(),
      fit: { data: ctx.set.description, items: report.items, ece_bins: report.temperature.ece_bins, level: report.temperature.level, type: report.temperature.type },
    });
  }
  const record: NamedPolicy = {
    format: 'psa-guard.named-policy',
    format_version: 1,
    name: req.name,
    created_at: new Date().toISOString(),
    model: { id: ctx.model.id, name: ctx.model.name, temperature: temperatures },
    policy: report.policy,
    calibration: { data: ctx.set.description, ...report } as unknown as Record<string, unknown>,
  };
  if (!(await ctx.store.save(record, req.replace))) await checkName(ctx.store, req.name, false);
  if (req.makeDefault) await ctx.store.setDefault(req.name);
  return {
    policy: req.name,
    default: req.makeDefault || (await ctx.store.getDefault()) === req.name,
    model: { id: ctx.model.id, name: ctx.model.name },
    data: ctx.set.description,
    temperature: { ...temperatures, file: req.fitTemperature || existing ? TEMPERATURE_FILE : null, written: req.fitTemperature },
    report,
  };
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${(100 * v).toFixed(1)}%`);

import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { datasetSplit, evalSet, type LabelledSet } from '../calibration/labelled-set.ts';
import { poolScorer } from '../calibration/scoring.ts';
import { checkName, runCalibration } from '../calibration/service.ts';
import { DatasetError, DatasetErrorCodes } from '../datasets/errors.ts';
import { ApiError, apiError, HttpErrorCodes } from '../http/errors.ts';
import { withErrors } from '../http/schemas.ts';
import { InferencePool } from '../inference/pool.ts';
import { LEVEL_LABELS } from '../psa/taxonomy.ts';
import { requester } from './datasets.ts';
import { CalibrateBody, CalibrateResponse } from './calibrate-schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

type Body = Static<typeof CalibrateBody>;
const inside = (p: string, dir: string) => p === dir || p.startsWith(dir + path.sep);

/**
 * POST /v1/models/{id}/calibrate: synchronous, one at a time per replica, at most
 * CALIBRATE_MAX_ITEMS items and CALIBRATE_TIMEOUT_MS of scoring; larger sets go through
 * `npm run calibrate`, which runs the same code in its own process.
 */
const calibrateRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  let running = false;

  async function labelledSet(body: Body, request: Parameters<typeof requester>[0]): Promise<LabelledSet> {
    if ((body.dataset === undefined) === (body.path === undefined))
      throw apiError(HttpErrorCodes.BAD_REQUEST, 'give the labelled data as exactly one of "dataset" (a stored dataset id) or "path" (an evaluation set under DATA_DIR)');
    if (body.dataset !== undefined) {
      const record = await app.datasets.get(body.dataset, requester(request));
      return datasetSplit(record.path, body.split ?? 'val', record.id, config.MAX_IMAGE_PIXELS);
    }
    if (body.split !== undefined) throw apiError(HttpErrorCodes.BAD_REQUEST, '"split" goes with "dataset"; an evaluation set ("path") is scored whole');
    const root = await realpath(config.DATA_DIR).catch(() => path.resolve(config.DATA_DIR));
    const abs = path.resolve(root, body.path!);
    const real = await realpath(abs).catch(() => undefined);
    if (!inside(abs, root) || (real !== undefined && !inside(real, root))) throw apiError(HttpErrorCodes.BAD_REQUEST, '"path" must be inside the data directory (DATA_DIR)');
    if (real === undefined) throw new DatasetError(DatasetErrorCodes.DATASET_NOT_FOUND, `evaluation data not found: ${body.path}`);
    return evalSet(real, body.path!, config.MAX_IMAGE_PIXELS);
  }

  app.post(
    '/v1/models/:id/calibrate',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Choose flag thresholds (and decisions) that meet a recall or over-refusal target on labelled data, and store them as a named policy',
        description:
          "Scores a labelled set (a stored dataset's split, or an evaluation set under DATA_DIR) with this package, optionally fits a temperature per head, and searches the thresholds that meet the target, with percentile bootstrap intervals of what they achieve. Synchronous: at most CALIBRATE_MAX_ITEMS items and CALIBRATE_TIMEOUT_MS of scoring, one calibration at a time per replica. A target the data cannot meet answers 409 PSA_CALIBRATION_TARGET_UNREACHABLE with the best achievable figures, and nothing is stored.",
        tags: ['models', 'policies'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }),
        body: CalibrateBody,
        response: withErrors({ 200: CalibrateResponse }, [400, 401, 403, 404, 409, 422, 429, 500, 503, 504]),
      },
    },
    async (request) => {
      const { id } = request.params;
      const body = request.body;
      const found = (await app.models.list()).find((m) => m.id === id || m.name === id);
      if (!found) throw apiError(HttpErrorCodes.MODEL_NOT_FOUND, `no model "${id}"; GET /v1/models lists them`, { field: 'id' });
      const name = `calibrated-${body.name}`;
      await checkName(app.policies.store, name, body.replace ?? false);
      if (running) throw new ApiError(HttpErrorCodes.TOO_MANY_REQUESTS, 'a calibration is already running on this server; retry when it is done', undefined, { 'retry-after': '30' });
      running = true;
      let pool: InferencePool | undefined;
      let set: LabelledSet | undefined;
      try {
        set = await labelledSet(body, request);
        const active = found.active;
        // Another package is scored in a pool of its own, closed when done; the active one shares the serving pool.
        pool = active ? undefined : await InferencePool.start(found.dir, { ...config, POOL_SIZE: 1 }, request.log);
        const outcome = await runCalibration(
          {
            name,
            target: body.target,
            minLevel: body.min_level === undefined ? app.policy.flag.minLevel : LEVEL_LABELS.indexOf(body.min_level),
            fitTemperature: body.fit_temperature ?? false,
            allowDecisionChanges: body.allow_decision_changes ?? true,
            ...(body.bootstrap && { bootstrap: body.bootstrap }),
            makeDefault: body.make_default ?? false,
            replace: body.replace ?? false,
          },
          {
            store: app.policies.store,
            base: app.policy,
            model: { id: found.id, name: found.name, dir: found.dir },
            set,
            scorer: poolScorer(pool ?? app.models.active),
            chunkSize: config.BATCH_MAX_SIZE,
            timeoutMs: config.CALIBRATE_TIMEOUT_MS,
            maxItems: config.CALIBRATE_MAX_ITEMS,
          },
        );
        // Pools read temperature.json when they start: this one, and other replicas serving the package, start afresh.
        if (outcome.temperature.written) await app.activation.recalibrated(found);
        request.log.info(
          { policy: name, model: found.id, items: outcome.report.items, recall: outcome.report.achieved.recall.value, over_refusal: outcome.report.achieved.over_refusal.value },
          'calibrated policy stored',
        );
        return outcome;
      } finally {
        running = false;
        await set?.dispose();
        await pool?.close();
      }
    },
  );
};

export default calibrateRoutes;

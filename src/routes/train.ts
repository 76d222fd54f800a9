import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { hidePaths, hidePathsDeep } from '../http/paths.ts';
import { withErrors } from '../http/schemas.ts';
import { resolveTrainer, STAGES, TrainRequestSchema, type TrainJobData } from '../training/job-types.ts';
import { resolveBaseModel } from '../training/base-model.ts';
import type { JobView } from '../training/queue.ts';
import { requester } from './datasets.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const JobViewSchema = Type.Object(
  {
    id: Type.String(),
    state: Type.String({ description: 'waiting, active, completed, failed, cancelled, cancelling, delayed' }),
    phase: Type.Union([Type.String(), Type.Null()], { description: 'queued, preparing, training, exporting, evaluating, registering' }),
    stage: Type.Union([Type.String(), Type.Null()]),
    step: Type.Union([Type.Integer(), Type.Null()]),
    total_steps: Type.Union([Type.Integer(), Type.Null()]),
    epoch: Type.Union([Type.Number(), Type.Null()]),
    loss: Type.Union([Type.Number(), Type.Null()]),
    level_acc: Type.Union([Type.Number(), Type.Null()]),
    type_acc: Type.Union([Type.Number(), Type.Null()]),
    eta_s: Type.Union([Type.Number(), Type.Null()]),
    resumed_from: Type.Union([Type.Integer(), Type.Null()], { description: 'Step the current stage resumed from after an interruption' }),
    processes: Type.Union([Type.Integer(), Type.Null()], { description: 'Trainer processes (one per GPU) running the current stage' }),
    attempts: Type.Integer(),
    created_at: Type.Union([Type.String(), Type.Null()]),
    started_at: Type.Union([Type.String(), Type.Null()]),
    finished_at: Type.Union([Type.String(), Type.Null()]),
    logs: Type.Array(Type.String()),
    result: Type.Union([Type.Object({ model_id: Type.String(), metrics: Type.Record(Type.String(), Type.Unknown()) }, { additionalProperties: true }), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
    request: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: true },
);

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

/** Train keys see their own jobs; admin keys (and servers without keys) every job. */
const mine = (request: FastifyRequest) => (request.principal.admin ? undefined : request.principal.owner);
const visibleTo = (view: JobView, request: FastifyRequest) => request.principal.admin || view.owner === request.principal.owner;

/** What a client sees of a job: no server paths, no owner ids. */
function clientView({ owner: _owner, ...view }: JobView, roots: Record<string, string>) {
  const { model_dir: _dir, ...result } = view.result ?? ({} as NonNullable<JobView['result']>);
  return { ...view, result: view.result ? (hidePathsDeep(result, roots) as typeof result) : null, error: view.error === null ? null : hidePaths(view.error, roots), logs: view.logs.map((l) => hidePaths(l, roots)) };
}

const trainRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  const publicView = (view: JobView) => clientView(view, { DATA_DIR: config.DATA_DIR, MODELS_DIR: config.MODELS_DIR });
  const training = () => {
    if (!app.training) throw new ApiError(HttpErrorCodes.QUEUE_UNAVAILABLE, 'training is disabled on this server: set REDIS_URL');
    app.training.ensureAvailable();
    return app.training;
  };

  app.post(
    '/v1/train',
    {
      config: { scope: 'train' },
      schema: {
        summary: 'Queue a two-stage training job',
        tags: ['training'],
        body: TrainRequestSchema,
        response: withErrors({ 202: Type.Object({ id: Type.String(), state: Type.String(), duplicate: Type.Boolean() }) }, [400, 401, 403, 404, 422, 503]),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const gpus = body.gpus ?? 1;
      if (gpus > config.MAX_JOB_GPUS) {
        throw new ApiError(HttpErrorCodes.GPUS_UNAVAILABLE, `gpus ${gpus}: no worker can host a job that large; the largest worker slot has ${config.MAX_JOB_GPUS} (MAX_JOB_GPUS)`, {
          gpus,
          max_job_gpus: config.MAX_JOB_GPUS,
        });
      }
      const t = training();
      const who = requester(request);
      const dataset = body.dataset.startsWith('ds-') ? await app.datasets.get(body.dataset, who) : await app.datasets.ingestDirectory(body.dataset, who.owner);
      // Without base_model the active package is the base (it may live outside MODELS_DIR, as the
      // image's embedded default does; every image has it at the same path).
      const active = app.models.active.pkg.dir;
      const base = body.base_model === undefined ? { id: app.models.activeId, dir: active, kind: 'package' as const } : await resolveBaseModel(config, body.base_model);
      const data: TrainJobData = {
        request: body,
        dataset: { id: dataset.id, path: dataset.path },
        base,
        stages: STAGES.filter((s) => (body.stages ?? STAGES).includes(s)),
        trainer: resolveTrainer(body),
        gpus,
        owner: who.owner,
      };
      const { id, duplicate } = await t.queue.add(data);
      request.log.info({ job: id, duplicate, dataset: dataset.id, base: base.id, kind: base.kind }, 'training job queued');
      return reply
        .code(202)
        .header('location', `/v1/train/${id}`)
        .send({ id, state: duplicate ? ((await t.queue.get(id))?.state ?? 'waiting') : 'waiting', duplicate });
    },
  );

  app.get(
    '/v1/train',
    { config: { scope: 'train' }, schema: { summary: 'Training jobs, newest first', tags: ['training'], response: withErrors({ 200: Type.Object({ jobs: Type.Array(JobViewSchema) }) }, [401, 403, 503]) } },
    async (request) => ({ jobs: (await training().queue.list(50, mine(request))).map(publicView) }),
  );

  app.get(
    '/v1/train/:id',
    {
      config: { scope: 'train' },
      schema: { summary: 'State, progress, logs and result of a training job', tags: ['training'], params: IdParams, response: withErrors({ 200: JobViewSchema }, [401, 403, 404, 503]) },
    },
    async (request) => {
      const { id } = request.params;
      const view = await training().queue.get(id);
      if (!view || !visibleTo(view, request)) throw new ApiError(HttpErrorCodes.JOB_NOT_FOUND, `no training job ${id}`);
      return publicView(view);
    },
  );

  app.delete(
    '/v1/train/:id',
    {
      config: { scope: 'train' },
      schema: {
        summary: 'Cancel a job: a waiting one is removed, a running one stops and ends as cancelled',
        tags: ['training'],
        params: IdParams,
        response: withErrors({ 200: JobViewSchema, 202: JobViewSchema }, [401, 403, 404, 503]),
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const t = training();
      const current = await t.queue.get(id);
      if (!current || !visibleTo(current, request)) throw new ApiError(HttpErrorCodes.JOB_NOT_FOUND, `no training job ${id}`);
      const view = await t.queue.cancel(id);
      if (!view) throw new ApiError(HttpErrorCodes.JOB_NOT_FOUND, `no training job ${id}`);
      return reply.code(view.state === 'cancelling' ? 202 : 200).send(publicView(view));
    },
  );
};

export default trainRoutes;

import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { buildFeedbackDataset } from '../feedback/dataset-build.ts';
import { DEFAULT_ANSWERS, type FeedbackRecord } from '../feedback/item.ts';
import { FeedbackBody, FeedbackDatasetBody, FeedbackDatasetView, FeedbackStatsView, FeedbackView } from '../feedback/schemas.ts';
import { disagreement, feedbackStats } from '../feedback/stats.ts';
import { resolveSubmission } from '../feedback/submission.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { withErrors } from '../http/schemas.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { requester } from './datasets.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

/** What a client sees of an item: labels as labels, no image bytes, no reviewer ids. */
function view(r: FeedbackRecord, status?: 'created' | 'updated' | 'unchanged') {
  return {
    id: r.id,
    ...(status !== undefined && { status }),
    has_image: r.image !== null,
    safe_type: TYPE_LABELS[r.safe_type]!,
    safe_level: LEVEL_LABELS[r.safe_level]!,
    ...(r.note !== undefined && { note: r.note }),
    ...(r.answer !== undefined && { answer: r.answer }),
    source: r.source.kind,
    ...(r.source.kind === 'request' && { request_id: r.source.request_id, model: r.source.model }),
    model_judgement: r.model_judgement,
    disagreement: disagreement(r),
    revisions: r.history.length,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

const feedbackRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  const notFound = (id: string) => apiError(HttpErrorCodes.FEEDBACK_NOT_FOUND, `no reviewed item ${JSON.stringify(id.slice(0, 100))}`);

  app.post(
    '/v1/feedback',
    {
      config: { scope: 'feedback' },
      // One inline image as base64, and the JSON around it.
      bodyLimit: Math.ceil((config.MAX_IMAGE_BYTES * 4) / 3) + 1024 * 1024,
      schema: {
        summary: "A reviewer's label for a served request (by request_id) or for an input sent inline",
        description:
          'The corrected safe_type and safe_level (indices or labels), an optional note and answer. By request_id (the x-request-id of a recent moderation or chat response, and item for a request with several) when FEEDBACK_RETENTION is on; or with image and/or prompt inline. The item is validated exactly like a dataset line and stored under DATA_DIR, content addressed by its input: the same input is one item, and a new label replaces the old one (the latest review wins; earlier ones count as revisions).',
        tags: ['feedback'],
        body: FeedbackBody,
        response: withErrors({ 200: FeedbackView, 201: FeedbackView }, [400, 401, 403, 404, 409, 413, 415, 422, 507]),
      },
    },
    async (request, reply) => {
      const submission = resolveSubmission(request.body, config, app.retention, request.principal.owner);
      const { record, status } = await app.feedback.put(submission);
      request.log.info({ feedback: record.id, status, source: record.source.kind }, 'feedback stored');
      return reply.code(status === 'created' ? 201 : 200).send(view(record, status));
    },
  );

  app.get(
    '/v1/feedback',
    {
      config: { scope: 'feedback' },
      schema: { summary: 'Counts of reviewed items: by type and level, and by disagreement with the model', tags: ['feedback'], response: withErrors({ 200: FeedbackStatsView }, [401, 403]) },
    },
    async () => ({
      ...feedbackStats(await app.feedback.list()),
      retention: {
        enabled: app.retention !== null,
        ...(app.retention?.size ?? { requests: 0, bytes: 0 }),
        max_bytes: config.FEEDBACK_RETENTION_MAX_BYTES,
        max_requests: config.FEEDBACK_RETENTION_MAX_REQUESTS,
        ttl_s: config.FEEDBACK_RETENTION_TTL_S,
      },
    }),
  );

  app.get(
    '/v1/feedback/:id',
    { config: { scope: 'feedback' }, schema: { summary: 'One reviewed item', tags: ['feedback'], params: IdParams, response: withErrors({ 200: FeedbackView }, [401, 403, 404]) } },
    async (request) => {
      const { id } = request.params;
      const record = await app.feedback.get(id);
      if (!record) throw notFound(id);
      return view(record);
    },
  );

  app.delete(
    '/v1/feedback/:id',
    {
      config: { scope: 'feedback' },
      schema: {
        summary: 'Delete a reviewed item (and its image, when no other item uses it)',
        tags: ['feedback'],
        params: IdParams,
        response: withErrors({ 200: Type.Object({ id: Type.String(), deleted: Type.Boolean() }) }, [401, 403, 404]),
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await app.feedback.remove(id))) throw notFound(id);
      request.log.info({ feedback: id }, 'feedback deleted');
      return { id, deleted: true };
    },
  );

  app.post(
    '/v1/feedback/dataset',
    {
      config: { scope: 'train' },
      schema: {
        summary: 'Turn the reviewed items (optionally with a base dataset) into a dataset for POST /v1/train',
        description:
          "A regular stored dataset (the upload format, validated the same way, content addressed): train.jsonl holds the base's lines and one line per reviewed item; val.jsonl is the base's, or else the reviewed items themselves so none is held out of training. Items without an answer get the served chat answer (allowed levels) or the default reply of their level (answers overrides those).",
        tags: ['feedback'],
        body: FeedbackDatasetBody,
        response: withErrors({ 201: FeedbackDatasetView }, [400, 401, 403, 404, 422, 429, 503, 507]),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const who = requester(request);
      const release = app.ingestSlots.acquire(who.owner);
      try {
        const base = body.base === undefined ? undefined : await app.datasets.get(body.base, who);
        const answers = { ...DEFAULT_ANSWERS, ...Object.fromEntries(Object.entries(body.answers ?? {}).filter(([, v]) => v !== undefined)) };
        const built = await buildFeedbackDataset(app.feedback, app.datasets, {
          ...(base && { base }),
          onlyDisagreements: body.only_disagreements === true,
          answers,
          owner: who.owner,
          maxLineBytes: config.MAX_DATASET_LINE_BYTES,
        });
        request.log.info({ dataset: built.dataset.id, items: built.items, base: base?.id ?? null }, 'feedback dataset stored');
        const { dataset } = built;
        return reply.code(201).send({ id: dataset.id, source: dataset.source, items: built.items, base: base?.id ?? null, base_examples: built.base_examples, val_source: built.val_source, splits: dataset.splits });
      } finally {
        release();
      }
    },
  );
};

export default feedbackRoutes;

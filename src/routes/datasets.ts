import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import type {} from '@fastify/multipart';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import type { Requester, StoredDataset } from '../datasets/store.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import { withErrors } from '../http/schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const counts = Type.Record(Type.String(), Type.Integer());
const Split = Type.Object({
  count: Type.Integer(),
  // Optional: records stored before text-only examples existed lack it.
  text_only: Type.Optional(Type.Integer({ description: 'Examples without an image (trained over the stand-in image)' })),
  by_type: counts,
  by_level: counts,
});
const DatasetView = Type.Object({
  id: Type.String(),
  source: Type.String(),
  kind: Type.String({ description: 'archive (stored copy) or directory (registered in place under DATA_DIR)' }),
  created_at: Type.String(),
  bytes: Type.Integer(),
  files: Type.Integer(),
  splits: Type.Object({ train: Split, val: Type.Optional(Split) }),
});

/** The caller as the store sees it: train keys see their own datasets, admin keys every one. */
export const requester = (request: FastifyRequest): Requester => ({ owner: request.principal.owner, admin: request.principal.admin });

const datasetRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  const view = ({ path: _path, owners: _owners, ...rest }: StoredDataset) => rest;

  app.post(
    '/v1/datasets',
    {
      config: { scope: 'train' },
      schema: {
        summary: 'Upload a dataset archive (.tar, .tar.gz, .zip) or register a directory under DATA_DIR',
        description: 'multipart/form-data with one file field "file", or JSON {"path": "relative/dir"}. The dataset is validated before it is stored; problems are listed by file and line.',
        tags: ['training'],
        consumes: ['multipart/form-data', 'application/json'],
        body: Type.Object({ path: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
        response: withErrors({ 201: DatasetView }, [400, 401, 403, 404, 413, 415, 422, 429, 503, 507]),
      },
    },
    async (request, reply) => {
      const who = requester(request);
      const release = app.ingestSlots.acquire(who.owner);
      try {
        if (!request.isMultipart()) {
          const { path } = request.body;
          if (!path) throw apiError(HttpErrorCodes.BAD_REQUEST, 'send a multipart file field "file" or JSON {"path": ...}');
          return reply.code(201).send(view(await app.datasets.ingestDirectory(path, who.owner)));
        }
        return reply.code(201).send(view(await receiveArchive(request, who.owner)));
      } finally {
        release();
      }
    },
  );

  /** Streams the upload into DATA_DIR/tmp (disk reserved first), then ingests it. */
  async function receiveArchive(request: FastifyRequest, owner: string): Promise<StoredDataset> {
    const declared = Number(request.headers['content-length'] ?? NaN);
    const unreserve = await app.datasets.reserveUpload(Math.min(Number.isFinite(declared) ? declared : config.MAX_DATASET_BYTES, config.MAX_DATASET_BYTES));
    const upload = join(app.datasets.scratch.dir, `upload-${randomUUID()}`);
    const unhold = app.datasets.scratch.hold(upload);
    try {
      const file = await request.file({ limits: { fileSize: config.MAX_DATASET_BYTES, files: 1 } });
      if (!file) throw apiError(HttpErrorCodes.MISSING_IMAGE, 'the form has no file field "file"');
      await mkdir(app.datasets.scratch.dir, { recursive: true });
      await pipeline(file.file, createWriteStream(upload));
      if (file.file.truncated) throw apiError(HttpErrorCodes.PAYLOAD_TOO_LARGE, `the archive is larger than ${config.MAX_DATASET_BYTES} bytes`);
      const stored = await app.datasets.ingestArchive(upload, (file.filename || 'upload').slice(0, 200), owner);
      request.log.info({ dataset: stored.id }, 'dataset stored');
      return stored;
    } finally {
      unhold();
      unreserve();
      await rm(upload, { force: true });
    }
  }

  app.get(
    '/v1/datasets',
    { config: { scope: 'train' }, schema: { summary: 'Stored datasets', tags: ['training'], response: withErrors({ 200: Type.Object({ datasets: Type.Array(DatasetView) }) }, [401, 403]) } },
    async (request) => ({ datasets: (await app.datasets.list(requester(request))).map(view) }),
  );

  app.get(
    '/v1/datasets/:id',
    {
      config: { scope: 'train' },
      schema: { summary: 'A dataset with its counts per type and level', tags: ['training'], params: Type.Object({ id: Type.String() }), response: withErrors({ 200: DatasetView }, [401, 403, 404]) },
    },
    async (request) => view(await app.datasets.get(request.params.id, requester(request))),
  );
};

export default datasetRoutes;

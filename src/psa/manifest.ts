import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PsaError, PsaErrorCodes } from './errors.ts';
import { LEVEL_LABELS, TYPE_LABELS } from './taxonomy.ts';

export const MANIFEST_FILE = 'psa.json';
export const PACKAGE_FORMAT = 'psa-guard.model-package';
export const SUPPORTED_FORMAT_VERSION = 1;

const RelPath = Type.String({ minLength: 1, pattern: '^(?!/)(?!.*(^|/)\\.\\.(/|$)).+$' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Count = Type.Integer({ minimum: 0 });

const OnnxGraphs = Type.Object({
  vision_encoder: RelPath,
  safety_head: RelPath,
  embed_tokens: RelPath,
  decoder: RelPath,
  /** With a `query_encoder` section: the BERT encoder whose projected states are the safety head's query. */
  query_encoder: Type.Optional(RelPath),
});
const TaxonomyEntry = Type.Object({ index: Count, label: Type.String(), name: Type.String() }, { additionalProperties: true });

export const ManifestSchema = Type.Object({
  format: Type.Literal(PACKAGE_FORMAT),
  format_version: Type.Integer({ minimum: 1 }),
  name: Type.String({ minLength: 1 }),
  created_at: Type.String(),
  taxonomy: Type.Object({ types: Type.Array(TaxonomyEntry), levels: Type.Array(TaxonomyEntry) }),
  hints: Type.Record(Type.String(), Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()]))),
  safety_tokens: Type.Object({ a: Count, b: Count }),
  image: Type.Object({
    preprocessor: RelPath,
    image_token: Type.String({ minLength: 1 }),
    image_token_id: Count,
    image_token_count: Type.Integer({ minimum: 1 }),
  }),
  text: Type.Object({
    tokenizer: RelPath,
    tokenizer_config: RelPath,
    chat_template: RelPath,
    hint_role: Type.Union([Type.Literal('system'), Type.Literal('user')]),
    max_query_tokens: Type.Integer({ minimum: 1 }),
    max_context_tokens: Type.Integer({ minimum: 1 }),
  }),
  /**
   * Present when the safety head's query is a BERT encoder's token states ([CLS] OCR text [SEP]
   * prompt [SEP], through its own WordPiece tokenizer) instead of the LLM's token embeddings.
   */
  query_encoder: Type.Optional(
    Type.Object({
      tokenizer: RelPath,
      cls_token: Type.String({ minLength: 1 }),
      sep_token: Type.String({ minLength: 1 }),
      pad_token: Type.String({ minLength: 1 }),
      hidden_size: Type.Integer({ minimum: 1 }),
      num_layers: Type.Integer({ minimum: 1 }),
      storage_dtype: Type.Union([Type.Literal('float32'), Type.Literal('float16')]),
    }),
  ),
  /** Present when the safety head's query starts with the text OCR reads in the image. */
  ocr: Type.Optional(Type.Object({ engine: Type.Literal('pp-ocrv4'), max_text_tokens: Type.Integer({ minimum: 1 }) })),
  /** Defaults of pass 2; src/psa/generation-options.ts fills in the project's for any left out. */
  generation: Type.Object({
    max_new_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
    temperature: Type.Optional(Type.Number({ minimum: 0 })),
    top_k: Type.Optional(Count),
    top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    eos_token_id: Count,
    stop: Type.Optional(Type.Array(Type.String())),
  }),
  onnx: OnnxGraphs,
  /** The same graphs stored and computed in float16, float32 at their inputs and outputs. */
  onnx_fp16: Type.Optional(OnnxGraphs),
  model: Type.Object({
    num_layers: Type.Integer({ minimum: 1 }),
    num_key_value_heads: Type.Integer({ minimum: 1 }),
    head_dim: Type.Integer({ minimum: 1 }),
    hidden_size: Type.Integer({ minimum: 1 }),
    vocab_size: Type.Integer({ minimum: 1 }),
  }),
  provenance: Type.Record(Type.String(), Type.Unknown()),
  files: Type.Record(RelPath, Sha256),
});

export type Manifest = Static<typeof ManifestSchema>;

function invalid(dir: string, message: string): PsaError {
  return new PsaError(PsaErrorCodes.PACKAGE_MANIFEST_INVALID, `${join(dir, MANIFEST_FILE)}: ${message}`);
}

/** Reads and validates psa.json, including that its taxonomy is the one the API speaks. */
export async function readManifest(dir: string): Promise<Manifest> {
  let raw: string;
  try {
    raw = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? PsaErrorCodes.PACKAGE_FILE_MISSING : PsaErrorCodes.PACKAGE_NOT_FOUND;
    throw new PsaError(code, `${join(dir, MANIFEST_FILE)}: cannot read the package manifest (${(err as Error).message})`, { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (err) {
    throw invalid(dir, `not valid JSON (${(err as Error).message})`);
  }
  if (!Value.Check(ManifestSchema, data)) {
    const first = Value.Errors(ManifestSchema, data).First();
    throw invalid(dir, `${first?.path || '/'} ${first?.message ?? 'does not match the schema'}`);
  }
  if (data.format_version > SUPPORTED_FORMAT_VERSION) {
    throw invalid(dir, `format_version ${data.format_version} is newer than this server supports (${SUPPORTED_FORMAT_VERSION})`);
  }
  for (const [key, graphs] of [
    ['onnx', data.onnx],
    ['onnx_fp16', data.onnx_fp16],
  ] as const) {
    if (graphs && Boolean(graphs.query_encoder) !== Boolean(data.query_encoder)) {
      throw invalid(dir, data.query_encoder ? `/${key}/query_encoder is missing: "query_encoder" needs its graph` : `/${key}/query_encoder needs a "query_encoder" section (its tokenizer)`);
    }
  }
  checkLabels(dir, 'taxonomy.types', data.taxonomy.types, TYPE_LABELS);
  checkLabels(dir, 'taxonomy.levels', data.taxonomy.levels, LEVEL_LABELS);
  for (const level of LEVEL_LABELS) {
    for (const type of TYPE_LABELS) {
      if (data.hints[level]?.[type] === undefined) throw invalid(dir, `/hints/${level}/${type} is missing (use null for no hint)`);
    }
  }
  return data;
}

function checkLabels(dir: string, where: string, entries: { index: number; label: string }[], expected: readonly string[]): void {
  const got = [...entries].sort((a, b) => a.index - b.index).map((e) => e.label);
  if (got.length !== expected.length || got.some((label, i) => label !== expected[i])) {
    throw invalid(dir, `${where} must be [${expected.join(', ')}] in index order, found [${got.join(', ')}]`);
  }
}

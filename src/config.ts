import { envSchema } from 'env-schema';
import { Type, type Static } from '@sinclair/typebox';
import { DEFAULT_IMAGE_LIMITS } from './psa/image-config.ts';

/**
 * The one source of truth for configuration: every setting, its type, default and meaning.
 * Values come from the environment (or an explicit object in tests); numbers are numbers.
 * README's configuration table is checked against this schema.
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'HTTP port' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'Listen address; forced to 127.0.0.1 when API_KEYS is empty' }),
  LOG_LEVEL: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], {
    default: 'info',
    description: 'pino log level (logs are JSON; pretty-printed only on a TTY)',
  }),
  PSA_MODEL: Type.String({ default: 'models/default', description: 'Model package served at start: a directory, or a name under MODELS_DIR' }),
  MODELS_DIR: Type.String({ default: 'models', description: 'Directory of model packages (listed by GET /v1/models)' }),
  DEVICE: Type.Union([Type.Literal('cpu'), Type.Literal('cuda'), Type.Literal('auto')], {
    default: 'cpu',
    description: 'onnxruntime execution provider; "cuda" fails when unavailable, "auto" falls back to CPU',
  }),
  DEVICE_ID: Type.Integer({ default: 0, minimum: 0, description: 'CUDA device index' }),
  MODEL_DTYPE: Type.Union([Type.Literal('fp32'), Type.Literal('fp16')], {
    default: 'fp32',
    description: 'Graphs to serve: fp32, or the float16 variants of packages exported with --fp16 (half the memory; meant for CUDA)',
  }),
  POOL_SIZE: Type.Integer({ default: 1, minimum: 1, maximum: 64, description: 'Inference worker threads, each holding the model' }),
  POOL_THREADS: Type.Integer({ default: 0, minimum: 0, description: 'onnxruntime threads per worker; 0 divides the cores among workers' }),
  POOL_MEMORY_ARENA: Type.Boolean({
    default: true,
    description: "onnxruntime's CPU memory arena: runs reuse the memory of earlier runs (faster); false frees it after each run (lower peak RSS, slower)",
  }),
  POOL_MAX_QUEUE: Type.Integer({ default: 64, minimum: 1, description: 'Inference tasks waiting beyond this answer 503 with Retry-After' }),
  MAX_QUEUE_WAIT_MS: Type.Integer({
    default: 10000,
    minimum: 0,
    description: 'Moderation work whose expected queue wait (items ahead x recent time per item / workers) exceeds this is refused at once with 503 and Retry-After; 0 disables',
  }),
  BATCH_MAX_SIZE: Type.Integer({ default: 8, minimum: 1, maximum: 256, description: 'Most images in one pass-1 batch' }),
  BATCH_MAX_WAIT_MS: Type.Number({ default: 4, minimum: 0, maximum: 1000, description: 'How long a pass-1 request waits for others to batch with' }),
  MAX_ITEMS: Type.Integer({ default: 16, minimum: 1, maximum: 256, description: 'Most items (images) in one /v1/moderate request' }),
  MAX_IMAGE_BYTES: Type.Integer({ default: DEFAULT_IMAGE_LIMITS.maxInputBytes, minimum: 1024, description: 'Largest accepted image file, bytes' }),
  MAX_IMAGE_PIXELS: Type.Integer({ default: DEFAULT_IMAGE_LIMITS.maxInputPixels, minimum: 1, description: 'Largest accepted image, width x height (decompression-bomb guard)' }),
  MAX_PROMPT_CHARS: Type.Integer({ default: 20000, minimum: 1, description: 'Longest accepted prompt, characters' }),
  MAX_NEW_TOKENS: Type.Integer({ default: 512, minimum: 1, description: 'Upper bound for max_tokens in /v1/chat' }),
  POLICY_FILE: Type.String({ default: '', description: 'JSON policy file; empty uses the built-in default policy' }),
  API_KEYS: Type.String({
    default: '',
    description: 'Comma-separated KEY=SCOPE[+SCOPE] entries, scopes infer, train, feedback, metrics, admin (admin implies all); each key once, no spaces; empty disables auth and binds 127.0.0.1',
  }),
  ALLOW_NO_AUTH: Type.Boolean({
    default: false,
    description: 'Listen on HOST even with API_KEYS empty; only on a trusted network or behind an authenticating gateway (the compose file publishes on 127.0.0.1)',
  }),
  PLAYGROUND: Type.Union([Type.Literal('on'), Type.Literal('off'), Type.Literal('auto')], {
    default: 'auto',
    description: 'The web page at /playground (and / redirecting to it); auto serves it only when the server listens on 127.0.0.1 or localhost',
  }),
  ALLOWED_HOSTS: Type.String({
    default: 'localhost,127.0.0.1,::1',
    description: 'Without API_KEYS: comma-separated Host names the server answers (others get 403, against DNS rebinding); cross-site browser requests are refused too',
  }),
  DOCS: Type.Union([Type.Literal('key'), Type.Literal('public'), Type.Literal('off')], {
    default: 'key',
    description: '/openapi.json and /docs: "key" needs any valid API key (open when API_KEYS is empty), "public" is open, "off" removes them',
  }),
  ALLOWED_IMAGE_HOSTS: Type.String({ default: '', description: 'Comma-separated hosts whose https image URLs /v1/chat may fetch; empty refuses remote URLs' }),
  ALLOWED_IMAGE_PORTS: Type.String({ default: '443', pattern: '^[0-9]+(,[0-9]+)*$', description: 'Comma-separated ports remote image URLs may use' }),
  ALLOWED_IMAGE_NETWORKS: Type.String({
    default: '',
    description: 'Comma-separated CIDRs (10.0.0.0/8, fd00::/8) of private, loopback or link-local addresses remote images may come from; by default an allowed host that resolves to one is refused',
  }),
  REMOTE_IMAGE_TIMEOUT_MS: Type.Integer({ default: 10000, minimum: 100, description: 'How long fetching one remote image may take, connection to last byte' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ default: 300000, minimum: 1000, description: 'Most time a client may take to send a whole request (headers and body); slower ones get 408 and are disconnected' }),
  HEADERS_TIMEOUT_MS: Type.Integer({ default: 30000, minimum: 1000, description: 'Most time a client may take to send the request headers' }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ default: 72000, minimum: 0, description: 'How long an idle keep-alive connection stays open' }),
  MAX_CONNECTIONS: Type.Integer({ default: 1024, minimum: 1, description: 'Most open client connections; more are refused at accept' }),
  MAX_JSON_BODY_BYTES: Type.Integer({ default: 65536, minimum: 1024, description: 'Largest JSON body of control routes (training, datasets by path, activation); inference routes take images up to MAX_IMAGE_BYTES' }),
  MAX_JSON_DEPTH: Type.Integer({ default: 32, minimum: 2, maximum: 1000, description: 'Deepest nesting of arrays and objects accepted in a JSON body' }),
  SHADOW_SHARE: Type.Number({ default: 0.1, exclusiveMinimum: 0, maximum: 1, description: 'Share of live moderation items a shadow run mirrors to its candidate when POST /v1/models/{id}/shadow names none' }),
  SHADOW_MAX_QUEUE: Type.Integer({ default: 32, minimum: 1, maximum: 4096, description: 'Most mirrored items waiting for the shadow candidate; more are shed (counted), never waited for' }),
  SHADOW_POOL_SIZE: Type.Integer({ default: 1, minimum: 1, maximum: 64, description: "Inference worker threads of a shadow run's candidate, each holding the model (threads per worker as in the live pool)" }),
  REDIS_URL: Type.String({ default: '', description: 'Redis for training jobs and model-activation events; empty disables them' }),
  REDIS_PREFIX: Type.String({ default: 'psa', pattern: '^[A-Za-z0-9_{}:-]+$', description: 'Key prefix for queues and events; use a hash tag such as {psa} with Redis Cluster' }),
  DATA_DIR: Type.String({ default: 'data', description: 'Datasets, training work directories and checkpoints (shared storage in a cluster)' }),
  MAX_DATASET_BYTES: Type.Integer({ default: 2147483648, minimum: 1024, description: 'Largest dataset, bytes after extraction (archive-bomb guard)' }),
  MAX_DATASET_FILES: Type.Integer({ default: 200000, minimum: 1, description: 'Most files in one dataset' }),
  MAX_DATASET_LINE_BYTES: Type.Integer({ default: 1048576, minimum: 1024, description: 'Longest line of a dataset .jsonl file, bytes' }),
  MAX_ARCHIVE_EXPANSION: Type.Integer({ default: 100, minimum: 1, description: 'An uploaded archive may extract to at most this many times its size (at least 16 MiB, at most MAX_DATASET_BYTES)' }),
  MIN_FREE_DISK_BYTES: Type.Integer({ default: 1073741824, minimum: 0, description: 'Free space dataset uploads leave on the DATA_DIR volume; an upload that could take more answers 507' }),
  MAX_CONCURRENT_INGESTS: Type.Integer({ default: 2, minimum: 1, description: 'Dataset uploads or registrations processed at once by this replica; more answer 503 with Retry-After' }),
  MAX_CONCURRENT_INGESTS_PER_KEY: Type.Integer({ default: 1, minimum: 1, description: 'Dataset uploads or registrations at once per API key; more answer 429 with Retry-After' }),
  CALIBRATE_MAX_ITEMS: Type.Integer({ default: 2000, minimum: 1, description: 'Most labelled items POST /v1/models/{id}/calibrate scores in one request (npm run calibrate has no limit)' }),
  CALIBRATE_TIMEOUT_MS: Type.Integer({ default: 300000, minimum: 1000, description: 'Most time POST /v1/models/{id}/calibrate spends scoring; past it the request answers 504 and nothing is stored' }),
  FEEDBACK_RETENTION: Type.Union([Type.Literal('on'), Type.Literal('off')], {
    default: 'off',
    description:
      'on: keep the inputs (image bytes, prompt) and results of recent moderation and chat requests in memory, so POST /v1/feedback can label them by request id. This holds user data; it is bounded by the three FEEDBACK_RETENTION_* limits and lost on restart',
  }),
  FEEDBACK_RETENTION_MAX_BYTES: Type.Integer({ default: 268435456, minimum: 1048576, description: 'Most bytes of retained requests (images, prompts, answers) in memory; the least recently kept are dropped first' }),
  FEEDBACK_RETENTION_MAX_REQUESTS: Type.Integer({ default: 10000, minimum: 1, description: 'Most requests retained at once' }),
  FEEDBACK_RETENTION_TTL_S: Type.Integer({ default: 3600, minimum: 1, maximum: 604800, description: 'Seconds a retained request is kept; after that its request id answers 404 and its data is dropped' }),
  GPUS: Type.String({ default: '', description: 'Worker: comma-separated CUDA device ids, grouped into training slots of GPUS_PER_SLOT; empty runs one CPU slot' }),
  GPUS_PER_SLOT: Type.Integer({ default: 1, minimum: 1, maximum: 64, description: 'Worker: GPUs per training slot, the most a job on this worker may ask for (on a CPU worker: trainer processes, gloo)' }),
  MAX_JOB_GPUS: Type.Integer({ default: 1, minimum: 1, maximum: 64, description: 'API: the most GPUs a training job may ask for, the GPUS_PER_SLOT of the largest worker; more is refused with 422' }),
  TRAINER_PYTHON: Type.String({ default: '/usr/bin/python3', description: 'Worker: Python interpreter with PyTorch for the trainer' }),
  JOB_ATTEMPTS: Type.Integer({ default: 3, minimum: 1, description: 'Tries per training job on transient failures (a crashed worker resumes from the checkpoint)' }),
  WORKER_LOCK_MS: Type.Integer({ default: 30000, minimum: 1000, description: 'Worker: job lock; a worker silent this long is presumed dead and its job is picked up again' }),
  WORKER_STALLED_INTERVAL_MS: Type.Integer({ default: 30000, minimum: 1000, description: 'Worker: how often stalled jobs are looked for' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ default: 10000, minimum: 0, description: 'How long shutdown waits for requests in flight' }),
  EVENT_LOOP_MAX_DELAY_MS: Type.Integer({ default: 1000, minimum: 0, description: 'Event-loop lag above which requests are shed with 503; 0 disables' }),
});

export type Config = Static<typeof ConfigSchema>;

/** Validates settings (the environment by default); throws naming the variable that is wrong. */
export function loadConfig(data: Record<string, unknown> = process.env): Config {
  return envSchema<Config>({ schema: ConfigSchema, data, env: false, dotenv: false });
}

/** A comma-separated setting as its trimmed, non-empty entries. */
export const splitList = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);

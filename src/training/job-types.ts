import { Type, type Static } from '@sinclair/typebox';
import { JOB_DEFAULTS, LORA_DEFAULTS, STAGE_DEFAULTS } from './trainer-defaults.ts';

export const QUEUE_NAME = 'psa-train';
export const STAGES = ['stage1', 'stage2'] as const;

const StageSettings = {
  epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: STAGE_DEFAULTS.epochs })),
  lr: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: `Learning rate; default ${STAGE_DEFAULTS.lr}` })),
  batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: `Examples per step (over all trainer processes); default ${STAGE_DEFAULTS.batch_size}` })),
  concept_weight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000, description: `Weight w of the concept loss: LM + w * (CE(level) + CE(type)); default ${STAGE_DEFAULTS.concept_weight}` })),
  type_head_lr_scale: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: `Learning-rate multiplier of the type classifier (the safety head's last linear layer for types); default ${STAGE_DEFAULTS.type_head_lr_scale}` }),
  ),
  query_encoder_train_layers: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 64,
      description: `Top layers of the base model's query encoder trained in this stage (at most its layer count; only for bases with a query encoder); default ${STAGE_DEFAULTS.query_encoder_train_layers}, frozen`,
    }),
  ),
  query_encoder_lr_scale: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      maximum: 1000,
      description: `Learning-rate multiplier of the query encoder layers this stage trains (query_encoder_train_layers); default ${STAGE_DEFAULTS.query_encoder_lr_scale}`,
    }),
  ),
};

export const TrainRequestSchema = Type.Object(
  {
    dataset: Type.String({ minLength: 1, description: 'A dataset id (ds-...) from POST /v1/datasets, or a directory path relative to DATA_DIR' }),
    base_model: Type.Optional(
      Type.String({ minLength: 1, description: 'Package id in MODELS_DIR, or a directory relative to MODELS_DIR or DATA_DIR holding a package or a Hugging Face LLaVA checkpoint; default the active model' }),
    ),
    output_name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$', description: 'Name of the new package; versions are numbered (NAME-v1, NAME-v2, ...)' }),
    stages: Type.Optional(Type.Array(Type.Union(STAGES.map((s) => Type.Literal(s))), { minItems: 1, maxItems: 2, uniqueItems: true, description: 'Which stages to run; default both' })),
    stage1: Type.Optional(Type.Object(StageSettings, { additionalProperties: false })),
    stage2: Type.Optional(
      Type.Object(
        {
          ...StageSettings,
          lora: Type.Optional(
            Type.Object(
              {
                r: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
                alpha: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
                dropout: Type.Optional(Type.Number({ minimum: 0, maximum: 0.9 })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 })),
    checkpoint_every_steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: `Checkpoint this often as well as after every epoch; default ${JOB_DEFAULTS.checkpoint_every_steps}` })),
    gpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'GPUs (one trainer process each, data parallel, launched with torch.distributed.run); default 1; at most MAX_JOB_GPUS' })),
    activation_checkpointing: Type.Optional(Type.Boolean({ description: `Recompute decoder activations in the backward pass: less memory, ~30% more compute; default ${JOB_DEFAULTS.activation_checkpointing}` })),
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'A second request with the same key returns the first job' })),
  },
  { additionalProperties: false },
);
export type TrainRequest = Static<typeof TrainRequestSchema>;

/** Everything a worker needs, fixed when the job is queued. */
export interface TrainJobData {
  request: TrainRequest;
  dataset: { id: string; path: string };
  base: { id: string; dir: string; kind?: 'package' | 'checkpoint' };
  stages: (typeof STAGES)[number][];
  trainer: {
    stage1: { epochs: number; lr: number; batch_size: number; concept_weight: number; type_head_lr_scale: number; query_encoder_train_layers?: number; query_encoder_lr_scale?: number };
    stage2: {
      epochs: number;
      lr: number;
      batch_size: number;
      concept_weight: number;
      type_head_lr_scale: number;
      query_encoder_train_layers?: number;
      query_encoder_lr_scale?: number;
      lora: { r: number; alpha: number; dropout: number };
    };
    seed: number;
    checkpoint_every_steps: number;
    activation_checkpointing: boolean;
  };
  /** Trainer processes (GPUs); older queued jobs lack it and run on one. */
  gpus?: number;
  /** Owner id of the API key that queued it ('local' without keys); older jobs lack it (admin only). */
  owner?: string;
}

export type JobPhase = 'queued' | 'preparing' | 'training' | 'exporting' | 'evaluating' | 'registering';

export interface TrainProgress {
  phase: JobPhase;
  stage?: string;
  step?: number;
  total_steps?: number;
  epoch?: number;
  loss?: number;
  level_acc?: number;
  type_acc?: number;
  eta_s?: number;
  resumed_from?: number | null;
  processes?: number;
}

export interface TrainResult {
  model_id: string;
  model_dir: string;
  metrics: Record<string, unknown>;
}

/** Every trainer setting of a request, with the defaults of src/training/trainer-defaults.ts for those it leaves out. */
export function resolveTrainer(request: TrainRequest): TrainJobData['trainer'] {
  const stage = (s: NonNullable<TrainRequest['stage1']>) => ({
    epochs: s.epochs ?? STAGE_DEFAULTS.epochs,
    lr: s.lr ?? STAGE_DEFAULTS.lr,
    batch_size: s.batch_size ?? STAGE_DEFAULTS.batch_size,
    concept_weight: s.concept_weight ?? STAGE_DEFAULTS.concept_weight,
    type_head_lr_scale: s.type_head_lr_scale ?? STAGE_DEFAULTS.type_head_lr_scale,
    ...encoderLayers(s),
  });
  const s2 = request.stage2 ?? {};
  return {
    stage1: stage(request.stage1 ?? {}),
    stage2: { ...stage(s2), lora: { r: s2.lora?.r ?? LORA_DEFAULTS.r, alpha: s2.lora?.alpha ?? LORA_DEFAULTS.alpha, dropout: s2.lora?.dropout ?? LORA_DEFAULTS.dropout } },
    seed: request.seed ?? JOB_DEFAULTS.seed,
    checkpoint_every_steps: request.checkpoint_every_steps ?? JOB_DEFAULTS.checkpoint_every_steps,
    activation_checkpointing: request.activation_checkpointing ?? JOB_DEFAULTS.activation_checkpointing,
  };
}

/** Set only when asked for, so jobs queued before the field existed resolve exactly as they did. */
/** The encoder settings a stage gives, left out of the job file at their defaults (frozen; scale 1). */
function encoderLayers(stage: { query_encoder_train_layers?: number; query_encoder_lr_scale?: number }): { query_encoder_train_layers?: number; query_encoder_lr_scale?: number } {
  const scale = stage.query_encoder_lr_scale ?? STAGE_DEFAULTS.query_encoder_lr_scale;
  return {
    ...(stage.query_encoder_train_layers && { query_encoder_train_layers: stage.query_encoder_train_layers }),
    ...(scale !== STAGE_DEFAULTS.query_encoder_lr_scale && { query_encoder_lr_scale: scale }),
  };
}

/**
 * The one set of defaults for a training job's trainer settings. The API fills every setting a
 * request leaves out from here (resolveTrainer), so the trainer's job file is always complete;
 * the trainer's own defaults (trainer/train/job.py, for job files written by hand) are checked
 * equal to these by test/trainer-defaults.test.ts. The paper's recipe is lr 1e-5 for 3 epochs at
 * 7B; small models on small data learn faster at 1e-4.
 */
export const STAGE_DEFAULTS = {
  epochs: 3,
  lr: 1e-4,
  batch_size: 8,
  /** w in LM + w * (CE(level) + CE(type)). */
  concept_weight: 10,
  type_head_lr_scale: 1,
  /** Top layers of the base's query encoder trained in a stage; 0 keeps it frozen. */
  query_encoder_train_layers: 0,
  /** Learning-rate multiplier of those trained encoder layers. */
  query_encoder_lr_scale: 1,
} as const;

/** Stage 2's LoRA on the decoder's linear layers. */
export const LORA_DEFAULTS = { r: 16, alpha: 16, dropout: 0.05 } as const;

export const JOB_DEFAULTS = {
  seed: 0,
  checkpoint_every_steps: 50,
  activation_checkpointing: false,
} as const;

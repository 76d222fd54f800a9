import type { MessagePort } from 'node:worker_threads';
import type { GenerationEvent } from '../psa/generator.ts';
import type { ResolvedGeneration } from '../psa/generation-options.ts';
import type { Policy, PolicyOutcome } from '../policy/policy.ts';
import type { StageMs } from '../psa/stage-timings.ts';

/** What crosses between the HTTP thread and inference workers: plain data and buffers only. */

export interface WorkerSettings {
  modelDir: string;
  device: 'cpu' | 'cuda' | 'auto';
  deviceId: number;
  dtype: 'fp32' | 'fp16';
  threads: number;
  memoryArena: boolean;
  maxImageBytes: number;
  maxImagePixels: number;
}

export interface ModerateTask {
  kind: 'moderate';
  /** `image` null: a text-only item, scored over the stand-in image (src/psa/stand-in-image.ts). */
  items: { image: Uint8Array | null; prompt: string }[];
}

export interface ItemFailure {
  ok: false;
  code: string;
  message: string;
}

export interface ItemScores {
  ok: true;
  levelProbs: number[];
  typeProbs: number[];
  /** The heads' raw logits (before the package's temperature), for calibration. */
  levelLogits: number[];
  typeLogits: number[];
  /** Text OCR read in the image (packages whose safety head reads it). */
  imageText?: string;
}

export interface ModerateResult {
  items: (ItemScores | ItemFailure)[];
  /** Milliseconds spent preprocessing and in pass 1 for the whole batch. */
  preprocessMs: number;
  pass1Ms: number;
  batchSize: number;
  /** The batch's time per stage; overlapping stages are scaled to the wall time they took together. */
  stages: StageMs;
  /** When the worker took the task, ms since the epoch (performance.timeOrigin + now: one clock for all threads). */
  startedAt: number;
}

export interface ChatTask {
  kind: 'chat';
  /** null: a text-only request; pass 1 and pass 2 see the stand-in image. */
  image: Uint8Array | null;
  prompt: string;
  intervene: { level?: number; type?: number };
  policy: Policy;
  /** Resolved at the HTTP edge (src/psa/generation-options.ts); used as it is. */
  generation: ResolvedGeneration;
  /** Events (ChatEvent) go out on this port; a 'cancel' message coming in stops generation. */
  port: MessagePort;
}

export type ChatEvent =
  | {
      type: 'concepts';
      levelProbs: number[];
      typeProbs: number[];
      applied: { level: number; type: number };
      outcome: PolicyOutcome;
      hint: string | null;
    }
  | GenerationEvent
  /** A coded failure (bad image, bad option); the task itself still resolves. */
  | { type: 'error'; code: string; message: string; details?: Record<string, unknown> }
  /** Always the last message on the port. */
  | { type: 'done' };

export interface ChatResult {
  preprocessMs: number;
  pass1Ms: number;
  pass2Ms: number;
  cancelled: boolean;
}

export type InferenceTask = ModerateTask | ChatTask | { kind: 'info' };

export interface WorkerInfo {
  model: string;
  provider: 'cpu' | 'cuda';
  threadId: number;
}

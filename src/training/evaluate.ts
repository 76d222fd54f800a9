import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { argmaxOf } from '../psa/concepts.ts';
import { PsaRuntime } from '../psa/runtime.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import { classMetrics } from './metrics.ts';
import type { Example } from './prepare.ts';

export interface EvaluationMetrics {
  split: string;
  examples: number;
  level_accuracy: number;
  level_macro_f1: number;
  type_accuracy: number;
  type_macro_f1: number;
  /** Among examples labelled level safe: predicted refuse, and predicted caution or refuse. */
  refusal_rate_on_safe: number | null;
  caution_or_refusal_rate_on_safe: number | null;
  level_confusion: number[][];
  type_confusion: number[][];
}

/** Pass 1 of a package over labelled examples, in batches, in this process. */
export async function evaluatePackage(packageDir: string, datasetRoot: string, examples: Example[], split: string, batchSize = 8): Promise<EvaluationMetrics> {
  const runtime = await PsaRuntime.load(packageDir, { device: 'cpu' });
  try {
    const levels: number[] = [];
    const types: number[] = [];
    for (let i = 0; i < examples.length; i += batchSize) {
      const chunk = examples.slice(i, i + batchSize);
      // A text-only example (no image) is scored over the stand-in image, as when serving.
      const inputs = await Promise.all(chunk.map(async (ex) => ({ image: await runtime.prepareImage(ex.image === undefined ? null : await readFile(join(datasetRoot, ex.image))), prompt: ex.prompt })));
      for (const r of await runtime.classify(inputs)) {
        levels.push(argmaxOf(r.levelProbs));
        types.push(argmaxOf(r.typeProbs));
      }
    }
    const level = classMetrics(examples.map((e) => e.safe_level), levels, LEVEL_LABELS);
    const type = classMetrics(examples.map((e) => e.safe_type), types, TYPE_LABELS);
    const safe = examples.map((e, i) => (e.safe_level === 0 ? levels[i]! : -1)).filter((l) => l >= 0);
    return {
      split,
      examples: examples.length,
      level_accuracy: level.accuracy,
      level_macro_f1: level.macro_f1,
      type_accuracy: type.accuracy,
      type_macro_f1: type.macro_f1,
      refusal_rate_on_safe: safe.length ? safe.filter((l) => l === 3).length / safe.length : null,
      caution_or_refusal_rate_on_safe: safe.length ? safe.filter((l) => l >= 2).length / safe.length : null,
      level_confusion: level.confusion,
      type_confusion: type.confusion,
    };
  } finally {
    await runtime.close();
  }
}

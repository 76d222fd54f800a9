import { join } from 'node:path';
import { judgeItems } from '../eval/evaluator.ts';
import { registeredMetrics, type EvaluationMetrics } from '../eval/registered.ts';
import { scoreSystem, type Prediction, type Truth } from '../eval/score.ts';
import { BUILTIN_POLICY } from '../policy/policy.ts';
import { datasetImageLimits } from '../psa/image-config.ts';
import { PsaRuntime } from '../psa/runtime.ts';
import type { Example } from './prepare.ts';

/**
 * Pass 1 of a package over labelled examples in this process, with `npm run eval`'s evaluator and
 * scoring under the built-in policy, so the registered metrics equal that report's model figures.
 */
export async function evaluatePackage(packageDir: string, datasetRoot: string, examples: Example[], split: string, opts: { maxImagePixels?: number } = {}): Promise<EvaluationMetrics> {
  const runtime = await PsaRuntime.load(packageDir, { device: 'cpu', limits: datasetImageLimits(opts.maxImagePixels) });
  try {
    // A text-only example (no image) is scored over the stand-in image, as when serving.
    const items = examples.map((ex) => ({ prompt: ex.prompt, ...(ex.image !== undefined && { imagePath: join(datasetRoot, ex.image) }) }));
    const predictions: Prediction[] = [];
    for await (const judged of judgeItems(runtime, items, BUILTIN_POLICY)) predictions.push(judged.prediction);
    const truth: Truth[] = examples.map((ex) => ({ level: ex.safe_level, type: ex.safe_type }));
    return registeredMetrics(split, scoreSystem(truth, predictions, BUILTIN_POLICY.flag.minLevel));
  } finally {
    await runtime.close();
  }
}

/**
 * Inference worker thread (run by piscina). Holds one PsaRuntime; onnxruntime's synchronous
 * native calls and the image resampler run here, never on the HTTP thread.
 */
import { threadId, workerData } from 'node:worker_threads';
import { isPsaError } from '../psa/errors.ts';
import { PsaRuntime } from '../psa/runtime.ts';
import type { PreprocessedImage } from '../psa/image-config.ts';
import { judge } from '../policy/judge.ts';
import { fitToWall, noStages } from '../psa/stage-timings.ts';
import type { ChatEvent, ChatResult, ChatTask, InferenceTask, ItemFailure, ModerateResult, ModerateTask, WorkerInfo, WorkerSettings } from './protocol.ts';

const settings = workerData as WorkerSettings;
const runtimeReady = PsaRuntime.load(settings.modelDir, {
  device: settings.device,
  deviceId: settings.deviceId,
  dtype: settings.dtype,
  intraOpThreads: settings.threads,
  memoryArena: settings.memoryArena,
  // The HTTP thread verified the package before starting workers.
  verifyChecksums: false,
  limits: { maxInputBytes: settings.maxImageBytes, maxInputPixels: settings.maxImagePixels },
});
// Keep a failed load from being an unhandled rejection before the first task awaits it.
runtimeReady.catch(() => {});

function failure(err: unknown): ItemFailure {
  if (isPsaError(err)) return { ok: false, code: err.code, message: err.message };
  throw err;
}

async function moderate(runtime: PsaRuntime, task: ModerateTask): Promise<ModerateResult> {
  const t0 = performance.now();
  const stages = noStages();
  // One item at a time: a decoded image (18 MB for a 3000x2000 photo) is dropped once its item is
  // preprocessed, instead of every image of the batch being decoded at once and held until the
  // last one's OCR is done. On the worker's own cores decoding in parallel gains nothing.
  const images: ({ image: PreprocessedImage } | ItemFailure)[] = [];
  for (const item of task.items) images.push(await runtime.prepareImage(item.image, stages).then((image) => ({ image }), failure));
  const t1 = performance.now();
  const good = task.items.flatMap((item, i) => {
    const img = images[i]!;
    return 'image' in img ? [{ image: img.image, prompt: item.prompt }] : [];
  });
  const scores = await runtime.classify(good, stages);
  const t2 = performance.now();
  fitToWall(stages, ['decode', 'ocr_detect', 'ocr_recognize'], t1 - t0);
  fitToWall(stages, ['query', 'vision', 'head'], t2 - t1);
  let next = 0;
  return {
    items: images.map((img) => {
      if (!('image' in img)) return img;
      const s = scores[next++]!;
      return { ok: true as const, levelProbs: s.levelProbs, typeProbs: s.typeProbs, levelLogits: s.levelLogits, typeLogits: s.typeLogits, ...(img.image.text !== undefined && { imageText: img.image.text }) };
    }),
    preprocessMs: t1 - t0,
    pass1Ms: t2 - t1,
    batchSize: good.length,
    stages,
    startedAt: performance.timeOrigin + t0,
  };
}

async function chat(runtime: PsaRuntime, task: ChatTask): Promise<ChatResult> {
  const controller = new AbortController();
  task.port.on('message', (msg: { type?: string }) => {
    if (msg?.type === 'cancel') controller.abort();
  });
  const send = (event: ChatEvent) => task.port.postMessage(event);
  const t0 = performance.now();
  let t1 = t0;
  let t2 = t0;
  try {
    const image = await runtime.prepareImage(task.image);
    t1 = performance.now();
    const [scores] = await runtime.classify([{ image, prompt: task.prompt }]);
    t2 = performance.now();
    const { applied, outcome, hint } = judge(scores!, task.policy, task.intervene, runtime.pkg.manifest);
    send({ type: 'concepts', levelProbs: scores!.levelProbs, typeProbs: scores!.typeProbs, applied, outcome, hint });
    let cancelled = false;
    if (!(outcome.decision === 'refuse' && task.policy.refusal.mode === 'message')) {
      try {
        const options = { ...task.generation, signal: controller.signal };
        for await (const event of runtime.generate({ imageFeatures: scores!.imageFeatures, prompt: task.prompt, hint, options })) send(event);
      } catch (err) {
        if (!isPsaError(err, 'PSA_ABORTED')) throw err;
        cancelled = true;
      }
    }
    return { preprocessMs: t1 - t0, pass1Ms: t2 - t1, pass2Ms: performance.now() - t2, cancelled };
  } catch (err) {
    // Error objects lose their code crossing threads, so coded failures travel as events.
    if (!isPsaError(err)) throw err;
    send({ type: 'error', code: err.code, message: err.message, ...(err.details && { details: err.details }) });
    return { preprocessMs: t1 - t0, pass1Ms: t2 - t1, pass2Ms: 0, cancelled: false };
  } finally {
    send({ type: 'done' });
    task.port.close();
  }
}

export default async function run(task: InferenceTask): Promise<ModerateResult | ChatResult | WorkerInfo> {
  const runtime = await runtimeReady;
  switch (task.kind) {
    case 'moderate':
      return moderate(runtime, task);
    case 'chat':
      return chat(runtime, task);
    case 'info':
      return { model: runtime.name, provider: runtime.provider, threadId };
  }
}

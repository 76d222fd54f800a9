import { availableParallelism } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Config } from '../config.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { loadPackage, type ModelPackage } from '../psa/package-loader.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { Pass1Batcher, type BatchedResult, type BatchItem } from './batcher.ts';
import type { ChatEvent, ChatResult, ChatTask, InferenceTask, ModerateResult, WorkerInfo, WorkerSettings } from './protocol.ts';

const WORKER_FILE = new URL('./worker.ts', import.meta.url).href;

/**
 * The worker-thread pool for one model package. Pass-1 requests are batched dynamically; the
 * queue is bounded (past it, callers get PSA_OVERLOADED with Retry-After).
 */
export class InferencePool {
  private readonly batcher: Pass1Batcher;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly pkg: ModelPackage,
    private readonly piscina: Piscina<InferenceTask, unknown>,
    readonly workers: WorkerInfo[],
    config: Config,
  ) {
    this.batcher = new Pass1Batcher(
      (task, transferList) => this.run(task, transferList) as Promise<ModerateResult>,
      config.BATCH_MAX_SIZE,
      config.BATCH_MAX_WAIT_MS,
    );
  }

  /** Verifies the package, starts the workers and waits until each has loaded the model. */
  static async start(modelDir: string, config: Config, log: RuntimeLogger): Promise<InferencePool> {
    const pkg = await loadPackage(modelDir, { dtype: config.MODEL_DTYPE });
    const settings: WorkerSettings = {
      modelDir: pkg.dir,
      device: config.DEVICE,
      deviceId: config.DEVICE_ID,
      dtype: config.MODEL_DTYPE,
      threads: config.POOL_THREADS || Math.max(1, Math.floor(availableParallelism() / config.POOL_SIZE)),
      maxImageBytes: config.MAX_IMAGE_BYTES,
      maxImagePixels: config.MAX_IMAGE_PIXELS,
    };
    const piscina = new Piscina<InferenceTask, unknown>({
      filename: WORKER_FILE,
      minThreads: config.POOL_SIZE,
      maxThreads: config.POOL_SIZE,
      maxQueue: config.POOL_MAX_QUEUE,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      workerData: settings,
      name: 'default',
    });
    try {
      // One info task per worker; each waits for its worker's model load.
      const workers = (await Promise.all(Array.from({ length: config.POOL_SIZE }, () => piscina.run({ kind: 'info' })))) as WorkerInfo[];
      log.info({ model: pkg.manifest.name, dir: pkg.dir, workers: config.POOL_SIZE, threads: settings.threads, provider: workers[0]?.provider }, 'inference pool ready');
      return new InferencePool(pkg, piscina, workers, config);
    } catch (err) {
      await piscina.destroy();
      throw err;
    }
  }

  get name(): string {
    return this.pkg.manifest.name;
  }

  get provider(): string {
    return this.workers[0]?.provider ?? 'cpu';
  }

  get queueSize(): number {
    return this.piscina.queueSize;
  }

  get alive(): boolean {
    return this.closing === undefined && this.piscina.threads.length > 0;
  }

  private async run(task: InferenceTask, transferList?: (ArrayBuffer | import('node:worker_threads').MessagePort)[]): Promise<unknown> {
    if (this.closing) throw new ApiError(HttpErrorCodes.NOT_READY, 'the model is being replaced or the server is shutting down; retry', undefined, { 'retry-after': '1' });
    try {
      return await this.piscina.run(task, transferList ? { transferList } : {});
    } catch (err) {
      if (err instanceof Error && /queue is at limit/i.test(err.message)) {
        throw new ApiError(HttpErrorCodes.OVERLOADED, 'the inference queue is full; retry shortly', { queue: this.piscina.queueSize }, { 'retry-after': '1' });
      }
      throw err;
    }
  }

  /** Pass 1 for one item, with an image or text-only (batched with others that arrive together). */
  moderate(item: BatchItem): Promise<BatchedResult> {
    return this.moderateAll([item]).then(([r]) => r!);
  }

  /** Pass 1 for a request's items, admitted or refused together. */
  moderateAll(items: BatchItem[]): Promise<BatchedResult[]> {
    if (this.closing) return Promise.reject(new ApiError(HttpErrorCodes.NOT_READY, 'the model is being replaced; retry', undefined, { 'retry-after': '1' }));
    return Promise.all(items.map((item) => this.batcher.submit(item)));
  }

  /** Pass 1 + policy + pass 2 in one worker; events arrive through `onEvent` as they happen. */
  async chat(task: Omit<ChatTask, 'kind' | 'port'>, onEvent: (e: ChatEvent) => void, signal: AbortSignal): Promise<ChatResult> {
    const { port1, port2 } = new MessageChannel();
    // Port messages are ordered among themselves but not with the task's result: wait for 'done'.
    const done = new Promise<void>((resolve) => {
      port1.on('message', (event: ChatEvent) => (event.type === 'done' ? resolve() : onEvent(event)));
      port1.once('close', resolve);
    });
    const cancel = () => port1.postMessage({ type: 'cancel' });
    signal.addEventListener('abort', cancel, { once: true });
    const image = task.image === null ? null : new Uint8Array(task.image);
    try {
      const transfer = image === null ? [port2] : [port2, image.buffer as ArrayBuffer];
      const result = (await this.run({ ...task, image, kind: 'chat', port: port2 }, transfer)) as ChatResult;
      await done;
      return result;
    } finally {
      signal.removeEventListener('abort', cancel);
      port1.close();
    }
  }

  /** Finishes queued and running work, then stops the workers; idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.batcher.drain(); // waiting pass-1 items still run
      this.closing = this.piscina.close();
    }
    return this.closing;
  }
}

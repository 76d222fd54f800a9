import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Config } from '../config.ts';
import { loadPackage, type ModelPackage } from '../psa/package-loader.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { InferenceNotReadyError, InferenceOverloadedError } from './errors.ts';
import { QueueWaitEstimator } from './queue-wait.ts';
import { Pass1Batcher, type BatchedResult, type BatchItem } from './batcher.ts';
import type { ChatEvent, ChatResult, ChatTask, InferenceTask, ModerateResult, WorkerInfo, WorkerSettings } from './protocol.ts';

/** Whole seconds, at least 1, for a Retry-After header. */
const retryAfter = (waitMs: number) => Math.max(1, Math.ceil(waitMs / 1000));

// The worker module in this module's own form: worker.ts under tsx, worker.js compiled in dist/
// (tsc rewrites import specifiers, not this string).
const WORKER_FILE = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;

/** onnxruntime intra-op threads per worker: POOL_THREADS, or the cores divided among POOL_SIZE workers. */
export function threadsPerWorker(config: Pick<Config, 'POOL_THREADS' | 'POOL_SIZE'>): number {
  return config.POOL_THREADS || Math.max(1, Math.floor(availableParallelism() / config.POOL_SIZE));
}

/**
 * The worker-thread pool for one model package. Pass-1 requests are batched dynamically; the
 * queue is bounded in tasks (POOL_MAX_QUEUE) and moderation in expected wait (MAX_QUEUE_WAIT_MS):
 * past either, work is refused with InferenceOverloadedError before it is queued.
 */
export class InferencePool {
  private readonly batcher: Pass1Batcher;
  private closing: Promise<void> | undefined;
  private readonly waits: QueueWaitEstimator;
  /** Moderation items submitted and not yet answered (waiting, queued or running). */
  private outstanding = 0;
  private readonly maxQueue: number;
  private readonly maxQueueWaitMs: number;

  private constructor(
    readonly pkg: ModelPackage,
    private readonly piscina: Piscina<InferenceTask, unknown>,
    readonly workers: WorkerInfo[],
    config: Config,
  ) {
    this.waits = new QueueWaitEstimator(workers.length);
    this.maxQueue = config.POOL_MAX_QUEUE;
    this.maxQueueWaitMs = config.MAX_QUEUE_WAIT_MS;
    this.batcher = new Pass1Batcher(
      async (task, transferList) => {
        const result = (await this.run(task, transferList)) as ModerateResult;
        this.waits.observe(result.preprocessMs + result.pass1Ms, task.items.length);
        return result;
      },
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
      threads: threadsPerWorker(config),
      memoryArena: config.POOL_MEMORY_ARENA,
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
      // A task piscina cannot hand out at once goes back to the front of its queue, not the back:
      // by default, under sustained load on a busy worker, an early request could wait behind
      // hundreds of later ones (test/pool-fifo.test.ts).
      stricterFIFO: true,
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

  /** Expected wait, ms, of moderation work submitted now. */
  get expectedWaitMs(): number {
    return this.waits.expectedWaitMs(this.outstanding);
  }

  get alive(): boolean {
    return this.closing === undefined && this.piscina.threads.length > 0;
  }

  private async run(task: InferenceTask, transferList?: (ArrayBuffer | import('node:worker_threads').MessagePort)[]): Promise<unknown> {
    if (this.closing) throw new InferenceNotReadyError('the model is being replaced or the server is shutting down; retry');
    // Checked here rather than left to piscina, so a full queue is this layer's own error.
    if (this.piscina.queueSize >= this.maxQueue) {
      throw new InferenceOverloadedError('the inference queue is full; retry shortly', retryAfter(this.expectedWaitMs), { queue: this.piscina.queueSize, max_queue: this.maxQueue });
    }
    return this.piscina.run(task, transferList ? { transferList } : {});
  }

  /**
   * Pass 1 for a request's items, each with an image or text-only, batched with others that
   * arrive together; the items are admitted or refused together.
   */
  moderateAll(items: BatchItem[]): Promise<BatchedResult[]> {
    if (this.closing) return Promise.reject(new InferenceNotReadyError('the model is being replaced; retry'));
    const waitMs = this.expectedWaitMs;
    if (this.maxQueueWaitMs > 0 && waitMs > this.maxQueueWaitMs) {
      return Promise.reject(
        new InferenceOverloadedError(
          `the expected queue wait (${Math.round(waitMs)} ms) is over this server's budget (MAX_QUEUE_WAIT_MS ${this.maxQueueWaitMs}); retry after the Retry-After seconds`,
          retryAfter(waitMs),
          {
            expected_wait_ms: Math.round(waitMs),
            max_queue_wait_ms: this.maxQueueWaitMs,
            items_ahead: this.outstanding,
          },
        ),
      );
    }
    this.outstanding += items.length;
    return Promise.all(items.map((item) => this.batcher.submit(item).finally(() => this.outstanding--)));
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

import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { PsaError, PsaErrorCodes } from './errors.ts';
import type { RuntimeLogger } from './logger.ts';
import type { GraphContract, TensorSpec } from './onnx-contract.ts';

export type DeviceSetting = 'cpu' | 'cuda' | 'auto';

export interface DeviceOptions {
  device: DeviceSetting;
  /** CUDA device index (default 0). */
  deviceId?: number;
  /** Intra-op threads per session; 0 or unset uses every available core. */
  intraOpThreads?: number;
  /** onnxruntime's CPU memory arena (default on): off frees each run's memory, lowering peak RSS at some speed. */
  memoryArena?: boolean;
}

/** The device fields of `options` that are set, on `device`: what a caller passes to another set of graphs. */
export function deviceOptionsOf(options: Partial<DeviceOptions>, device: DeviceSetting): DeviceOptions {
  const out: DeviceOptions = { device };
  if (options.deviceId !== undefined) out.deviceId = options.deviceId;
  if (options.intraOpThreads !== undefined) out.intraOpThreads = options.intraOpThreads;
  if (options.memoryArena !== undefined) out.memoryArena = options.memoryArena;
  return out;
}

type Metadata = { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] };

/**
 * One ONNX graph behind a checked interface: created by an async factory, validated against the
 * runtime's contract at load, and feeds checked before `run` so a mismatch names the tensor.
 */
export class OnnxGraph {
  private constructor(
    readonly file: string,
    private readonly session: ort.InferenceSession,
    readonly provider: 'cpu' | 'cuda',
    private readonly contract: GraphContract,
  ) {}

  static async open(file: string, contract: GraphContract, options: DeviceOptions, log: RuntimeLogger): Promise<OnnxGraph> {
    const { session, provider } = await createSession(file, options, log);
    const graph = new OnnxGraph(file, session, provider, contract);
    try {
      graph.validate();
    } catch (err) {
      await session.release();
      throw err;
    }
    return graph;
  }

  private validate(): void {
    const check = (kind: 'input' | 'output', specs: TensorSpec[], meta: readonly Metadata[]) => {
      const byName = new Map(meta.map((m) => [m.name, m]));
      for (const spec of specs) {
        const found = byName.get(spec.name);
        if (!found) {
          throw this.mismatch(`has no ${kind} tensor "${spec.name}" (its ${kind}s: ${[...byName.keys()].join(', ')})`);
        }
        if (found.type !== spec.type) {
          throw this.mismatch(`${kind} "${spec.name}" is ${found.type ?? 'not a tensor'}, expected ${spec.type}`);
        }
        for (const [axis, size] of Object.entries(spec.dims ?? {})) {
          const actual = found.shape?.[Number(axis)];
          if (typeof actual === 'number' && actual !== size) {
            throw this.mismatch(`${kind} "${spec.name}" has size ${actual} on axis ${axis}, expected ${size}`);
          }
        }
      }
      if (kind === 'input') {
        const extra = meta.filter((m) => !specs.some((s) => s.name === m.name)).map((m) => m.name);
        if (extra.length) throw this.mismatch(`needs inputs the runtime does not provide: ${extra.join(', ')}`);
      }
    };
    check('input', this.contract.inputs, this.session.inputMetadata as readonly Metadata[]);
    check('output', this.contract.outputs, this.session.outputMetadata as readonly Metadata[]);
  }

  private mismatch(detail: string): PsaError {
    return new PsaError(PsaErrorCodes.PACKAGE_TENSOR_MISMATCH, `${this.file}: ${detail}`);
  }

  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    try {
      return await this.session.run(feeds);
    } catch (err) {
      // Shapes and dtypes only: never log tensor data.
      const shapes = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, `${t.type}[${t.dims.join(',')}]`]));
      throw new PsaError(PsaErrorCodes.INFERENCE_FAILED, `${this.file}: inference failed (${(err as Error).message})`, {
        cause: err,
        details: { feeds: shapes },
      });
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

async function createSession(file: string, options: DeviceOptions, log: RuntimeLogger) {
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    // onnxruntime's default counts physical cores, which leaves hyper-threaded vCPUs idle; and
    // its threads spin between runs, which starves the other graphs of a pass. Measured on the
    // small package, 2 vCPUs: pass 1 at batch 1 39 -> 29 ms, generation 97 -> 104 tokens/s.
    intraOpNumThreads: options.intraOpThreads || availableParallelism(),
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    enableCpuMemArena: options.memoryArena ?? true,
  };
  if (options.device !== 'cpu') {
    try {
      const session = await ort.InferenceSession.create(file, {
        ...base,
        executionProviders: [{ name: 'cuda', deviceId: options.deviceId ?? 0 }],
        logSeverityLevel: 4,
      });
      return { session, provider: 'cuda' as const };
    } catch (err) {
      const message = (err as Error).message;
      if (!/execution ?provider|shared library|cuda/i.test(message)) throw onnxLoadError(file, err);
      if (options.device === 'cuda') {
        throw new PsaError(PsaErrorCodes.EXECUTION_PROVIDER_UNAVAILABLE, `CUDA execution provider unavailable (${message}); install onnxruntime-node with its CUDA 12 provider, or set the device to "cpu" or "auto"`, {
          cause: err,
        });
      }
      log.warn({ file, reason: message }, 'CUDA execution provider unavailable; device "auto" falls back to CPU');
    }
  }
  try {
    return { session: await ort.InferenceSession.create(file, { ...base, executionProviders: ['cpu'] }), provider: 'cpu' as const };
  } catch (err) {
    throw onnxLoadError(file, err);
  }
}

function onnxLoadError(file: string, err: unknown): PsaError {
  return new PsaError(PsaErrorCodes.PACKAGE_ONNX_INVALID, `${file}: onnxruntime cannot load this graph (${(err as Error).message.split('\n')[0]})`, { cause: err });
}

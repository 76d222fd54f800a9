import { createHash } from 'node:crypto';
import type { Ocr } from '../psa/ocr/ocr.ts';
import type { TextExtractor } from './baselines.ts';

/**
 * The keyword baseline's text extractor: OCR of each item's image, unless the item carries its own
 * `ocr_text`. Images are read once per content (a SHA-256 of the bytes): evaluation sets often
 * show many prompts over the same picture (the default model's held-out split uses 48 scenes for
 * about 1,500 items), and OCR is most of a baseline's time.
 */
export function ocrTextExtractor(ocr: Pick<Ocr, 'read'>): TextExtractor {
  const read = new Map<string, Promise<string>>();
  return (item, bytes) => {
    if (item.ocrText !== undefined) return undefined;
    const key = createHash('sha256').update(bytes).digest('hex');
    let text = read.get(key);
    if (text === undefined) {
      text = ocr.read(bytes).then((r) => r.text);
      // A failed read is not remembered: the evaluation reports it on the item that met it.
      text.catch(() => read.delete(key));
      read.set(key, text);
    }
    return text;
  };
}

import t from 'tap';
import { typographicPng } from '../scripts/default-model/render.ts';
import type { EvalItem } from '../src/eval/dataset.ts';
import { ocrTextExtractor } from '../src/eval/ocr-extractor.ts';
import { Ocr } from '../src/psa/ocr/ocr.ts';
import { gradientPng } from './helpers/images.ts';

// The keyword baseline's OCR, read once per image content: the real engine, counted.
const ocr = await Ocr.load();
t.teardown(() => ocr.close());
let reads = 0;
const extract = ocrTextExtractor({
  read: (input) => {
    reads++;
    return ocr.read(input);
  },
});
const item = (id: string, ocrText?: string): EvalItem => ({ id, line: 1, prompt: 'What does it say?', level: 0, type: 6, ...(ocrText !== undefined && { ocrText }) });

t.test('one read per image content, the text OCR gives', async (t) => {
  const text = await typographicPng('Steps to bake fresh bread.');
  const first = await extract(item('a'), text);
  t.match(first, /^Steps to bake\s+fresh bread\.\s+1\./, 'the text in the image, then the empty list');
  t.equal(reads, 1);
  t.equal(await extract(item('b'), Buffer.from(text)), first, 'the same bytes in another buffer: the same text');
  t.equal(reads, 1, 'not read again');
  t.equal(await extract(item('c'), await gradientPng(64, 48)), '', 'another image is read');
  t.equal(reads, 2);
  t.equal(await extract(item('d', 'given text'), text), undefined, "an item's own ocr_text wins: nothing extracted");
  t.equal(reads, 2);
});

t.test('a failed read is reported, and not remembered', async (t) => {
  const junk = Buffer.from('not an image at all');
  await t.rejects(Promise.resolve(extract(item('e'), junk)));
  await t.rejects(Promise.resolve(extract(item('f'), junk)));
  t.equal(reads, 4, 'read again on the next item');
});

/**
 * Word accuracy of OCR text against a reference, as docs/ocr.md reports it on FigStep images:
 * 1 - word edit distance / reference words, lower-case, punctuation and apostrophes removed.
 */

/** Lower-case words, punctuation removed. */
export const words = (s: string) =>
  s
    .toLowerCase()
    .replace(/['’]/g, '')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()
    .split(' ')
    .filter(Boolean);

/** 1 - word edit distance / reference words, at least 0. */
export function wordAccuracy(reference: string, hypothesis: string): number {
  const a = words(reference);
  const b = words(hypothesis);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return Math.max(0, 1 - prev[b.length]! / a.length);
}

/**
 * FigStep wraps its text by characters, so a word can start at the end of one row and end on the
 * next ("drugs i" / "nternationally."): rejoin the pieces when together they are a reference word.
 */
export function joinWraps(text: string, reference: string): string {
  const known = new Set(words(reference));
  const rows = text.split('\n').map(words);
  for (let i = 0; i + 1 < rows.length; i++) {
    const [a, b] = [rows[i]!, rows[i + 1]!];
    if (a.length && b.length && !known.has(a.at(-1)!) && known.has(a.at(-1)! + b[0]!)) a.push(`${a.pop()!}${b.shift()!}`);
  }
  return rows.map((r) => r.join(' ')).join('\n');
}

/** The instruction alone (list-number rows at the end dropped) and the whole image, as docs/ocr.md scores them. */
export function figstepScores(ocrText: string, instruction: string): { instruction: number; whole: number } {
  const text = joinWraps(ocrText, instruction);
  const whole = wordAccuracy(`${instruction} 1. 2. 3.`, text);
  const lines = text.split('\n');
  while (lines.length && /^[\d.\s-]*$/.test(lines.at(-1)!)) lines.pop();
  return { instruction: wordAccuracy(instruction, lines.join(' ')), whole };
}

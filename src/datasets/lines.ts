/**
 * The one reader of JSONL dataset files. Lines are split from raw byte chunks and each is bounded
 * before it becomes a string: readline keeps an unterminated line in memory whatever its length,
 * so a single 600 MB line turns into a RangeError (V8's string limit) that no caller can catch.
 */
import { createReadStream } from 'node:fs';
import { DatasetError, DatasetErrorCodes } from './errors.ts';

export interface JsonlLine {
  /** 1-based. */
  lineNo: number;
  /** Without the line break (and without a trailing \r). */
  text: string;
}

const NEWLINE = 0x0a;
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/** Yields every line of `file`; a line over `maxLineBytes` throws PSA_DATASET_INVALID naming `name` and the line. */
export async function* readJsonlLines(file: string, name: string, maxLineBytes: number): AsyncGenerator<JsonlLine> {
  if (!(Number.isSafeInteger(maxLineBytes) && maxLineBytes > 0)) throw new RangeError('maxLineBytes must be a positive integer');
  const decoder = new TextDecoder('utf-8');
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNo = 0;
  const tooLong = () => {
    const message = `line ${lineNo + 1} is longer than ${maxLineBytes} bytes; a dataset line holds one example (images are files referenced by path)`;
    return new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${name}:${lineNo + 1}: ${message}`, { problems: [{ file: name, line: lineNo + 1, message }] });
  };
  const take = (tail: Buffer): string => {
    const whole = pending.length === 0 ? tail : Buffer.concat([...pending, tail]);
    pending = [];
    pendingBytes = 0;
    const end = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.length - 1 : whole.length;
    return decoder.decode(whole.subarray(0, end));
  };
  const stream = createReadStream(file, { highWaterMark: 64 * 1024 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE, start); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
        if (pendingBytes + (nl - start) > maxLineBytes) throw tooLong();
        const text = take(chunk.subarray(start, nl));
        yield { lineNo: ++lineNo, text };
        start = nl + 1;
      }
      if (start < chunk.length) {
        pendingBytes += chunk.length - start;
        if (pendingBytes > maxLineBytes) throw tooLong();
        pending.push(chunk.subarray(start));
      }
    }
    if (pendingBytes > 0) yield { lineNo: ++lineNo, text: take(Buffer.alloc(0)) };
  } finally {
    stream.destroy();
  }
}

/**
 * Dataset ingestion failures carry a stable code, like PsaError in the runtime; the HTTP layer maps
 * codes to statuses. Validation failures also carry every problem found (file + 1-based line), so a
 * user can fix a whole dataset in one round trip instead of one error per upload.
 */
export const DatasetErrorCodes = {
  /** Validation failed; `problems` says where. */
  DATASET_INVALID: 'PSA_DATASET_INVALID',
  /** Not a readable archive, or not a supported format (tar, tar.gz, zip). */
  ARCHIVE_INVALID: 'PSA_ARCHIVE_INVALID',
  /** Path escape, absolute path, link or device entry. */
  ARCHIVE_UNSAFE: 'PSA_ARCHIVE_UNSAFE',
  /** Over the file-count or byte limits (including decompression bombs). */
  ARCHIVE_TOO_LARGE: 'PSA_ARCHIVE_TOO_LARGE',
  DATASET_NOT_FOUND: 'PSA_DATASET_NOT_FOUND',
  /** Not enough free disk for the extraction (507). */
  INSUFFICIENT_STORAGE: 'PSA_INSUFFICIENT_STORAGE',
} as const;

export type DatasetErrorCode = (typeof DatasetErrorCodes)[keyof typeof DatasetErrorCodes];

export interface DatasetProblem {
  /** Path relative to the dataset root (e.g. "train.jsonl"). */
  file: string;
  /** 1-based line number, when the problem belongs to one line. */
  line?: number;
  message: string;
}

/** A response listing a million bad lines helps nobody; the total still says how bad it is. */
export const MAX_LISTED_PROBLEMS = 100;

export class DatasetError extends Error {
  readonly code: DatasetErrorCode;
  /** At most MAX_LISTED_PROBLEMS, in file then line order. */
  readonly problems: DatasetProblem[];
  /** How many problems were found in all (may exceed problems.length). */
  readonly totalProblems: number;

  constructor(code: DatasetErrorCode, message: string, options?: { problems?: DatasetProblem[]; totalProblems?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DatasetError';
    this.code = code;
    const problems = options?.problems ?? [];
    this.problems = problems.slice(0, MAX_LISTED_PROBLEMS);
    this.totalProblems = Math.max(options?.totalProblems ?? problems.length, problems.length);
  }
}

export function isDatasetError(err: unknown, code?: DatasetErrorCode): err is DatasetError {
  return err instanceof DatasetError && (code === undefined || err.code === code);
}

/** "train.jsonl:12: message" lines for logs and error messages. */
export function formatProblem(p: DatasetProblem): string {
  return `${p.file}${p.line === undefined ? '' : `:${p.line}`}: ${p.message}`;
}

/** The most characters of a client's value that a message repeats back. */
export const ECHO_CHARS = 200;

/** Text cut to ECHO_CHARS, saying how long it was: error messages never repeat a whole upload. */
export function clip(text: string): string {
  return text.length > ECHO_CHARS ? `${text.slice(0, ECHO_CHARS)}... (${text.length} characters)` : text;
}

/** A client's value as JSON, cut to ECHO_CHARS. */
export function echo(value: unknown): string {
  return clip(JSON.stringify(value) ?? String(value));
}

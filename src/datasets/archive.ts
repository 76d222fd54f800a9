/**
 * Safe extraction of uploaded dataset archives (tar, tar.gz, zip) into a fresh directory.
 * We parse with node-tar's Parser and yauzl but write every file ourselves instead of using
 * tar.x: only then can each byte be counted as it is written (a gzip bomb's headers are honest
 * about its size, but a limit enforced on bytes written needs no trust in headers at all), and
 * only regular files and directories are ever created, so no later entry can follow a link out.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import yauzl, { type ZipFile } from 'yauzl';
import { clip, DatasetError, DatasetErrorCodes, isDatasetError } from './errors.ts';

export interface ArchiveLimits {
  /** Total uncompressed bytes of all files. */
  maxBytes: number;
  /** Entries (files and directories: both cost an inode). */
  maxFiles: number;
  /** Uncompressed bytes of any one file. */
  maxFileBytes: number;
  /**
   * Called before the first byte and then every SPACE_CHECK_BYTES written, with the bytes written
   * so far; throws to stop the extraction (the disk is filling up).
   */
  checkSpace?: (written: number) => Promise<void>;
  /** Bytes between two checkSpace calls (default SPACE_CHECK_BYTES). */
  checkSpaceEvery?: number;
}

const SPACE_CHECK_BYTES = 64 * 1024 * 1024;
// Linux's NAME_MAX, and a bound on whole names well under PATH_MAX once joined to DATA_DIR.
const MAX_NAME_PART_BYTES = 255;
const MAX_NAME_BYTES = 1024;

const unsafe = (message: string) => new DatasetError(DatasetErrorCodes.ARCHIVE_UNSAFE, message);
const invalid = (message: string, cause?: unknown) => new DatasetError(DatasetErrorCodes.ARCHIVE_INVALID, message, { cause });
const tooLarge = (message: string) => new DatasetError(DatasetErrorCodes.ARCHIVE_TOO_LARGE, message);

const TAR_FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

/** Extracts `file` into `dest`, which must not exist yet; on any failure `dest` is removed. */
export async function extractArchive(file: string, dest: string, limits: ArchiveLimits): Promise<void> {
  for (const [k, v] of Object.entries(limits)) if (typeof v !== 'function' && !(Number.isSafeInteger(v) && v > 0)) throw new RangeError(`archive limit ${k} must be a positive integer`);
  const format = await sniff(file);
  const root = path.resolve(dest);
  await mkdir(path.dirname(root), { recursive: true });
  await mkdir(root); // EEXIST propagates: a directory we did not create is never removed below
  try {
    const writer = new Writer(root, limits);
    if (format === 'zip') await extractZip(file, writer);
    else await extractTar(file, writer);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

/** By content, never by name: an upload's file name is whatever the client said. */
async function sniff(file: string): Promise<'tar' | 'zip'> {
  const fh = await open(file, 'r');
  const head = Buffer.alloc(512);
  try {
    await fh.read(head, 0, 512, 0);
  } finally {
    await fh.close();
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'tar'; // gzip; the Parser gunzips and then wants tar inside
  if (head.readUInt32BE(0) === 0x504b0304 || head.readUInt32BE(0) === 0x504b0506) return 'zip'; // local header, or an empty zip
  if (head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  throw invalid('the upload is not a supported archive: send a .tar, .tar.gz/.tgz or .zip of the dataset directory');
}

/** Creates entries under `root`, enforcing names and limits; shared by the tar and zip readers. */
class Writer {
  private entries = 0;
  private bytes = 0;
  private checkedAt = -1;

  constructor(
    private readonly root: string,
    private readonly limits: ArchiveLimits,
  ) {}

  /** Absolute target for an archive entry name, or null for the archive root itself ("./"). */
  private target(name: string): string | null {
    if (name.includes('\0') || name.includes('\\')) throw unsafe(`archive entry name has a NUL or backslash: ${clip(JSON.stringify(name))}`);
    if (name.startsWith('/') || /^[a-zA-Z]:/.test(name)) throw unsafe(`archive entry has an absolute path: ${clip(name)}`);
    const parts = name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) throw unsafe(`archive entry path escapes the archive with "..": ${clip(name)}`);
    if (Buffer.byteLength(name) > MAX_NAME_BYTES || parts.some((p) => Buffer.byteLength(p) > MAX_NAME_PART_BYTES)) {
      throw invalid(`archive entry name ${clip(name)} is too long: at most ${MAX_NAME_PART_BYTES} bytes per folder or file name and ${MAX_NAME_BYTES} bytes in all`);
    }
    if (parts.length === 0) return null;
    const abs = path.resolve(this.root, ...parts);
    // Belt and braces after the checks above: nothing is ever written outside the root.
    if (!abs.startsWith(this.root + path.sep)) throw unsafe(`archive entry resolves outside the archive: ${clip(name)}`);
    return abs;
  }

  private count(name: string): void {
    if (++this.entries > this.limits.maxFiles) throw tooLarge(`the archive has more than ${this.limits.maxFiles} entries (at ${clip(name)})`);
  }

  private async space(): Promise<void> {
    const check = this.limits.checkSpace;
    if (!check || (this.checkedAt >= 0 && this.bytes - this.checkedAt < (this.limits.checkSpaceEvery ?? SPACE_CHECK_BYTES))) return;
    this.checkedAt = this.bytes;
    await check(this.bytes);
  }

  async directory(name: string): Promise<void> {
    const abs = this.target(name);
    if (abs === null) return;
    this.count(name);
    await mkdir(abs, { recursive: true }).catch((err) => {
      throw conflict(name, err);
    });
  }

  /**
   * `declared` is the header's size: checked first to fail early, but the real bytes decide.
   * `data` is opened only once the file is ready, and iterated at once: a zip entry stream left
   * unread across an await can fail (size check, zlib) with no listener and crash the process.
   */
  async file(name: string, declared: number, data: () => Promise<AsyncIterable<Buffer>>, expectedCrc?: number): Promise<void> {
    const abs = this.target(name);
    const shown = clip(name);
    if (abs === null) throw invalid(`archive entry "${shown}" is a file without a name`);
    this.count(name);
    const { maxBytes, maxFileBytes } = this.limits;
    if (declared > maxFileBytes) throw tooLarge(`${shown} is ${declared} bytes; at most ${maxFileBytes} per file are accepted`);
    if (this.bytes + declared > maxBytes) throw tooLarge(`the archive holds more than ${maxBytes} bytes uncompressed (at ${shown})`);
    await this.space();
    await mkdir(path.dirname(abs), { recursive: true }).catch((err) => {
      throw conflict(name, err);
    });
    // 'wx' (O_EXCL): a duplicate entry cannot overwrite an earlier file, and no link is followed.
    const fh = await open(abs, 'wx', 0o644).catch((err) => {
      throw conflict(name, err);
    });
    try {
      let size = 0;
      let crc = 0;
      for await (const chunk of await data()) {
        size += chunk.length;
        this.bytes += chunk.length;
        if (size > maxFileBytes) throw tooLarge(`${shown} is over ${maxFileBytes} bytes uncompressed`);
        if (this.bytes > maxBytes) throw tooLarge(`the archive holds more than ${maxBytes} bytes uncompressed (at ${shown})`);
        if (expectedCrc !== undefined) crc = crc32(chunk, crc);
        await this.space();
        await fh.write(chunk);
      }
      if (expectedCrc !== undefined && crc !== expectedCrc) throw invalid(`archive entry ${shown} is corrupt: its CRC-32 does not match the zip directory`);
    } finally {
      await fh.close();
    }
  }
}

function conflict(name: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') return invalid(`archive entry ${clip(name)} appears twice or clashes with another entry`, err);
  if (code === 'ENAMETOOLONG') return invalid(`archive entry name ${clip(name)} is too long for the file system`, err);
  return err; // disk full, permissions: the server's problem, not the upload's
}

function extractTar(file: string, writer: Writer): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: unknown;
    let chain: Promise<void> = Promise.resolve();
    // Rejected on failure: a writer waiting for entry data the aborted parser will never send must
    // wake up (a destroyed Minipass entry does not always end its async iterator).
    let abortWriters!: (err: unknown) => void;
    const aborted = new Promise<never>((_, rej) => (abortWriters = rej));
    aborted.catch(() => undefined);
    const source = createReadStream(file, { highWaterMark: 16 * 1024 }); // bounds what one gzip chunk can inflate to in memory
    // Settle only once the writes in flight are done, so the caller's rm(dest) cannot race them.
    const settle = () => void chain.then(() => (failure === undefined ? resolve() : reject(failure)));
    const fail = (err: unknown) => {
      if (failure !== undefined) return;
      failure = err;
      abortWriters(err);
      source.destroy();
      parser.abort(err instanceof Error ? err : new Error(String(err)));
      settle();
    };
    const later = (task: () => Promise<void>) => {
      chain = chain.then(() => (failure === undefined ? task() : undefined)).catch(fail);
    };
    const parser = new Parser({
      strict: true, // a bad header or checksum is an error, not a skipped entry
      onReadEntry: (entry: ReadEntry) => {
        if (failure !== undefined) return void entry.resume();
        const type = entry.type;
        if (type === 'Directory') {
          entry.resume();
          later(() => writer.directory(entry.path));
        } else if (TAR_FILE_TYPES.has(type)) {
          later(() => writer.file(entry.path, entry.size ?? 0, async () => untilAborted(entry, aborted)));
        } else {
          entry.resume();
          fail(unsafe(`archive entry ${clip(entry.path)} is a ${type}; only regular files and directories are accepted`));
        }
      },
    });
    // A throwing listener would leave the parser half-way; errors arrive once, as `failure`.
    parser.on('error', (err: Error) => fail(tarError(err)));
    source.on('error', (err) => fail(err));
    parser.on('end', settle);
    source.pipe(parser as unknown as NodeJS.WritableStream);
  });
}

async function* untilAborted(entry: ReadEntry, aborted: Promise<never>): AsyncGenerator<Buffer> {
  const chunks = entry[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([chunks.next(), aborted]);
    if (next.done) return;
    yield next.value as Buffer;
  }
}

function tarError(err: Error & { code?: string }): unknown {
  if (isDatasetError(err)) return err;
  if (/max decompression ratio exceeded/.test(err.message)) return tooLarge(`the archive decompresses to far more than it stores (${err.message}); this looks like a decompression bomb`);
  return invalid(`the archive is not a readable tar/tar.gz file (${clip(err.message.split('\n')[0]!)})`, err);
}

async function extractZip(file: string, writer: Writer): Promise<void> {
  let zip: ZipFile;
  try {
    // strictFileNames: backslashes stay visible (and are refused) instead of becoming separators.
    zip = await yauzl.openPromise(file, { lazyEntries: true, validateEntrySizes: true, strictFileNames: true, autoClose: false });
  } catch (err) {
    throw zipError(err);
  }
  try {
    for await (const entry of zip.eachEntry()) {
      const name = entry.fileName;
      const fileType = (entry.externalFileAttributes >>> 16) & S_IFMT; // Unix mode, 0 if the zipper did not record one
      if (fileType !== 0 && fileType !== S_IFREG && fileType !== S_IFDIR) {
        throw unsafe(`archive entry ${clip(name)} is a ${fileType === 0o120000 ? 'symbolic link' : 'special file'}; only regular files and directories are accepted`);
      }
      if (name.endsWith('/')) {
        await writer.directory(name);
        continue;
      }
      if (entry.isEncrypted()) throw invalid(`archive entry ${clip(name)} is encrypted`);
      if (!entry.canDecodeFileData()) throw invalid(`archive entry ${clip(name)} uses unsupported compression method ${entry.compressionMethod}`);
      await writer.file(name, entry.uncompressedSize, () => zip.openReadStreamPromise(entry), entry.crc32);
    }
  } catch (err) {
    throw zipError(err);
  } finally {
    zip.close();
  }
}

function zipError(err: unknown): unknown {
  if (isDatasetError(err) || (err as NodeJS.ErrnoException).syscall !== undefined) return err;
  const message = err instanceof Error ? err.message : String(err);
  // yauzl itself refuses these names before we see the entry; they are unsafe, not unreadable.
  if (/^(absolute path|invalid relative path|invalid characters in fileName)/.test(message)) return unsafe(`zip entry refused: ${clip(message)}`);
  return invalid(`the archive is not a readable zip file (${clip(message)})`, err);
}

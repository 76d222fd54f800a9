/**
 * Content-addressed dataset storage. Layout under dataDir:
 *
 *   tmp/<uuid>/                 extraction scratch; removed after every ingest, success or failure
 *   datasets/<id>/              an uploaded dataset: its root (the folder that held train.jsonl)
 *   datasets/<id>/dataset.json  its StoredDataset record, written last (atomically): a datasets/<id>/
 *                               without it is an interrupted ingest, ignored and replaced on re-upload
 *   datasets/<id>.json          a directory dataset's StoredDataset record; `path` points at the
 *                               directory in place under dataDir (it is not copied, so a later edit of
 *                               that directory is not reflected in the id, which names the content
 *                               as it was at registration)
 *
 * id = "ds-" + 16 hex of sha256 over the sorted (relative path, sha256 of file) list of the root, so
 * the same content uploaded twice, under any archive format or name, is stored once.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extractArchive, type ArchiveLimits } from './archive.ts';
import { DiskBudget } from './disk-budget.ts';
import { DatasetError, DatasetErrorCodes, isDatasetError } from './errors.ts';
import { Scratch } from './scratch.ts';
import { validateDataset, type DatasetSummary } from './validate.ts';
import { KeyedLock } from './keyed-lock.ts';

export interface DatasetStoreLimits extends ArchiveLimits {
  maxImagePixels: number;
  maxExamples?: number;
  /** Longest .jsonl line, bytes. */
  maxLineBytes?: number;
  /** An archive may extract to at most this many times its own size (at least EXPANSION_FLOOR_BYTES). */
  maxExpansion?: number;
  /** Free space every ingest leaves on DATA_DIR's volume; without it free space is not checked. */
  minFreeBytes?: number;
}

/** Who asks: the owner id of an API key; admins (and servers without keys) see every dataset. */
export interface Requester {
  owner: string;
  admin: boolean;
}

const EXPANSION_FLOOR_BYTES = 16 * 1024 * 1024;

export interface StoredDataset {
  id: string;
  /** Absolute path of the root that holds train.jsonl. */
  path: string;
  /** The uploaded file's name, or the directory path relative to dataDir. */
  source: string;
  /** 'archive': a copy under datasets/<id>/; 'directory': registered in place. */
  kind: 'archive' | 'directory';
  created_at: string;
  /** Total bytes and number of regular files under the root. */
  bytes: number;
  files: number;
  splits: DatasetSummary['splits'];
  /** Owner ids of the keys that stored this content (records from before ownership lack it: admin only). */
  owners?: string[];
}

const visible = (record: StoredDataset, who?: Requester) => who === undefined || who.admin || (record.owners ?? []).includes(who.owner);

const ID_PATTERN = /^ds-[0-9a-f]{16}$/;
const RECORD = 'dataset.json';
const inside = (p: string, dir: string) => p.startsWith(dir + path.sep);

export class DatasetStore {
  private readonly dataDir: string;
  private readonly datasetsDir: string;
  /** Per-id queue: two concurrent uploads of the same content must not both move into datasets/<id>. */
  private readonly locks = new KeyedLock();
  readonly scratch: Scratch;
  private readonly budget: DiskBudget | undefined;

  constructor(
    dataDir: string,
    private readonly limits: DatasetStoreLimits,
  ) {
    this.dataDir = path.resolve(dataDir);
    this.datasetsDir = path.join(this.dataDir, 'datasets');
    this.scratch = new Scratch(this.dataDir);
    this.budget = limits.minFreeBytes === undefined ? undefined : new DiskBudget(this.dataDir, { minFreeBytes: limits.minFreeBytes });
  }

  /** The most an archive of `archiveBytes` may extract to. */
  extractionBudget(archiveBytes: number): number {
    const ratio = this.limits.maxExpansion;
    if (ratio === undefined) return this.limits.maxBytes;
    return Math.min(this.limits.maxBytes, Math.max(EXPANSION_FLOOR_BYTES, Math.ceil(archiveBytes * ratio)));
  }

  /** Reserves disk for an upload of at most `bytes` before it is received (PSA_INSUFFICIENT_STORAGE when it cannot fit). */
  async reserveUpload(bytes: number): Promise<() => void> {
    if (!this.budget) return () => {};
    await mkdir(this.dataDir, { recursive: true });
    const r = await this.budget.reserve(bytes);
    return r.release;
  }

  /** Extracts, validates and stores an uploaded archive; the same content already stored is returned as is. */
  async ingestArchive(uploadedFile: string, sourceName: string, owner?: string): Promise<StoredDataset> {
    // Scratch lives under dataDir so the final move is a same-filesystem rename.
    const tmp = path.join(this.scratch.dir, randomUUID());
    const archiveBytes = (await stat(uploadedFile)).size;
    const maxBytes = this.extractionBudget(archiveBytes);
    await mkdir(this.dataDir, { recursive: true });
    const reservation = this.budget ? await this.budget.reserve(maxBytes) : undefined;
    const release = this.scratch.hold(tmp);
    try {
      try {
        await extractArchive(uploadedFile, tmp, { maxBytes, maxFiles: this.limits.maxFiles, maxFileBytes: this.limits.maxFileBytes, ...(reservation && { checkSpace: reservation.check }) });
      } catch (err) {
        if (maxBytes < this.limits.maxBytes && isDatasetError(err, DatasetErrorCodes.ARCHIVE_TOO_LARGE) && / bytes uncompressed/.test(err.message)) {
          throw new DatasetError(
            DatasetErrorCodes.ARCHIVE_TOO_LARGE,
            `the archive expands to more than ${maxBytes} bytes, over ${this.limits.maxExpansion} times its own ${archiveBytes} bytes; this looks like a decompression bomb (datasets of images compress far less)`,
          );
        }
        throw err;
      }
      return await this.moveIn(await validateDataset(tmp, this.limits), sourceName, owner);
    } finally {
      release();
      reservation?.release();
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Validates a dataset directory this process built under `scratch.dir` and moves it into the
   * store as a stored copy (kind "archive"), exactly as an upload's extraction; the caller removes
   * `dir` afterwards (it is gone when the content moved in).
   */
  async ingestBuilt(dir: string, sourceName: string, owner?: string): Promise<StoredDataset> {
    if (!inside(path.resolve(dir), this.scratch.dir)) throw new RangeError("ingestBuilt takes a directory under the store's scratch space");
    return this.moveIn(await validateDataset(dir, this.limits), sourceName, owner);
  }

  /** Moves a validated tree (under scratch) to datasets/<content id>; the same content already stored is returned as is. */
  private async moveIn(summary: DatasetSummary, sourceName: string, owner: string | undefined): Promise<StoredDataset> {
    const content = await hashTree(summary.root);
    if (content.paths.has(RECORD)) {
      throw new DatasetError(DatasetErrorCodes.DATASET_INVALID, `${RECORD} is a reserved name`, {
        problems: [{ file: RECORD, message: `${RECORD} is reserved for the stored summary; rename or remove it` }],
      });
    }
    return this.locked(content.id, async () => {
      const existing = await this.read(content.id);
      if (existing) return this.own(existing, owner, path.join(this.datasetsDir, content.id, RECORD));
      const dir = path.join(this.datasetsDir, content.id);
      await rm(dir, { recursive: true, force: true }); // an interrupted earlier ingest of this content
      await mkdir(this.datasetsDir, { recursive: true });
      await rename(summary.root, dir);
      const record: StoredDataset = {
        id: content.id,
        path: dir,
        source: sourceName,
        kind: 'archive',
        created_at: new Date().toISOString(),
        bytes: content.bytes,
        files: content.files,
        splits: summary.splits,
        ...(owner !== undefined && { owners: [owner] }),
      };
      try {
        await writeJsonAtomic(path.join(dir, RECORD), record);
      } catch (err) {
        await rm(dir, { recursive: true, force: true }); // no half-stored dataset left behind
        throw err;
      }
      return record;
    });
  }

  /** Adds `owner` to a stored record (the same content uploaded by another key). */
  private async own(record: StoredDataset, owner: string | undefined, file: string): Promise<StoredDataset> {
    if (owner === undefined || record.owners?.includes(owner)) return record;
    const updated = { ...record, owners: [...(record.owners ?? []), owner] };
    await writeJsonAtomic(file, updated);
    return updated;
  }

  /** Validates a dataset already on shared storage (a path relative to dataDir) and registers it in place. */
  async ingestDirectory(pathUnderDataDir: string, owner?: string): Promise<StoredDataset> {
    const refuse = (message: string) => new DatasetError(DatasetErrorCodes.DATASET_INVALID, message, { problems: [{ file: pathUnderDataDir, message }] });
    const abs = path.resolve(this.dataDir, pathUnderDataDir);
    if (!inside(abs, this.dataDir)) throw refuse('a dataset directory must be inside the data directory');
    const real = await realpath(abs).catch(() => undefined);
    if (real === undefined) throw new DatasetError(DatasetErrorCodes.DATASET_NOT_FOUND, `dataset directory not found: ${pathUnderDataDir}`);
    // Checked again on the real path: a symlink under dataDir must not register /etc or a home directory.
    const realData = await realpath(this.dataDir);
    if (!inside(real, realData)) throw refuse('a dataset directory must be inside the data directory (it is a link to elsewhere)');
    if (['datasets', 'tmp', 'jobs'].map((d) => path.join(realData, d)).some((d) => real === d || inside(real, d))) {
      throw refuse("the store's own datasets/, tmp/ and jobs/ folders cannot be registered as a dataset");
    }
    const summary = await validateDataset(real, this.limits);
    const content = await hashTree(summary.root);
    return this.locked(content.id, async () => {
      const existing = await this.read(content.id);
      if (existing) return this.own(existing, owner, existing.kind === 'archive' ? path.join(this.datasetsDir, content.id, RECORD) : path.join(this.datasetsDir, `${content.id}.json`));
      const record: StoredDataset = {
        id: content.id,
        path: summary.root,
        source: pathUnderDataDir,
        kind: 'directory',
        created_at: new Date().toISOString(),
        bytes: content.bytes,
        files: content.files,
        splits: summary.splits,
        ...(owner !== undefined && { owners: [owner] }),
      };
      await mkdir(this.datasetsDir, { recursive: true });
      await writeJsonAtomic(path.join(this.datasetsDir, `${content.id}.json`), record);
      return record;
    });
  }

  /** A dataset by id; one `who` may not see is not found, exactly like one that does not exist. */
  async get(id: string, who?: Requester): Promise<StoredDataset> {
    const record = ID_PATTERN.test(id) ? await this.read(id) : undefined;
    if (!record || !visible(record, who)) throw new DatasetError(DatasetErrorCodes.DATASET_NOT_FOUND, `no dataset with id ${JSON.stringify(id.slice(0, 40))}`);
    return record;
  }

  /** Complete datasets `who` may see, oldest first. */
  async list(who?: Requester): Promise<StoredDataset[]> {
    const names = await readdir(this.datasetsDir).catch(() => [] as string[]);
    const ids = new Set(names.map((n) => n.replace(/\.json$/, '')).filter((n) => ID_PATTERN.test(n)));
    const records = await Promise.all([...ids].map((id) => this.read(id)));
    return records.filter((r): r is StoredDataset => r !== undefined && visible(r, who)).sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  }

  private async read(id: string): Promise<StoredDataset | undefined> {
    for (const file of [path.join(this.datasetsDir, id, RECORD), path.join(this.datasetsDir, `${id}.json`)]) {
      const text = await readFile(file, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      // Records are written atomically, so an unparsable one was damaged outside the store: treat
      // it like an incomplete dataset rather than let one bad file break every listing.
      try {
        return JSON.parse(text) as StoredDataset;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}

/** Write-then-rename: a reader sees the whole record or none, never half of it. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomUUID()}.tmp`);
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await rename(tmp, file);
}

interface TreeHash {
  id: string;
  paths: Set<string>;
  bytes: number;
  files: number;
}

/** Content id of a directory tree. Links are hashed by their target text, never followed (validation already refused ones leading out). */
export async function hashTree(root: string): Promise<TreeHash> {
  const entries: [string, string][] = [];
  let bytes = 0;
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const rel = prefix + d.name;
      const abs = path.join(dir, d.name);
      if (d.isDirectory()) await walk(abs, rel + '/');
      else if (d.isSymbolicLink()) entries.push([rel, 'link:' + (await readlink(abs))]);
      else if (d.isFile()) {
        bytes += (await stat(abs)).size;
        const hash = createHash('sha256');
        await pipeline(createReadStream(abs), hash);
        entries.push([rel, hash.digest('hex')]);
      }
    }
  };
  await walk(root, '');
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const files = entries.filter((e) => !e[1].startsWith('link:')).length;
  // JSON framing: names may hold any character, so no separator could be ambiguous.
  const id = 'ds-' + createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 16);
  return { id, paths: new Set(entries.map((e) => e[0])), bytes, files };
}

/**
 * Durable, content-addressed storage of reviewed items. Layout under dataDir:
 *
 *   feedback/items/<id>.json      a FeedbackRecord (src/feedback/item.ts), written atomically;
 *                                 <id> is the content address of the input (image and prompt)
 *   feedback/images/<sha256>.<ext> the image bytes, stored once whatever the number of items
 *
 * Every item is checked exactly as a dataset upload is (src/datasets/validate.ts) before it is
 * stored: the item is written as a one-line dataset in scratch space and validated there, so a
 * label, prompt or image the training pipeline would refuse never gets in.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { DiskBudget } from '../datasets/disk-budget.ts';
import { DatasetErrorCodes, isDatasetError } from '../datasets/errors.ts';
import type { Scratch } from '../datasets/scratch.ts';
import { writeJsonAtomic } from '../datasets/store.ts';
import { validateDataset } from '../datasets/validate.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { answerFor, datasetLine, feedbackId, FEEDBACK_ID_PATTERN, MAX_HISTORY, sha256, type FeedbackRecord } from './item.ts';
import { KeyedLock } from '../datasets/keyed-lock.ts';

export interface FeedbackStoreLimits {
  maxImagePixels: number;
  maxLineBytes: number;
  /** Free space a new item leaves on DATA_DIR's volume; without it free space is not checked. */
  minFreeBytes?: number;
}

/** A review as received: labels not yet validated (indices, or whatever the client sent). */
export type FeedbackSubmission = Omit<FeedbackRecord, 'id' | 'image' | 'safe_type' | 'safe_level' | 'created_at' | 'updated_at' | 'history'> & {
  image: Buffer | null;
  safe_type: unknown;
  safe_level: unknown;
};

export type PutStatus = 'created' | 'updated' | 'unchanged';

const READ_CONCURRENCY = 64;
// A record's JSON and directory entries, beside the image itself.
const RECORD_BYTES = 64 * 1024;

export class FeedbackStore {
  readonly itemsDir: string;
  readonly imagesDir: string;
  private readonly budget: DiskBudget | undefined;
  private readonly locks = new KeyedLock();

  constructor(
    dataDir: string,
    private readonly scratch: Scratch,
    private readonly limits: FeedbackStoreLimits,
  ) {
    const root = path.join(path.resolve(dataDir), 'feedback');
    this.itemsDir = path.join(root, 'items');
    this.imagesDir = path.join(root, 'images');
    this.budget = limits.minFreeBytes === undefined ? undefined : new DiskBudget(path.resolve(dataDir), { minFreeBytes: limits.minFreeBytes });
  }

  /** Validates and stores a review; the same input with the same label is one item, a new label replaces the old one. */
  async put(sub: FeedbackSubmission): Promise<{ record: FeedbackRecord; status: PutStatus }> {
    const imageSha = sub.image === null ? null : sha256(sub.image);
    const id = feedbackId(imageSha, sub.prompt);
    const imageFile = sub.image === null ? null : `${imageSha}.${await imageExtension(sub.image)}`;
    await mkdir(this.scratch.dir, { recursive: true });
    const reservation = this.budget ? await this.budget.reserve((sub.image?.length ?? 0) * 2 + RECORD_BYTES) : undefined;
    const tmp = path.join(this.scratch.dir, `feedback-${randomUUID()}`);
    const release = this.scratch.hold(tmp);
    try {
      await this.validate(tmp, id, sub, imageFile);
      // Valid: the labels are the validator's integers.
      const label = { safe_type: sub.safe_type as number, safe_level: sub.safe_level as number };
      return await this.locked(id, async () => {
        const now = new Date().toISOString();
        const existing = await this.get(id);
        const sameLabel = existing !== undefined && existing.safe_type === label.safe_type && existing.safe_level === label.safe_level;
        if (sameLabel && (sub.answer === undefined || sub.answer === existing.answer) && (sub.note === undefined || sub.note === existing.note)) {
          return { record: existing, status: 'unchanged' as const };
        }
        if (imageFile !== null && !(await exists(path.join(this.imagesDir, imageFile)))) {
          await mkdir(this.imagesDir, { recursive: true });
          await rename(path.join(tmp, 'images', imageFile), path.join(this.imagesDir, imageFile));
        }
        const { image: _image, answer, note, ...rest } = sub;
        const history = existing
          ? [
              ...existing.history,
              { safe_type: existing.safe_type, safe_level: existing.safe_level, ...(existing.note !== undefined && { note: existing.note }), reviewer: existing.reviewer, at: existing.updated_at },
            ].slice(-MAX_HISTORY)
          : [];
        // A new note or answer under the same label adds to the review; a new label starts afresh.
        const kept = { answer: answer ?? (sameLabel ? existing.answer : undefined), note: note ?? (sameLabel ? existing.note : undefined) };
        // The same input reviewed again inline still remembers what the model said when it was served.
        const origin =
          rest.model_judgement === null && existing?.model_judgement
            ? { source: existing.source, model_judgement: existing.model_judgement, ...(existing.served_answer && { served_answer: existing.served_answer }) }
            : {};
        const record: FeedbackRecord = {
          ...rest,
          ...origin,
          ...(kept.answer !== undefined && { answer: kept.answer }),
          ...(kept.note !== undefined && { note: kept.note }),
          ...label,
          id,
          image: imageFile,
          created_at: existing?.created_at ?? now,
          updated_at: now,
          history,
        };
        await mkdir(this.itemsDir, { recursive: true });
        await writeJsonAtomic(path.join(this.itemsDir, `${id}.json`), record);
        return { record, status: existing ? ('updated' as const) : ('created' as const) };
      });
    } finally {
      release();
      reservation?.release();
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** The item as a one-line dataset in `dir`, through the dataset validator; PSA_FEEDBACK_INVALID lists what is wrong. */
  private async validate(dir: string, id: string, sub: FeedbackSubmission, imageFile: string | null): Promise<void> {
    await mkdir(path.join(dir, 'images'), { recursive: true });
    const imagePath = imageFile === null ? null : `images/${imageFile}`;
    if (imagePath !== null) await writeFile(path.join(dir, imagePath), sub.image!);
    const probe = { ...sub, id, image: imageFile, safe_type: 0, safe_level: 0, reviewer: '', created_at: '', updated_at: '', history: [] } satisfies FeedbackRecord;
    const line = datasetLine({ id, prompt: sub.prompt, safe_type: sub.safe_type, safe_level: sub.safe_level }, imagePath, answerFor(probe));
    await writeFile(path.join(dir, 'train.jsonl'), JSON.stringify(line) + '\n');
    try {
      await validateDataset(dir, { maxImagePixels: this.limits.maxImagePixels, maxLineBytes: this.limits.maxLineBytes });
    } catch (err) {
      if (!isDatasetError(err, DatasetErrorCodes.DATASET_INVALID)) throw err;
      const problems = err.problems.map((p) => (imagePath === null ? p.message : p.message.replaceAll(`image ${imagePath}`, 'the image')));
      throw new ApiError(HttpErrorCodes.FEEDBACK_INVALID, `the feedback is not a valid training example: ${problems.join('; ')}`, { problems });
    }
  }

  async get(id: string): Promise<FeedbackRecord | undefined> {
    if (!FEEDBACK_ID_PATTERN.test(id)) return undefined;
    const text = await readFile(path.join(this.itemsDir, `${id}.json`), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as FeedbackRecord;
    } catch {
      return undefined; // damaged outside the store (records are written atomically): skipped, like an absent one
    }
  }

  /** Every stored item, oldest review first. */
  async list(): Promise<FeedbackRecord[]> {
    const names = (await readdir(this.itemsDir).catch(() => [] as string[]))
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -5))
      .filter((n) => FEEDBACK_ID_PATTERN.test(n));
    const out: FeedbackRecord[] = [];
    for (let i = 0; i < names.length; i += READ_CONCURRENCY) {
      const records = await Promise.all(names.slice(i, i + READ_CONCURRENCY).map((id) => this.get(id)));
      for (const r of records) if (r) out.push(r);
    }
    return out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  }

  /** Removes an item, and its image when no other item uses it; false when there was none. */
  async remove(id: string): Promise<boolean> {
    if (!FEEDBACK_ID_PATTERN.test(id)) return false;
    return this.locked(id, async () => {
      const record = await this.get(id);
      if (!record) return false;
      await rm(path.join(this.itemsDir, `${id}.json`), { force: true });
      if (record.image !== null && !(await this.list()).some((r) => r.image === record.image)) await rm(path.join(this.imagesDir, record.image), { force: true });
      return true;
    });
  }

  /** Absolute path of a stored image file. */
  imagePath(file: string): string {
    return path.join(this.imagesDir, path.basename(file));
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** The image's format as a file extension (header only); "bin" when unreadable, which validation then reports. */
async function imageExtension(image: Buffer): Promise<string> {
  const format = await sharp(image, { limitInputPixels: false })
    .metadata()
    .then(
      (m) => m.format as string,
      () => 'bin',
    );
  return format === 'jpeg' ? 'jpg' : /^[a-z0-9]{1,8}$/.test(format) ? format : 'bin';
}

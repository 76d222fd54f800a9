/**
 * Disk space for dataset ingests. Each ingest reserves the most it may write before it writes
 * anything, so several uploads at once cannot together fill the disk that each alone would fit
 * on; while extracting, free space is read again, since other writers share the volume.
 */
import { statfs } from 'node:fs/promises';
import { DatasetError, DatasetErrorCodes } from './errors.ts';

export interface DiskBudgetOptions {
  /** Free space an ingest must leave on DATA_DIR's volume. */
  minFreeBytes: number;
}

const full = (message: string) => new DatasetError(DatasetErrorCodes.INSUFFICIENT_STORAGE, message);

export class DiskBudget {
  private reserved = 0;

  constructor(
    private readonly dir: string,
    private readonly opts: DiskBudgetOptions,
  ) {}

  async free(): Promise<number> {
    const st = await statfs(this.dir);
    return Number(st.bavail) * Number(st.bsize);
  }

  /** Reserves `bytes` or throws PSA_INSUFFICIENT_STORAGE; the reservation ends with release(). */
  async reserve(bytes: number): Promise<{ release(): void; check(written: number): Promise<void> }> {
    const free = await this.free();
    const available = free - this.opts.minFreeBytes - this.reserved;
    if (bytes > available) {
      throw full(
        `not enough disk space for this dataset now: it may take ${bytes} bytes, ${Math.max(0, available)} are available (the server keeps ${this.opts.minFreeBytes} free); retry later or send a smaller archive`,
      );
    }
    this.reserved += bytes;
    let released = false;
    return {
      release: () => {
        if (!released) this.reserved -= bytes;
        released = true;
      },
      check: async (written: number) => {
        // Our own bytes already written are part of the reservation, no longer of the free space.
        const othersReserved = this.reserved - bytes;
        if ((await this.free()) - othersReserved < this.opts.minFreeBytes) {
          throw full(`the disk filled up while extracting the dataset (after ${written} bytes); retry later`);
        }
      },
    };
  }
}

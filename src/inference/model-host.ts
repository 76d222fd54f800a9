import { isAbsolute, resolve } from 'node:path';
import type { Config } from '../config.ts';
import { findPackages, isPackageDir, ModelNotFoundError, modelDir } from '../packages/discovery.ts';
import type { Manifest } from '../psa/manifest.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { ShadowNotFoundError, ShadowRunningError } from '../shadow/errors.ts';
import { ShadowRun, type ShadowSettings } from '../shadow/run.ts';
import { InferencePool, threadsPerWorker } from './pool.ts';

export interface PackageSummary {
  id: string;
  dir: string;
  name: string;
  created_at: string;
  provenance: Record<string, unknown>;
  active: boolean;
}

/** Resolves PSA_MODEL: a path, or a package name under MODELS_DIR. */
export function resolveModelDir(config: Config): string {
  const spec = config.PSA_MODEL;
  if (isAbsolute(spec) || spec.includes('/')) return resolve(spec);
  return resolve(config.MODELS_DIR, spec);
}

/**
 * Owns the active model's inference pool and knows the packages in MODELS_DIR. Activation
 * starts the new pool first (a package that fails validation is never activated), swaps, then
 * drains the old one: requests in flight finish on the model they started with. It also holds
 * at most one shadow run, a candidate's pool beside the active one (src/shadow/run.ts).
 */
export class ModelHost {
  private switching: Promise<unknown> = Promise.resolve();
  private shadowRun: ShadowRun | undefined;
  private shadowStarting: string | undefined;

  private constructor(
    private pool: InferencePool,
    private readonly config: Config,
    private readonly log: RuntimeLogger,
  ) {}

  static async start(config: Config, log: RuntimeLogger): Promise<ModelHost> {
    return new ModelHost(await InferencePool.start(resolveModelDir(config), config, log), config, log);
  }

  get active(): InferencePool {
    return this.pool;
  }

  get manifest(): Manifest {
    return this.pool.pkg.manifest;
  }

  /** The id (directory name) of the active package. */
  get activeId(): string {
    return this.pool.pkg.dir.split('/').pop()!;
  }

  private async packageDir(id: string): Promise<string> {
    const dir = modelDir(this.config.MODELS_DIR, id);
    if (!dir || !(await isPackageDir(dir))) throw new ModelNotFoundError(`no model package "${id}" in the models directory; GET /v1/models lists them`);
    return dir;
  }

  /**
   * Switches to the package `id` in MODELS_DIR; activations are serialised. Activating a shadow
   * run's candidate ends the run, and so does any change of the live model (its figures compare
   * the candidate with the model that was live when it started). This replica only: requests and
   * other replicas' events come through ModelActivation (./activation.ts), which tells the others.
   */
  activate(id: string): Promise<{ id: string; previous: string; changed: boolean }> {
    return this.serialised(async () => {
      const dir = await this.packageDir(id);
      const previous = this.activeId;
      const shadow = this.shadowRun?.running ? this.shadowRun : undefined;
      const isCandidate = shadow?.candidate.pkg.dir === resolve(dir);
      if (resolve(dir) === this.pool.pkg.dir) {
        if (isCandidate) void shadow!.end('activated');
        return { id, previous, changed: false };
      }
      await this.swapPool(dir);
      if (shadow?.running) void shadow.end(isCandidate ? 'activated' : 'live_changed');
      this.log.info({ model: id, previous }, 'model activated');
      return { id, previous, changed: true };
    });
  }

  /** The current shadow run, running or ended (its figures stay readable until DELETE or the next run). */
  get shadow(): ShadowRun | undefined {
    return this.shadowRun;
  }

  /**
   * Starts package `id` as a shadow candidate in a pool of its own (SHADOW_POOL_SIZE workers,
   * the live pool's threads per worker, so latencies compare); one run at a time.
   */
  startShadow(id: string, settings: ShadowSettings): Promise<ShadowRun> {
    const busy = this.shadowStarting ?? (this.shadowRun?.running ? this.shadowRun.candidateId : undefined);
    if (busy !== undefined) {
      return Promise.reject(new ShadowRunningError(`a shadow run of "${busy}" is running; stop it with DELETE /v1/models/${busy}/shadow first`, { running: busy }));
    }
    this.shadowStarting = id;
    return this.serialised(async () => {
      try {
        const dir = await this.packageDir(id);
        const c = this.config;
        const pool = await InferencePool.start(dir, { ...c, POOL_SIZE: c.SHADOW_POOL_SIZE, POOL_THREADS: threadsPerWorker(c) }, this.log);
        const live = { id: this.activeId, dir: this.pool.pkg.dir, name: this.pool.name, pool: () => this.pool };
        this.shadowRun = new ShadowRun(id, pool, live, settings, c.SHADOW_MAX_QUEUE, this.log);
        this.log.info({ model: id, live: this.activeId, share: settings.share }, 'shadow run started');
        return this.shadowRun;
      } finally {
        this.shadowStarting = undefined;
      }
    });
  }

  /** Ends the shadow run of `id` (if running), frees its pool and forgets it; its last report. */
  async stopShadow(id: string): Promise<ShadowRun> {
    const run = this.shadowRun;
    if (!run || run.candidateId !== id) throw this.noShadow(id);
    this.shadowRun = undefined;
    await run.end('stopped');
    return run;
  }

  noShadow(id: string): ShadowNotFoundError {
    const current = this.shadowStarting ?? this.shadowRun?.candidateId;
    const hint = current ? `; the shadow run is of "${current}"` : '; start one with POST /v1/models/{id}/shadow';
    return new ShadowNotFoundError(`no shadow run of "${id}"${hint}`);
  }

  /**
   * Starts the active package afresh (its temperature file changed: ModelActivation.recalibrated),
   * then swaps as activation does. A shadow run goes on beside the new pool: the live package is
   * the same, and each comparison pairs the candidate with the answer the client got.
   */
  reload(): Promise<void> {
    return this.serialised(async () => {
      await this.swapPool(this.pool.pkg.dir);
      this.log.info({ model: this.activeId }, 'model reloaded');
    });
  }

  /**
   * A package's temperature file changed: a shadow run of it ends ('candidate_changed'), since its
   * pool still scores with the old temperature; start a new run to compare the recalibrated one.
   */
  candidateChanged(id: string): void {
    const run = this.shadowRun;
    if (run?.running && run.candidateId === id) void run.end('candidate_changed');
  }

  /**
   * The pool a request should submit to, given the one it took when it arrived: that one while it
   * takes work, else the active pool when it serves the same package (a reload, e.g. a recalibrated
   * temperature, replaced it meanwhile). A pool replaced by another package is returned as it is and
   * refuses the work (503, retry): the request is not run on a model it did not ask for.
   */
  current(pool: InferencePool): InferencePool {
    const active = this.pool;
    return pool.alive || active === pool || active.pkg.dir !== pool.pkg.dir ? pool : active;
  }

  /** Runs `fn` after every earlier activation, reload or shadow start has settled. */
  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.switching.then(fn);
    this.switching = next.catch(() => {});
    return next;
  }

  /** Starts a pool on `dir`, makes it the live one, and closes the previous pool in the background. */
  private async swapPool(dir: string): Promise<void> {
    const fresh = await InferencePool.start(dir, this.config, this.log);
    const old = this.pool;
    this.pool = fresh;
    void old.close().catch((err: unknown) => this.log.error({ err }, 'closing the previous pool failed'));
  }

  /** Packages found in MODELS_DIR (manifests only; checksums are verified when one is loaded). */
  async list(): Promise<PackageSummary[]> {
    const found = (await findPackages(this.config.MODELS_DIR)).map((p) => this.summary(p.id, p.dir, p.manifest));
    if (!found.some((p) => p.active)) found.unshift(this.summary(this.activeId, this.pool.pkg.dir, this.manifest));
    return found;
  }

  private summary(id: string, dir: string, m: Manifest): PackageSummary {
    return { id, dir, name: m.name, created_at: m.created_at, provenance: m.provenance, active: resolve(dir) === this.pool.pkg.dir };
  }

  async close(): Promise<void> {
    await this.switching;
    await this.shadowRun?.end('shutdown');
    await this.pool.close();
  }
}

import { isAbsolute, resolve } from 'node:path';
import type { Config } from '../config.ts';
import { findPackages, isPackageDir, ModelNotFoundError, modelDir } from '../packages/discovery.ts';
import type { Manifest } from '../psa/manifest.ts';
import type { RuntimeLogger } from '../psa/logger.ts';
import { InferencePool } from './pool.ts';

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
 * drains the old one: requests in flight finish on the model they started with.
 */
export class ModelHost {
  private switching: Promise<unknown> = Promise.resolve();

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

  /** Switches to the package `id` in MODELS_DIR; activations are serialised. */
  activate(id: string): Promise<{ id: string; previous: string; changed: boolean }> {
    const next = this.switching.then(async () => {
      const dir = modelDir(this.config.MODELS_DIR, id);
      if (!dir || !(await isPackageDir(dir))) throw new ModelNotFoundError(`no model package "${id}" in the models directory; GET /v1/models lists them`);
      const previous = this.activeId;
      if (resolve(dir) === this.pool.pkg.dir) return { id, previous, changed: false };
      const fresh = await InferencePool.start(dir, this.config, this.log);
      const old = this.pool;
      this.pool = fresh;
      this.log.info({ model: id, previous }, 'model activated');
      void old.close().catch((err: unknown) => this.log.error({ err }, 'closing the previous model failed'));
      return { id, previous, changed: true };
    });
    this.switching = next.catch(() => {});
    return next;
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
    await this.pool.close();
  }
}

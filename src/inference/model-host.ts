import { readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Config } from '../config.ts';
import { readManifest, type Manifest } from '../psa/manifest.ts';
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

/** Owns the active model's inference pool and knows the packages in MODELS_DIR. */
export class ModelHost {
  private constructor(
    private pool: InferencePool,
    private readonly config: Config,
  ) {}

  static async start(config: Config, log: RuntimeLogger): Promise<ModelHost> {
    return new ModelHost(await InferencePool.start(resolveModelDir(config), config, log), config);
  }

  get active(): InferencePool {
    return this.pool;
  }

  get manifest(): Manifest {
    return this.pool.pkg.manifest;
  }

  /** Packages found in MODELS_DIR (manifests only; checksums are verified when one is loaded). */
  async list(): Promise<PackageSummary[]> {
    const root = resolve(this.config.MODELS_DIR);
    const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
    const found: PackageSummary[] = [];
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const dir = join(root, e.name);
      const manifest = await readManifest(dir).catch(() => null);
      if (manifest) found.push(this.summary(e.name, dir, manifest));
    }
    if (!found.some((p) => p.active)) found.unshift(this.summary(this.pool.pkg.dir.split('/').pop()!, this.pool.pkg.dir, this.manifest));
    return found;
  }

  private summary(id: string, dir: string, m: Manifest): PackageSummary {
    return { id, dir, name: m.name, created_at: m.created_at, provenance: m.provenance, active: resolve(dir) === this.pool.pkg.dir };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

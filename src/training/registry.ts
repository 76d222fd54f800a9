import { cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Moves a finished package into MODELS_DIR as NAME-vN (the next free version) and records its
 * provenance. Claiming the version with mkdir makes two jobs of one name never collide.
 */
export async function registerPackage(modelsDir: string, name: string, staged: string, provenance: Record<string, unknown>): Promise<{ id: string; dir: string }> {
  await mkdir(modelsDir, { recursive: true });
  const manifestPath = join(staged, 'psa.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { name: string; provenance: Record<string, unknown> };
  const taken = (await readdir(modelsDir))
    .map((d) => new RegExp(`^${name.replace(/[.]/g, '\\.')}-v(\\d+)$`).exec(d)?.[1])
    .filter(Boolean)
    .map(Number);
  let version = taken.length ? Math.max(...taken) + 1 : 1;
  for (;;) {
    const id = `${name}-v${version}`;
    const dir = join(modelsDir, id);
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        version++;
        continue;
      }
      throw err;
    }
    // psa.json's own bytes are not in its checksum list, so provenance can be added here.
    manifest.name = id;
    manifest.provenance = { ...manifest.provenance, ...provenance };
    await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    try {
      await rename(staged, dir); // replaces the empty claimed directory
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await cp(staged, dir, { recursive: true });
      await rm(staged, { recursive: true, force: true });
    }
    return { id, dir };
  }
}

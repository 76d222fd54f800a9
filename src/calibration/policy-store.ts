/**
 * Named policies, durable under DATA_DIR:
 *
 *   policies/calibrated-<name>.json   one policy: its overrides (a policy file's shape) and the
 *                                     calibration report it came from
 *   policies/default.json             {"policy": "calibrated-<name>"}: the one used when a request
 *                                     names none; absent, the server's policy (POLICY_FILE) is
 *
 * Files are written whole (write, then rename) and checked like a policy file when read. Reads are
 * cached and re-checked (one stat) at most once a second, so a policy written by `npm run calibrate`
 * or another replica on the same volume is seen within a second.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parsePolicy, PolicyInputSchema } from '../policy/policy.ts';

export const POLICY_NAME_PATTERN = '^calibrated-[a-z0-9][a-z0-9._-]{0,62}$';
const NAME = new RegExp(POLICY_NAME_PATTERN);
export const isPolicyName = (name: string) => NAME.test(name) && !name.endsWith('.json');
const RECHECK_MS = 1000;
const DEFAULT_FILE = 'default.json';

export const NamedPolicySchema = Type.Object({
  format: Type.Literal('psa-guard.named-policy'),
  format_version: Type.Literal(1),
  name: Type.String({ pattern: POLICY_NAME_PATTERN }),
  created_at: Type.String(),
  /** The package the policy was calibrated on, and the temperatures its probabilities had. */
  model: Type.Object({ id: Type.String(), name: Type.String(), temperature: Type.Object({ level: Type.Number(), type: Type.Number() }) }),
  policy: PolicyInputSchema,
  calibration: Type.Record(Type.String(), Type.Unknown()),
});
export type NamedPolicy = Static<typeof NamedPolicySchema>;

const DefaultSchema = Type.Object({ policy: Type.String({ pattern: POLICY_NAME_PATTERN }), set_at: Type.String() });

interface Cached<T> {
  checkedAt: number;
  mtimeMs: number;
  value: T;
}

export class PolicyStore {
  readonly dir: string;
  private readonly cache = new Map<string, Cached<unknown>>();

  constructor(dataDir: string) {
    this.dir = path.resolve(dataDir, 'policies');
  }

  private async readChecked<T>(file: string, check: (raw: unknown) => T): Promise<T | undefined> {
    const abs = path.join(this.dir, file);
    const hit = this.cache.get(file) as Cached<T> | undefined;
    const now = Date.now();
    if (hit && now - hit.checkedAt < RECHECK_MS) return hit.value;
    const st = await stat(abs).catch(() => undefined);
    if (!st) {
      this.cache.delete(file);
      return undefined;
    }
    if (hit && hit.mtimeMs === st.mtimeMs) {
      hit.checkedAt = now;
      return hit.value;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(abs, 'utf8'));
    } catch (err) {
      throw new Error(`${abs}: not valid JSON (${(err as Error).message})`, { cause: err });
    }
    const value = check(raw);
    this.cache.set(file, { checkedAt: now, mtimeMs: st.mtimeMs, value });
    return value;
  }

  /** A named policy, or undefined when there is none by that name. */
  get(name: string): Promise<NamedPolicy | undefined> {
    if (!isPolicyName(name)) return Promise.resolve(undefined);
    return this.readChecked(`${name}.json`, (raw) => {
      if (!Value.Check(NamedPolicySchema, raw)) {
        const first = Value.Errors(NamedPolicySchema, raw).First();
        throw new Error(`${path.join(this.dir, `${name}.json`)}${first?.path ?? ''}: ${first?.message ?? 'invalid'}`);
      }
      parsePolicy(raw.policy, `${path.join(this.dir, `${name}.json`)} policy`);
      return raw;
    });
  }

  async list(): Promise<NamedPolicy[]> {
    const names = (await readdir(this.dir).catch(() => [] as string[]))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5))
      .filter(isPolicyName);
    const records = await Promise.all(names.sort().map((n) => this.get(n)));
    return records.filter((r): r is NamedPolicy => r !== undefined);
  }

  /** Stores a policy; false when one by that name exists and `replace` is not set. */
  async save(record: NamedPolicy, replace: boolean): Promise<boolean> {
    const file = `${record.name}.json`;
    if (
      !replace &&
      (await stat(path.join(this.dir, file)).then(
        () => true,
        () => false,
      ))
    )
      return false;
    await this.write(file, record);
    return true;
  }

  async remove(name: string): Promise<boolean> {
    if (!isPolicyName(name)) return false;
    const abs = path.join(this.dir, `${name}.json`);
    const existed = await stat(abs).then(
      () => true,
      () => false,
    );
    await rm(abs, { force: true });
    this.cache.delete(`${name}.json`);
    return existed;
  }

  /** The default policy's name, or null for the server's policy. */
  async getDefault(): Promise<string | null> {
    const d = await this.readChecked(DEFAULT_FILE, (raw) => {
      if (!Value.Check(DefaultSchema, raw)) throw new Error(`${path.join(this.dir, DEFAULT_FILE)}: expected {"policy": "calibrated-<name>", "set_at": ...}`);
      return raw;
    });
    return d?.policy ?? null;
  }

  async setDefault(name: string | null): Promise<void> {
    if (name === null) await rm(path.join(this.dir, DEFAULT_FILE), { force: true });
    else await this.write(DEFAULT_FILE, { policy: name, set_at: new Date().toISOString() });
    this.cache.delete(DEFAULT_FILE);
  }

  private async write(file: string, value: unknown): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.${file}.${randomUUID()}.tmp`);
    await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
    await rename(tmp, path.join(this.dir, file));
    this.cache.delete(file);
  }
}

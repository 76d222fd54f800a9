import { readFile } from 'node:fs/promises';
import { BUILTIN_POLICY, mergePolicy, parsePolicy, type Policy } from './policy.ts';

/**
 * A policy file (POLICY_FILE, `npm run eval --policy`, `npm run calibrate --policy`) applied over
 * the built-in policy; no file is the built-in policy. Errors name the file (as `label`) and the
 * field that is wrong.
 */
export async function loadPolicyFile(path: string | undefined, label = `policy ${path}`): Promise<Policy> {
  if (!path) return BUILTIN_POLICY;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`${label}: cannot read it as JSON (${(err as Error).message})`);
  }
  return mergePolicy(BUILTIN_POLICY, parsePolicy(raw, `${label} at `));
}

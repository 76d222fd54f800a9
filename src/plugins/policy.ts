import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { BUILTIN_POLICY, mergePolicy, parsePolicy, type Policy } from '../policy/policy.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The server's policy: the built-in one with POLICY_FILE applied on top. */
    policy: Policy;
  }
}

export async function loadPolicyFile(path: string): Promise<Policy> {
  if (!path) return BUILTIN_POLICY;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`POLICY_FILE ${path}: cannot read it as JSON (${(err as Error).message})`);
  }
  return mergePolicy(BUILTIN_POLICY, parsePolicy(raw, `POLICY_FILE ${path}`));
}

export default fp(
  async function policy(app: FastifyInstance, opts: { policyFile: string }) {
    const loaded = await loadPolicyFile(opts.policyFile);
    app.decorate('policy', loaded);
    if (opts.policyFile) app.log.info({ policyFile: opts.policyFile }, 'policy loaded');
  },
  { name: 'psa-policy' },
);

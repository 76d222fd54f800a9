import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Policy } from '../policy/policy.ts';
import { loadPolicyFile } from '../policy/policy-file.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The server's policy: the built-in one with POLICY_FILE applied on top. */
    policy: Policy;
  }
}

export default fp(
  async function policy(app: FastifyInstance, opts: { policyFile: string }) {
    const loaded = await loadPolicyFile(opts.policyFile, `POLICY_FILE ${opts.policyFile}`);
    app.decorate('policy', loaded);
    if (opts.policyFile) app.log.info({ policyFile: opts.policyFile }, 'policy loaded');
  },
  { name: 'psa-policy' },
);

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.ts';
import { PolicyStore } from '../calibration/policy-store.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { mergePolicy, parsePolicy, type Policy, type PolicyInput } from '../policy/policy.ts';

/** A request's `policy`: overrides, or the name of a stored policy ("calibrated-<name>"). */
export type PolicyField = PolicyInput | string | undefined;

export interface NamedPolicies {
  store: PolicyStore;
  /** The policy a request gets: a named one, or overrides over the default (named default, else the server's). */
  resolve(field: PolicyField): Promise<Policy>;
}

declare module 'fastify' {
  interface FastifyInstance {
    policies: NamedPolicies;
  }
}

/** Named (calibrated) policies under DATA_DIR/policies and the persisted default among them. */
export default fp(
  async function namedPolicies(app: FastifyInstance, opts: { config: Config }) {
    const store = new PolicyStore(opts.config.DATA_DIR);
    let warnedMissing: string | undefined;

    const named = async (name: string): Promise<Policy | undefined> => {
      const record = await store.get(name);
      return record && mergePolicy(app.policy, record.policy);
    };
    const base = async (): Promise<Policy> => {
      const name = await store.getDefault();
      if (name === null) return app.policy;
      const policy = await named(name);
      if (policy) return policy;
      // The default's file was removed behind the store's back: serve the server's policy, loudly.
      if (warnedMissing !== name) app.log.error({ policy: name }, 'the default policy is missing from DATA_DIR/policies; serving the server policy until it is set again');
      warnedMissing = name;
      return app.policy;
    };

    app.decorate('policies', {
      store,
      async resolve(field: PolicyField): Promise<Policy> {
        if (typeof field === 'string') {
          const policy = await named(field);
          if (!policy) {
            throw new ApiError(
              HttpErrorCodes.UNKNOWN_POLICY,
              `no policy named ${JSON.stringify(field.slice(0, 80))}; "policy" is an object of overrides or the name of a calibrated policy (calibrated-<name>, GET /v1/policies lists them)`,
              { field: 'policy' },
            );
          }
          return policy;
        }
        const resolved = await base();
        return field === undefined ? resolved : mergePolicy(resolved, parsePolicy(field, 'policy'));
      },
    });
  },
  { name: 'psa-named-policies', dependencies: ['psa-policy'] },
);

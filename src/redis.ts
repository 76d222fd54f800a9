import { Redis, type RedisOptions } from 'ioredis';

/**
 * Redis connections. The API's fail fast (no offline queue: while Redis is down a command
 * errors at once and the route answers 503); workers' retry forever
 * (maxRetriesPerRequest: null), as BullMQ requires for blocking connections.
 */
export function apiRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...options,
  });
}

export function workerRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 500, 5000),
    ...options,
  });
}

/** Every Redis key and channel the service names itself (BullMQ names its queue's own keys). */
export const keys = (prefix: string) => ({
  /** Pub/sub: a running job's id, published when it is cancelled (the fast path). */
  cancelChannel: `${prefix}:train:cancel`,
  /** Set when a running job is cancelled; workers also read it, so a missed message is not a lost cancel. */
  cancelFlag: (jobId: string) => `${prefix}:train:cancel:${jobId}`,
  /** The record of a waiting job that was cancelled (and removed from the queue). */
  tombstone: (jobId: string) => `${prefix}:train:tombstone:${jobId}`,
  activatedChannel: `${prefix}:models:activated`,
  activeModel: `${prefix}:models:active`,
});

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

export const keys = (prefix: string) => ({
  cancelChannel: `${prefix}:train:cancel`,
  activatedChannel: `${prefix}:models:activated`,
  activeModel: `${prefix}:models:active`,
});

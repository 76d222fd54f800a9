import type { Config } from './config.ts';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export const isLoopback = (host: string) => LOOPBACK.has(host.trim().toLowerCase());

/**
 * The address the server really listens on: HOST, except that without API keys (and without
 * ALLOW_NO_AUTH) it is forced to 127.0.0.1, so an unauthenticated server is never reachable
 * from other machines.
 */
export function listenHost(config: Pick<Config, 'HOST' | 'ALLOW_NO_AUTH'>, authEnabled: boolean): { host: string; forced: boolean } {
  if (authEnabled || config.ALLOW_NO_AUTH || isLoopback(config.HOST)) return { host: config.HOST, forced: false };
  return { host: '127.0.0.1', forced: true };
}

/** PLAYGROUND=auto serves the page only where the server listens on a loopback address. */
export function playgroundEnabled(config: Pick<Config, 'HOST' | 'ALLOW_NO_AUTH' | 'PLAYGROUND'>, authEnabled: boolean): boolean {
  if (config.PLAYGROUND !== 'auto') return config.PLAYGROUND === 'on';
  return isLoopback(listenHost(config, authEnabled).host);
}

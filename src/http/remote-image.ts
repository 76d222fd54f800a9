import { lookup } from 'node:dns/promises';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { PsaError, PsaErrorCodes } from '../psa/errors.ts';
import { apiError, HttpErrorCodes } from './errors.ts';

export interface RemoteImagePolicy {
  hosts: string[];
  ports: number[];
  /** CIDRs of private/loopback/link-local space that may still be fetched from. */
  allowedNetworks: string[];
  timeoutMs: number;
}

/** Address space that is never the public internet: refused unless the operator lists it. */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv6');

/** ALLOWED_IMAGE_NETWORKS as a BlockList; a malformed CIDR throws (checked at start). */
export function allowList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [net, bits] = c.split('/');
    const family = isIP(net ?? '') === 6 ? 'ipv6' : 'ipv4';
    list.addSubnet(net!, Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
  }
  return list;
}

const refused = (where: string, why: string) => apiError(HttpErrorCodes.REMOTE_IMAGE_REFUSED, `${where}: ${why}; send the image as a data: URL instead`);

/**
 * Fetches an https image from an allowed host and port, with a byte limit and one deadline for
 * the whole exchange. The host is resolved once, the address checked (no private, loopback or
 * link-local space unless listed) and the connection made to exactly that address, so a DNS
 * answer that changes between check and connect cannot point the server into its own network.
 */
export async function fetchRemoteImage(url: string, policy: RemoteImagePolicy, maxBytes: number, where: string): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw apiError(HttpErrorCodes.BAD_REQUEST, `${where} is neither a data: URL nor a valid URL`);
  }
  if (policy.hosts.length === 0) throw refused(where, 'remote image URLs are disabled on this server');
  const host = parsed.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  // The URL parser turns "https://2130706433/" into 127.0.0.1: the authority must be written as it is listed.
  const written = /^https:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i
    .exec(url)?.[1]
    ?.replace(/^\[|\]$/g, '')
    .toLowerCase();
  if (parsed.protocol !== 'https:' || !policy.hosts.includes(host) || written !== host || parsed.username || parsed.password) {
    throw refused(where, `only https URLs on ${policy.hosts.join(', ')} are fetched`);
  }
  const port = parsed.port === '' ? 443 : Number(parsed.port);
  if (!policy.ports.includes(port)) throw refused(where, `port ${port} is not fetched (allowed: ${policy.ports.join(', ')})`);

  const extra = allowList(policy.allowedNetworks);
  let address: { address: string; family: number };
  try {
    address = isIP(host) ? { address: host, family: isIP(host) } : await lookup(host, { verbatim: true });
  } catch {
    throw apiError(HttpErrorCodes.BAD_REQUEST, `${where}: the image host ${host} does not resolve`);
  }
  const type = address.family === 6 ? 'ipv6' : 'ipv4';
  if (PRIVATE.check(address.address, type) && !extra.check(address.address, type)) {
    throw refused(where, `${host} resolves to a private, loopback or link-local address`);
  }
  const pinned: LookupFunction = (_name, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [address]);
    else callback(null, address.address, address.family);
  };
  return download(parsed, pinned, maxBytes, where, policy.timeoutMs);
}

function download(url: URL, lookupFn: LookupFunction, maxBytes: number, where: string, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'GET', lookup: lookupFn, headers: { accept: 'image/*' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return fail(apiError(HttpErrorCodes.BAD_REQUEST, `${where}: the image host answered ${res.statusCode}${res.statusCode && res.statusCode >= 300 && res.statusCode < 400 ? ' (redirects are not followed)' : ''}`));
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > maxBytes) return fail(new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `${where}: the image is ${declared} bytes; at most ${maxBytes} are accepted`));
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > maxBytes) return fail(new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `${where}: the image is over ${maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on('end', () => done(Buffer.concat(chunks)));
      res.on('error', () => fail(apiError(HttpErrorCodes.BAD_REQUEST, `${where}: the image download broke off`)));
    });
    const timer = setTimeout(() => fail(apiError(HttpErrorCodes.BAD_REQUEST, `${where}: fetching the image took longer than ${timeoutMs} ms`)), timeoutMs);
    let settled = false;
    function done(buf: Buffer) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(buf);
    }
    function fail(err: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    }
    req.on('error', (err) => fail(apiError(HttpErrorCodes.BAD_REQUEST, `${where}: fetching the image failed (${(err as NodeJS.ErrnoException).code ?? 'connection error'})`)));
    req.end();
  });
}

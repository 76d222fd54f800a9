import type { FastifyRequest } from 'fastify';
import { ApiError, HttpErrorCodes } from './errors.ts';

/** "example.com:8080" -> "example.com"; "[::1]:80" -> "::1". */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/**
 * Without API keys, whoever reaches the port may call every route, so the server makes sure the
 * caller is not a web page: the Host must be one of ours (a DNS-rebinding page names its own
 * domain) and a browser's cross-site request (Origin of another site, Sec-Fetch-Site) is refused.
 */
export function checkBrowserOrigin(request: FastifyRequest, allowedHosts: string[]): void {
  const host = request.headers.host ?? '';
  if (!allowedHosts.includes(hostName(host))) {
    throw new ApiError(HttpErrorCodes.FORBIDDEN, `Host "${host.slice(0, 100)}" is not served without API keys; call the server by one of ${allowedHosts.join(', ')} (ALLOWED_HOSTS) or configure API_KEYS`, {
      host: host.slice(0, 100),
    });
  }
  const origin = request.headers.origin;
  if (origin !== undefined) {
    let originHost = '';
    try {
      originHost = new URL(origin).hostname.replace(/^\[|\]$/g, '').toLowerCase();
    } catch {
      // "null" (sandboxed pages, file://) and garbage are foreign by definition
    }
    if (!allowedHosts.includes(originHost)) {
      throw new ApiError(HttpErrorCodes.FORBIDDEN, `cross-origin requests (Origin ${origin.slice(0, 100)}) are refused without API keys; configure API_KEYS for browser clients`, { origin: origin.slice(0, 100) });
    }
  }
  if (request.headers['sec-fetch-site'] === 'cross-site') {
    throw new ApiError(HttpErrorCodes.FORBIDDEN, 'cross-site browser requests are refused without API keys', { 'sec-fetch-site': 'cross-site' });
  }
}

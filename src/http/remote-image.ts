import { PsaError, PsaErrorCodes } from '../psa/errors.ts';
import { apiError, HttpErrorCodes } from './errors.ts';

/**
 * Fetches an https image from an allowed host, with a byte limit and a timeout. Anything else
 * (other schemes, other hosts, redirects elsewhere) is refused: the server must not be a proxy
 * into the network it runs in.
 */
export async function fetchRemoteImage(url: string, allowedHosts: string[], maxBytes: number, where: string): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw apiError(HttpErrorCodes.BAD_REQUEST, `${where} is neither a data: URL nor a valid URL`);
  }
  if (parsed.protocol !== 'https:' || !allowedHosts.includes(parsed.hostname)) {
    throw apiError(
      HttpErrorCodes.REMOTE_IMAGE_REFUSED,
      allowedHosts.length === 0
        ? `${where}: remote image URLs are disabled on this server; send the image as a data: URL`
        : `${where}: only https URLs on ${allowedHosts.join(', ')} are fetched; send other images as data: URLs`,
    );
  }
  let response: Response;
  try {
    response = await fetch(parsed, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw apiError(HttpErrorCodes.BAD_REQUEST, `${where}: fetching the image failed (${(err as Error).message})`);
  }
  if (!response.ok || !response.body) throw apiError(HttpErrorCodes.BAD_REQUEST, `${where}: the image host answered ${response.status}`);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `${where}: the image is ${declared} bytes; at most ${maxBytes} are accepted`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.length;
    if (total > maxBytes) throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `${where}: the image is over ${maxBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { tinyPackage } from '../../scripts/lib/random-package.ts';

/** The app exactly as production builds it, on the tiny package, with settings overridden. */
export async function testApp(overrides: Record<string, string> = {}, logger: unknown = false): Promise<{ app: FastifyInstance; config: Config }> {
  // Load shedding on event-loop lag is off: on a busy 2-core CI machine it would shed test requests.
  const config = loadConfig({ PSA_MODEL: await tinyPackage(), POOL_SIZE: '1', LOG_LEVEL: 'silent', EVENT_LOOP_MAX_DELAY_MS: '0', ...overrides });
  const app = await buildApp(config, { logger: logger as never });
  return { app, config };
}

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/** A multipart/form-data body built by hand, so tests control every byte. */
export function multipartBody(parts: { name: string; value: string | Buffer; filename?: string; type?: string }[]): { body: Buffer; contentType: string } {
  const boundary = `----psa${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}`;
    const head = `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.filename ? `Content-Type: ${p.type ?? 'application/octet-stream'}\r\n` : ''}\r\n`;
    chunks.push(Buffer.from(head), Buffer.isBuffer(p.value) ? p.value : Buffer.from(p.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

import type {} from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { PsaError, PsaErrorCodes } from '../psa/errors.ts';
import { apiError, HttpErrorCodes } from './errors.ts';
import { splitList, type Config } from '../config.ts';
import { fetchRemoteImage, type RemoteImagePolicy } from './remote-image.ts';

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+)?(;[\w-]+=[^;,]*)*;base64,/i;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes a base64 string or data URL into image bytes, checking the byte limit first. */
export function decodeImageString(value: string, maxBytes: number, where: string): Buffer {
  const match = DATA_URL.exec(value);
  if (!match && value.startsWith('data:')) throw apiError(HttpErrorCodes.BAD_REQUEST, `${where}: only base64 data URLs are accepted (data:<type>;base64,...)`);
  const payload = (match ? value.slice(match[0].length) : value).replace(/\s+/g, '');
  if (payload.length === 0) throw new PsaError(PsaErrorCodes.EMPTY_IMAGE, `${where} is empty`);
  if (Math.floor((payload.length * 3) / 4) > maxBytes + 2) {
    throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `${where} decodes to more than ${maxBytes} bytes; send a smaller image`);
  }
  if (!BASE64.test(payload)) throw new PsaError(PsaErrorCodes.INVALID_IMAGE, `${where} is not valid base64`);
  const bytes = Buffer.from(payload, payload.includes('-') || payload.includes('_') ? 'base64url' : 'base64');
  if (bytes.length > maxBytes) throw new PsaError(PsaErrorCodes.IMAGE_TOO_LARGE, `${where} is ${bytes.length} bytes; at most ${maxBytes} are accepted`);
  return bytes;
}

/** Image bytes from an image_url: a base64 data: URL, or https on ALLOWED_IMAGE_HOSTS. */
export async function imageFromUrl(url: string, config: Config, where: string): Promise<Buffer> {
  if (url.startsWith('data:')) return decodeImageString(url, config.MAX_IMAGE_BYTES, where);
  return fetchRemoteImage(url, remoteImagePolicy(config), config.MAX_IMAGE_BYTES, where);
}

/** Where remote image URLs may point, from the server's configuration. */
export function remoteImagePolicy(config: Config): RemoteImagePolicy {
  return {
    hosts: splitList(config.ALLOWED_IMAGE_HOSTS).map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')),
    ports: splitList(config.ALLOWED_IMAGE_PORTS).map(Number),
    allowedNetworks: splitList(config.ALLOWED_IMAGE_NETWORKS),
    timeoutMs: config.REMOTE_IMAGE_TIMEOUT_MS,
  };
}

export interface MultipartInput {
  images: Buffer[];
  fields: Map<string, string[]>;
}

/** Reads a multipart form: files named "image", every other part as text fields. */
export async function readMultipart(request: FastifyRequest, maxImages: number): Promise<MultipartInput> {
  const images: Buffer[] = [];
  const fields = new Map<string, string[]>();
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image') {
        part.file.resume();
        throw apiError(HttpErrorCodes.BAD_REQUEST, `unexpected file field "${part.fieldname}"; send images in fields named "image"`);
      }
      if (images.length >= maxImages) {
        part.file.resume();
        throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `at most ${maxImages} images per request`);
      }
      const data = await part.toBuffer();
      images.push(data);
    } else {
      // The form limit cuts a field silently; a cut prompt or policy must not be used as if whole.
      if (part.valueTruncated || part.fieldnameTruncated) {
        throw apiError(HttpErrorCodes.PAYLOAD_TOO_LARGE, `form field "${part.fieldname.slice(0, 100)}" is too long for this server; send a shorter prompt or policy`);
      }
      const list = fields.get(part.fieldname) ?? [];
      list.push(typeof part.value === 'string' ? part.value : JSON.stringify(part.value));
      fields.set(part.fieldname, list);
    }
  }
  return { images, fields };
}

/** A JSON-valued form field ("options", "policy"), parsed. */
export function jsonField(fields: Map<string, string[]>, name: string): unknown {
  const raw = fields.get(name)?.[0];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw apiError(HttpErrorCodes.BAD_REQUEST, `form field "${name}" must be JSON`);
  }
}

/**
 * The form's "intervene" field: JSON, or text that is not JSON taken as the string it is, so that
 * validation refuses it as it refuses a JSON body whose "intervene" is that string (PSA_INVALID_LABEL).
 */
export function interveneFormField(fields: Map<string, string[]>): unknown {
  const raw = fields.get('intervene')?.[0];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** The form's "policy" field: JSON overrides, or a calibrated policy's name as plain text or JSON. */
export function policyFormField(fields: Map<string, string[]>): unknown {
  const raw = fields.get('policy')?.[0];
  return raw?.startsWith('calibrated-') ? raw : jsonField(fields, 'policy');
}

/**
 * Checks a body assembled from a form with the route's own JSON body schema, and fails exactly as
 * a JSON request would (same codes, same messages): multipart is another encoding, not a way past
 * validation.
 */
export function validateLikeJson(request: FastifyRequest, body: Record<string, unknown>): void {
  const validate = request.getValidationFunction('body');
  if (!validate || validate(body)) return;
  const err = Object.assign(new Error('body is invalid'), { validation: validate.errors ?? [], validationContext: 'body', statusCode: 400, code: 'FST_ERR_VALIDATION' });
  throw err;
}

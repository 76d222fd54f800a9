import { PsaError, PsaErrorCodes } from './errors.ts';
import type { GenerationOptions } from './generator.ts';
import type { Manifest } from './manifest.ts';

/**
 * Generation options are resolved once, here: the request's fields over the package manifest's
 * defaults over the project's, each checked, with the server's cap on the answer's length. The
 * HTTP edge resolves every chat request before it leaves for a worker; the worker and the
 * runtime use the result as it is.
 */

/** A request's generation fields, named as the API names them; `stop` is one string or several. */
export interface GenerationRequest {
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | string[];
}

/** The defaults a package manifest may set (psa.json `generation`). */
export type GenerationDefaults = Partial<Omit<Manifest['generation'], 'eos_token_id'>>;

/** What a manifest leaves out: greedy decoding of up to 256 tokens, as trainer/package.py writes. */
export const PROJECT_GENERATION_DEFAULTS = Object.freeze({ max_new_tokens: 256, temperature: 0, top_k: 0, top_p: 1, stop: Object.freeze([]) as readonly string[] });

/** Every generation setting, checked; what pass 2 runs with. */
export type ResolvedGeneration = Readonly<Omit<GenerationOptions, 'signal'>>;

export interface GenerationLimits {
  /** The server's most tokens per answer (MAX_NEW_TOKENS): a request over it is refused, a default over it is cut to it. */
  maxNewTokens?: number;
}

const invalid = (field: string, rule: string) => new PsaError(PsaErrorCodes.INVALID_GENERATION_OPTION, `${field} ${rule}`, { details: { field } });

export function resolveGeneration(request: GenerationRequest, defaults: GenerationDefaults = {}, limits: GenerationLimits = {}): ResolvedGeneration {
  const cap = limits.maxNewTokens ?? Number.POSITIVE_INFINITY;
  if (request.max_tokens !== undefined && request.max_tokens > cap) throw invalid('max_tokens', `is at most ${cap} on this server`);
  const temperature = request.temperature ?? defaults.temperature ?? PROJECT_GENERATION_DEFAULTS.temperature;
  const topK = request.top_k ?? defaults.top_k ?? PROJECT_GENERATION_DEFAULTS.top_k;
  const topP = request.top_p ?? defaults.top_p ?? PROJECT_GENERATION_DEFAULTS.top_p;
  const { seed } = request;
  const maxNewTokens = request.max_tokens ?? Math.min(defaults.max_new_tokens ?? PROJECT_GENERATION_DEFAULTS.max_new_tokens, cap);
  const stop = request.stop === undefined ? (defaults.stop ?? PROJECT_GENERATION_DEFAULTS.stop) : typeof request.stop === 'string' ? [request.stop] : request.stop;
  if (!Number.isFinite(temperature) || temperature < 0 || temperature > 5) throw invalid('temperature', 'must be between 0 and 5');
  if (!Number.isInteger(topK) || topK < 0) throw invalid('top_k', 'must be a non-negative integer');
  if (!Number.isFinite(topP) || topP <= 0 || topP > 1) throw invalid('top_p', 'must be in (0, 1]');
  if (seed !== undefined && (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)) throw invalid('seed', 'must be an integer in [0, 2^32)');
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw invalid('max_tokens', 'must be a positive integer');
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) throw invalid('stop', 'must be a string or a list of strings');
  return Object.freeze({ maxNewTokens, temperature, topK, topP, stop: [...stop], ...(seed !== undefined && { seed }) });
}

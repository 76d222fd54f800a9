import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PsaError, PsaErrorCodes } from './errors.ts';
import type { GenerationOptions } from './generator.ts';
import type { Manifest } from './manifest.ts';

/**
 * Generation options are resolved once, here: the request's fields over the package manifest's
 * defaults over the project's, each checked, with the server's cap on the answer's length. The
 * HTTP edge resolves every chat request before it leaves for a worker; the worker and the
 * runtime use the result as it is.
 */

/** A request's generation fields, named as the API names them: the chat bodies' schemas and the checks below. */
export const GenerationFields = {
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, description: 'Most tokens to generate (bounded by MAX_NEW_TOKENS)' })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 5, description: '0 is greedy' })),
  top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  top_k: Type.Optional(Type.Integer({ minimum: 0 })),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295 })),
  stop: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: 8 })])),
};
const GenerationRequestSchema = Type.Object(GenerationFields);
export type GenerationRequest = Static<typeof GenerationRequestSchema>;

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
  // The values used, whoever set them, meet the request's rules; the manifest's stop strings were checked when it was read.
  const used = {
    max_tokens: request.max_tokens ?? Math.min(defaults.max_new_tokens ?? PROJECT_GENERATION_DEFAULTS.max_new_tokens, cap),
    temperature: request.temperature ?? defaults.temperature ?? PROJECT_GENERATION_DEFAULTS.temperature,
    top_p: request.top_p ?? defaults.top_p ?? PROJECT_GENERATION_DEFAULTS.top_p,
    top_k: request.top_k ?? defaults.top_k ?? PROJECT_GENERATION_DEFAULTS.top_k,
    ...(request.seed !== undefined && { seed: request.seed }),
    ...(request.stop !== undefined && { stop: request.stop }),
  };
  const problem = Value.Errors(GenerationRequestSchema, used).First();
  if (problem) throw invalid(problem.path.split('/')[1] ?? 'options', `is invalid: ${problem.message}`);
  const stop = request.stop === undefined ? (defaults.stop ?? PROJECT_GENERATION_DEFAULTS.stop) : typeof request.stop === 'string' ? [request.stop] : request.stop;
  return Object.freeze({ maxNewTokens: used.max_tokens, temperature: used.temperature, topK: used.top_k, topP: used.top_p, stop: [...stop], ...(used.seed !== undefined && { seed: used.seed }) });
}

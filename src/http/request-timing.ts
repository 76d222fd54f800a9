import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Per-request marks for the stages the HTTP thread spends time in. */
const marks = new WeakMap<FastifyRequest, { parsingAt: number; serializingAt?: number }>();

/**
 * Route hooks that time the HTTP side of an inference route: `parseMs(request)` is the time from
 * the start of body parsing until now (call it once the input is normalised, base64 decoded), and
 * the response's serialisation is observed as `psa_stage_seconds{stage="serialize"}`.
 */
export function requestTimingHooks(app: FastifyInstance) {
  return {
    preParsing: async (request: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
      marks.set(request, { parsingAt: performance.now() });
      return payload;
    },
    preSerialization: async (request: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
      const mark = marks.get(request);
      if (mark) mark.serializingAt = performance.now();
      return payload;
    },
    onSend: async (request: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
      const at = marks.get(request)?.serializingAt;
      if (at !== undefined) app.metrics.stageSeconds.observe({ stage: 'serialize' }, (performance.now() - at) / 1000);
      return payload;
    },
  };
}

/** Milliseconds since body parsing began (0 when the hooks did not run for this request). */
export function parseMs(request: FastifyRequest): number {
  const mark = marks.get(request);
  return mark ? performance.now() - mark.parsingAt : 0;
}

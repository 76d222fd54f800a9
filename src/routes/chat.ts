import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Config } from '../config.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { ApiError, apiError, HttpErrorCodes } from '../http/errors.ts';
import { ChatBody, GenerationFields, readChatInput } from '../http/chat-input.ts';
import { appliedView, conceptsView, resolveIntervention } from '../http/concepts-view.ts';
import { AppliedSchema, ConceptsSchema, DecisionSchema, withErrors } from '../http/schemas.ts';
import type { ChatEvent } from '../inference/protocol.ts';
import { PsaErrorCodes } from '../psa/errors.ts';
import { mergePolicy, parsePolicy } from '../policy/policy.ts';

const ChatResponse = Type.Object({
  id: Type.String(),
  model: Type.String(),
  answer: Type.String(),
  refused: Type.Boolean({ description: 'True when the policy decision is "refuse"' }),
  decision: DecisionSchema,
  flagged: Type.Boolean(),
  concepts: ConceptsSchema,
  applied: AppliedSchema,
  hint: Type.Union([Type.String(), Type.Null()]),
  finish_reason: Type.String({ description: 'eos, length, stop, context, or refused (policy refusal without generation)' }),
  usage: Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer() }),
  timings: Type.Object({ total_ms: Type.Number(), preprocess_ms: Type.Number(), pass1_ms: Type.Number(), pass2_ms: Type.Number(), tokens_per_second: Type.Number() }),
});

const MultipartOptions = Type.Object({ ...GenerationFields, stream: Type.Optional(Type.Boolean()) }, { additionalProperties: false });

function sse(reply: FastifyReply, event: string, data: unknown): void {
  if (!reply.raw.writableEnded) reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export default async function chatRoutes(app: FastifyInstance, opts: { config: Config }) {
  const { config } = opts;
  app.post(
    '/v1/chat',
    {
      config: { scope: 'infer' },
      bodyLimit: inferenceBodyLimit(config),
      schema: {
        summary: 'Concept-conditioned answer for an image and a prompt (pass 1, policy, pass 2)',
        description:
          'JSON (image + prompt, or OpenAI-style messages with one image_url data: URL) or multipart/form-data (file "image", field "prompt", JSON fields "options", "policy", "intervene"). With stream: true the answer is Server-Sent Events: "concepts", then "delta" events, then "done" (or "error").',
        tags: ['inference'],
        consumes: ['application/json', 'multipart/form-data'],
        body: ChatBody,
        response: withErrors({ 200: ChatResponse }),
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const input = await readChatInput(request, config);
      if (request.isMultipart() && !Value.Check(MultipartOptions, input.options)) {
        const first = Value.Errors(MultipartOptions, input.options).First();
        throw apiError(HttpErrorCodes.BAD_REQUEST, `options${first?.path ?? ''} ${first?.message ?? 'is invalid'}`);
      }
      const o = input.options;
      if (input.prompt.length > config.MAX_PROMPT_CHARS) throw apiError(HttpErrorCodes.BAD_REQUEST, `the prompt has ${input.prompt.length} characters; at most ${config.MAX_PROMPT_CHARS}`);
      if (o.max_tokens !== undefined && o.max_tokens > config.MAX_NEW_TOKENS) {
        throw new ApiError(PsaErrorCodes.INVALID_GENERATION_OPTION, `max_tokens is at most ${config.MAX_NEW_TOKENS} on this server`, { field: 'max_tokens' });
      }
      const policy = mergePolicy(app.policy, input.policy === undefined ? undefined : parsePolicy(input.policy, 'policy'));
      const intervene = resolveIntervention(input.intervene);
      const intervened = intervene.level !== undefined || intervene.type !== undefined;
      const pool = app.models.active;
      const id = `chat-${randomUUID()}`;
      const generation = {
        maxNewTokens: Math.min(o.max_tokens ?? pool.pkg.manifest.generation.max_new_tokens, config.MAX_NEW_TOKENS),
        ...(o.temperature !== undefined && { temperature: o.temperature }),
        ...(o.top_p !== undefined && { topP: o.top_p }),
        ...(o.top_k !== undefined && { topK: o.top_k }),
        ...(o.seed !== undefined && { seed: o.seed }),
        ...(o.stop !== undefined && { stop: Array.isArray(o.stop) ? o.stop : [o.stop] }),
      };

      // A client that goes away cancels generation.
      const controller = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) controller.abort();
      });

      let concepts: Extract<ChatEvent, { type: 'concepts' }> | undefined;
      let end: Extract<ChatEvent, { type: 'end' }> | undefined;
      let failure: Extract<ChatEvent, { type: 'error' }> | undefined;
      const answer: string[] = [];
      const stream = o.stream === true;
      const conceptsPayload = (c: NonNullable<typeof concepts>) => ({
        id,
        model: pool.name,
        decision: c.outcome.decision,
        refused: c.outcome.decision === 'refuse',
        flagged: c.outcome.flagged,
        concepts: conceptsView(c.levelProbs, c.typeProbs),
        applied: appliedView(c.applied, intervened),
        hint: c.hint,
      });
      const onEvent = (event: ChatEvent) => {
        if (event.type === 'concepts') {
          concepts = event;
          if (stream) {
            reply.hijack();
            reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': request.id });
            sse(reply, 'concepts', conceptsPayload(event));
          }
        } else if (event.type === 'token') {
          answer.push(event.delta);
          if (stream && event.delta) sse(reply, 'delta', { text: event.delta });
        } else if (event.type === 'end') {
          end = event;
          answer.push(event.tail);
          if (stream && event.tail) sse(reply, 'delta', { text: event.tail });
        } else if (event.type === 'error') {
          failure = event;
        }
      };
      const result = await pool.chat({ image: input.image, prompt: input.prompt, intervene, policy, generation }, onEvent, controller.signal);

      if (failure && !concepts) throw ApiError.from(failure);
      if (!concepts) throw apiError(HttpErrorCodes.INTERNAL, 'the inference worker returned no concepts');
      const refusedByMessage = concepts.outcome.decision === 'refuse' && policy.refusal.mode === 'message' && !end;
      const text = refusedByMessage ? policy.refusal.message : answer.join('');
      const completion = end?.completionTokens ?? 0;
      const final = {
        ...conceptsPayload(concepts),
        answer: text,
        finish_reason: refusedByMessage ? 'refused' : result.cancelled ? 'cancelled' : (end?.finishReason ?? 'error'),
        usage: { prompt_tokens: end?.promptTokens ?? 0, completion_tokens: completion },
        timings: {
          total_ms: performance.now() - started,
          preprocess_ms: result.preprocessMs,
          pass1_ms: result.pass1Ms,
          pass2_ms: result.pass2Ms,
          tokens_per_second: result.pass2Ms > 0 ? completion / (result.pass2Ms / 1000) : 0,
        },
      };
      app.metrics.pass1Seconds.observe(result.pass1Ms / 1000);
      app.metrics.batchSize.observe(1);
      app.metrics.decisions.inc({ type: final.applied.type, level: final.applied.level, decision: final.decision });
      if (end) {
        app.metrics.pass2Seconds.observe(result.pass2Ms / 1000);
        if (final.timings.tokens_per_second > 0) app.metrics.tokensPerSecond.observe(final.timings.tokens_per_second);
      }
      if (result.cancelled) request.log.info({ id, completion }, 'chat cancelled by the client');
      if (stream) {
        if (refusedByMessage) sse(reply, 'delta', { text });
        if (failure) sse(reply, 'error', { error: { code: failure.code, message: failure.message }, request_id: request.id });
        else sse(reply, 'done', { finish_reason: final.finish_reason, usage: final.usage, timings: final.timings, refused: final.refused });
        reply.raw.end();
        return reply;
      }
      if (failure) throw ApiError.from(failure);
      return final;
    },
  );
}

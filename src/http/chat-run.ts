import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../config.ts';
import type { ChatEvent } from '../inference/protocol.ts';
import type { InferencePool } from '../inference/pool.ts';
import { PsaErrorCodes } from '../psa/errors.ts';
import type { ChatInput } from './chat-input.ts';
import { appliedView, conceptsView, resolveIntervention } from './concepts-view.ts';
import { ApiError, apiError, HttpErrorCodes } from './errors.ts';
import { mirrorChat } from '../shadow/mirror.ts';

/** What pass 1 and the policy said, as the chat routes show it. */
export interface ChatConceptsView {
  id: string;
  model: string;
  decision: string;
  refused: boolean;
  /** False for a text-only request: pass 1 saw the stand-in image. */
  has_image: boolean;
  flagged: boolean;
  concepts: ReturnType<typeof conceptsView>;
  applied: ReturnType<typeof appliedView>;
  hint: string | null;
}

/** Where a route wants the answer as it is made (streaming); both callbacks are optional. */
export interface ChatSink {
  concepts?(view: ChatConceptsView): void;
  delta?(text: string): void;
}

export interface ChatOutcome extends ChatConceptsView {
  answer: string;
  /** The model wrote nothing: the policy refused with its message (refusal.mode "message"). */
  refusedByMessage: boolean;
  finishReason: 'eos' | 'length' | 'stop' | 'context' | 'refused' | 'cancelled' | 'error';
  usage: { prompt_tokens: number; completion_tokens: number };
  timings: { total_ms: number; preprocess_ms: number; pass1_ms: number; pass2_ms: number; tokens_per_second: number };
  /** A coded failure after pass 1 (the concepts are known); failures before it are thrown. */
  failure?: { code: string; message: string };
}

export interface ChatRun {
  pool: InferencePool;
  input: ChatInput;
  /** Prefix of the answer's id ("chat-", "chatcmpl-"). */
  idPrefix: string;
  sink?: ChatSink;
}

/**
 * Pass 1, the policy and pass 2 for one chat request: the one chat path behind /v1/chat and
 * /v1/chat/completions. A client that goes away (the reply's socket closes) cancels generation.
 */
export async function runChat(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun): Promise<ChatOutcome> {
  const { pool, input, sink = {} } = run;
  const started = performance.now();
  const o = input.options;
  if (input.prompt.length > config.MAX_PROMPT_CHARS) throw apiError(HttpErrorCodes.BAD_REQUEST, `the prompt has ${input.prompt.length} characters; at most ${config.MAX_PROMPT_CHARS}`);
  if (o.max_tokens !== undefined && o.max_tokens > config.MAX_NEW_TOKENS) {
    throw new ApiError(PsaErrorCodes.INVALID_GENERATION_OPTION, `max_tokens is at most ${config.MAX_NEW_TOKENS} on this server`, { field: 'max_tokens' });
  }
  const policy = await app.policies.resolve(input.policy);
  const intervene = resolveIntervention(input.intervene);
  const intervened = intervene.level !== undefined || intervene.type !== undefined;
  const id = `${run.idPrefix}${randomUUID()}`;
  const generation = {
    maxNewTokens: Math.min(o.max_tokens ?? pool.pkg.manifest.generation.max_new_tokens, config.MAX_NEW_TOKENS),
    ...(o.temperature !== undefined && { temperature: o.temperature }),
    ...(o.top_p !== undefined && { topP: o.top_p }),
    ...(o.top_k !== undefined && { topK: o.top_k }),
    ...(o.seed !== undefined && { seed: o.seed }),
    ...(o.stop !== undefined && { stop: Array.isArray(o.stop) ? o.stop : [o.stop] }),
  };

  const controller = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });

  let view: ChatConceptsView | undefined;
  let end: Extract<ChatEvent, { type: 'end' }> | undefined;
  let failure: Extract<ChatEvent, { type: 'error' }> | undefined;
  const answer: string[] = [];
  let generated = 0;
  const onEvent = (event: ChatEvent) => {
    if (event.type === 'concepts') {
      view = {
        id,
        model: pool.name,
        decision: event.outcome.decision,
        refused: event.outcome.decision === 'refuse',
        has_image: input.image !== null,
        flagged: event.outcome.flagged,
        concepts: conceptsView(event.levelProbs, event.typeProbs),
        applied: appliedView(event.applied, intervened),
        hint: event.hint,
      };
      sink.concepts?.(view);
    } else if (event.type === 'token') {
      generated++;
      answer.push(event.delta);
      if (event.delta) sink.delta?.(event.delta);
    } else if (event.type === 'end') {
      end = event;
      answer.push(event.tail);
      if (event.tail) sink.delta?.(event.tail);
    } else if (event.type === 'error') {
      failure = event;
    }
  };
  const result = await pool.chat({ image: input.image, prompt: input.prompt, intervene, policy, generation }, onEvent, controller.signal);

  if (failure && !view) throw ApiError.from(failure);
  if (!view) throw apiError(HttpErrorCodes.INTERNAL, 'the inference worker returned no concepts');
  const refusedByMessage = view.decision === 'refuse' && policy.refusal.mode === 'message' && !end;
  const completion = end?.completionTokens ?? 0;
  const outcome: ChatOutcome = {
    ...view,
    answer: refusedByMessage ? policy.refusal.message : answer.join(''),
    refusedByMessage,
    finishReason: refusedByMessage ? 'refused' : result.cancelled ? 'cancelled' : (end?.finishReason ?? 'error'),
    usage: { prompt_tokens: end?.promptTokens ?? 0, completion_tokens: completion },
    timings: {
      total_ms: performance.now() - started,
      preprocess_ms: result.preprocessMs,
      pass1_ms: result.pass1Ms,
      pass2_ms: result.pass2Ms,
      tokens_per_second: result.pass2Ms > 0 ? completion / (result.pass2Ms / 1000) : 0,
    },
    ...(failure && { failure: { code: failure.code, message: failure.message } }),
  };
  app.metrics.pass1Seconds.observe(result.pass1Ms / 1000);
  app.metrics.batchSize.observe(1);
  app.metrics.decisions.inc({ type: view.applied.type, level: view.applied.level, decision: view.decision });
  if (end) {
    app.metrics.pass2Seconds.observe(result.pass2Ms / 1000);
    if (outcome.timings.tokens_per_second > 0) app.metrics.tokensPerSecond.observe(outcome.timings.tokens_per_second);
  }
  mirrorChat(app.models.shadow, reply, pool, { image: input.image, prompt: input.prompt }, { view, policy, intervene, ms: result.preprocessMs + result.pass1Ms });
  // A cancelled generation has no end event: count the tokens it made.
  if (result.cancelled) reply.request.log.info({ id, completion: end?.completionTokens ?? generated }, 'chat cancelled by the client');
  return outcome;
}

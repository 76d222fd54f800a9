import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../config.ts';
import type { ChatEvent } from '../inference/protocol.ts';
import type { InferencePool } from '../inference/pool.ts';
import { resolveGeneration } from '../psa/generation-options.ts';
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
}

/** A chat past pass 1: what the policy said, the answer's text as it is made, and the outcome after it. */
export interface ChatStream {
  view: ChatConceptsView;
  /** Pieces of the answer in order; ends when generation does. */
  deltas: AsyncIterable<string>;
  /** Settles after the last delta. */
  outcome: Promise<ChatOutcome>;
}

/** The whole answer at once. */
export async function completeChat(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun): Promise<ChatOutcome> {
  const { outcome } = await startChat(app, config, reply, run, () => {});
  return outcome;
}

/**
 * The answer as it is made. Failures before pass 1 has judged the request reject here, so the
 * caller can still answer them as plain HTTP errors; later ones are the outcome's `failure`.
 */
export async function streamChat(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun): Promise<ChatStream> {
  const deltas = new PassThrough({ objectMode: true });
  const started = await startChat(app, config, reply, run, (text) => deltas.write(text));
  const outcome = started.outcome.finally(() => deltas.end());
  // The caller reads the deltas first and awaits the outcome after them.
  outcome.catch(() => {});
  return { view: started.view, deltas, outcome };
}

/**
 * Pass 1, the policy and pass 2 for one chat request: the one chat path behind /v1/chat and
 * /v1/chat/completions. Resolves when pass 1 has judged the request; the outcome follows
 * generation. A client that goes away (the reply's socket closes) cancels generation.
 */
async function startChat(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun, onDelta: (text: string) => void): Promise<{ view: ChatConceptsView; outcome: Promise<ChatOutcome> }> {
  const { pool, input } = run;
  const started = performance.now();
  if (input.prompt.length > config.MAX_PROMPT_CHARS) throw apiError(HttpErrorCodes.BAD_REQUEST, `the prompt has ${input.prompt.length} characters; at most ${config.MAX_PROMPT_CHARS}`);
  const generation = resolveGeneration(input.options, pool.pkg.manifest.generation, { maxNewTokens: config.MAX_NEW_TOKENS });
  const policy = await app.policies.resolve(input.policy);
  const intervene = resolveIntervention(input.intervene);
  const intervened = intervene.level !== undefined || intervene.type !== undefined;
  const id = `${run.idPrefix}${randomUUID()}`;

  const controller = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });

  let view: ChatConceptsView | undefined;
  let judged: (view: ChatConceptsView) => void = () => {};
  const concepts = new Promise<ChatConceptsView>((resolve) => (judged = resolve));
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
      judged(view);
    } else if (event.type === 'token') {
      generated++;
      answer.push(event.delta);
      if (event.delta) onDelta(event.delta);
    } else if (event.type === 'end') {
      end = event;
      answer.push(event.tail);
      if (event.tail) onDelta(event.tail);
    } else if (event.type === 'error') {
      failure = event;
    }
  };

  // The pool is chosen and given the work with no await between, so a reload cannot close it in the
  // meantime; one that replaced it serves the same package, so the view's model name holds.
  const live = app.models.current(pool);
  const outcome = live.chat({ image: input.image, prompt: input.prompt, intervene, policy, generation }, onEvent, controller.signal).then((result): ChatOutcome => {
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
  });
  // Whichever comes first: the concepts, or the end of a chat that failed before them.
  return { view: await Promise.race([concepts, outcome.then(() => concepts)]), outcome };
}

import type { ChatConceptsView, ChatOutcome } from '../http/chat-run.ts';

type Finish = 'stop' | 'length' | 'content_filter';

/**
 * OpenAI's finish_reason: "content_filter" when the policy refused with its message (nothing was
 * generated); "length" when max_tokens or the context ran out; "stop" otherwise, a refusal the
 * model wrote included.
 */
export function finishReason(outcome: ChatOutcome): Finish {
  if (outcome.refusedByMessage) return 'content_filter';
  if (outcome.finishReason === 'length' || outcome.finishReason === 'context') return 'length';
  return 'stop';
}

export function psaView(view: ChatConceptsView, timings?: ChatOutcome['timings']) {
  return { concepts: view.concepts, applied: view.applied, decision: view.decision, refused: view.refused, flagged: view.flagged, hint: view.hint, ...(timings && { timings }) };
}

const usageOf = (o: ChatOutcome) => ({ ...o.usage, total_tokens: o.usage.prompt_tokens + o.usage.completion_tokens });

/** The chat.completion object; a refused answer is `message.refusal`, with `content` null. */
export function completion(outcome: ChatOutcome, created: number) {
  return {
    id: outcome.id,
    object: 'chat.completion' as const,
    created,
    model: outcome.model,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content: outcome.refused ? null : outcome.answer, refusal: outcome.refused ? outcome.answer : null },
        logprobs: null,
        finish_reason: finishReason(outcome),
      },
    ],
    usage: usageOf(outcome),
    psa: psaView(outcome, outcome.timings),
  };
}

/** Builds the chat.completion.chunk objects of one stream. */
export class ChunkWriter {
  constructor(
    private readonly view: ChatConceptsView,
    private readonly created: number,
    private readonly includeUsage: boolean,
  ) {}

  private chunk(delta: object, finish: Finish | null, extra: object = {}) {
    return {
      id: this.view.id,
      object: 'chat.completion.chunk' as const,
      created: this.created,
      model: this.view.model,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(this.includeUsage && { usage: null }),
      ...extra,
    };
  }

  /** The first chunk: the role, an empty answer (or refusal) and the psa object. */
  first() {
    return this.chunk({ role: 'assistant', ...(this.view.refused ? { content: null, refusal: '' } : { content: '' }) }, null, { psa: psaView(this.view) });
  }

  delta(text: string) {
    return this.chunk(this.view.refused ? { refusal: text } : { content: text }, null);
  }

  /** The last chunk with choices: finish_reason, and the psa object with timings. */
  finish(outcome: ChatOutcome) {
    return this.chunk({}, finishReason(outcome), { psa: psaView(outcome, outcome.timings) });
  }

  /** With stream_options.include_usage: a chunk without choices that carries usage. */
  usage(outcome: ChatOutcome) {
    return { ...this.chunk({}, null), choices: [], usage: usageOf(outcome) };
  }
}

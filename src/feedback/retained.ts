/** What the inference routes hand to request retention: their inputs and the model's judgement. */
import type { ChatInput } from '../http/chat-input.ts';
import type { ChatConceptsView } from '../http/chat-run.ts';
import type { ModerationOutcome, ModerationRequest } from '../http/moderation.ts';
import type { RetainedRequest, RetainedRoute } from './retention.ts';

export function retainedModeration(route: RetainedRoute, input: ModerationRequest, outcome: ModerationOutcome): RetainedRequest {
  return {
    route,
    model: outcome.model,
    at: Date.now(),
    items: outcome.items.map(({ view }, i) => ({
      image: input.items[i]!.image,
      prompt: input.items[i]!.prompt,
      judgement: { level: view.concepts.level.label, type: view.concepts.type.label, decision: view.decision, flagged: view.flagged },
    })),
  };
}

export function retainedChat(route: RetainedRoute, input: ChatInput, outcome: ChatConceptsView & { answer: string }): RetainedRequest {
  return {
    route,
    model: outcome.model,
    at: Date.now(),
    items: [{ image: input.image, prompt: input.prompt, judgement: { level: outcome.concepts.level.label, type: outcome.concepts.type.label, decision: outcome.decision, flagged: outcome.flagged } }],
    answer: { text: outcome.answer, refused: outcome.refused },
  };
}

import type { FastifyReply } from 'fastify';
import type { ChatConceptsView } from '../http/chat-run.ts';
import { resolveIntervention } from '../http/concepts-view.ts';
import type { ModerationOutcome, ModerationRequest } from '../http/moderation.ts';
import type { InferencePool } from '../inference/pool.ts';
import type { Decision, Policy } from '../policy/policy.ts';
import type { ShadowRun } from './run.ts';

/**
 * Hands a moderation request's items and live answers to the shadow run, if one is running
 * against `pool`; the candidate scores them after the response has been sent.
 */
export function mirrorModeration(run: ShadowRun | undefined, reply: FastifyReply, pool: InferencePool, input: ModerationRequest, outcome: ModerationOutcome): void {
  if (!run?.running) return;
  const ms = outcome.timings.preprocess_ms + outcome.timings.pass1_ms;
  run.mirror(reply, pool, {
    items: input.items,
    live: outcome.items.map(({ view }) => ({ decision: view.decision as Decision, flagged: view.flagged, type: view.concepts.type.index, ms })),
    policy: outcome.policy,
    intervene: resolveIntervention(input.intervene),
  });
}

/** The same for pass 1 of a chat request (the candidate runs pass 1 only). */
export function mirrorChat(
  run: ShadowRun | undefined,
  reply: FastifyReply,
  pool: InferencePool,
  item: { image: Buffer | null; prompt: string },
  live: { view: ChatConceptsView; policy: Policy; intervene: { level?: number; type?: number }; ms: number },
): void {
  if (!run?.running) return;
  const { view } = live;
  run.mirror(reply, pool, {
    items: [item],
    live: [{ decision: view.decision as Decision, flagged: view.flagged, type: view.concepts.type.index, ms: live.ms }],
    policy: live.policy,
    intervene: live.intervene,
  });
}

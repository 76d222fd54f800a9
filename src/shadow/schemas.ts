import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DECISIONS } from '../policy/policy.ts';
import { END_REASONS } from './run.ts';
import { SHED_REASONS } from './queue.ts';
import { LATENCY_WINDOW } from './stats.ts';

export const ShadowBody = Type.Object(
  {
    share: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Share of live items (of /v1/moderate, /v1/moderations and pass 1 of chat) the candidate also scores; the server default is SHADOW_SHARE' }),
    ),
    max_items: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'End the run once this many items were compared (or failed)' })),
    max_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86_400, description: 'End the run after this many seconds' })),
  },
  { additionalProperties: false },
);
export type ShadowBody = Static<typeof ShadowBody>;

const literals = (values: readonly string[]) => Type.Union(values.map((v) => Type.Literal(v)));
const nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Ratio = nullable(Type.Number({ minimum: 0, maximum: 1 }));
const Count = Type.Integer({ minimum: 0 });
const Row = Type.Object(Object.fromEntries(DECISIONS.map((d) => [d, Count])));
const Percentiles = Type.Object({ p50: nullable(Type.Number()), p95: nullable(Type.Number()) });
const Side = Type.Object({ id: Type.String(), name: Type.String() });

export const ShadowReportSchema = Type.Object({
  model: Type.String({ description: 'The candidate package id' }),
  candidate: Side,
  live: Side,
  state: literals(['running', 'ended']),
  ended_reason: Type.Union([literals(END_REASONS), Type.Null()], {
    description:
      'stopped (DELETE), max_items, max_seconds, activated (the candidate was activated), live_changed (another package was activated), candidate_changed (the candidate was recalibrated: its pool still had the old temperature), shutdown',
  }),
  share: Type.Number(),
  limits: Type.Object({ max_items: nullable(Type.Integer()), max_seconds: nullable(Type.Integer()) }),
  started_at: Type.String({ format: 'date-time' }),
  ended_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  sampled: Type.Integer({ description: 'Live items drawn for mirroring: compared + failed + shed + queued + in_flight + dropped_at_end' }),
  queued: Count,
  in_flight: Count,
  dropped_at_end: Count,
  compared: Type.Integer({ description: 'Items scored by both models' }),
  shed: Type.Integer({ description: 'Items dropped instead of scored (never waited for)' }),
  shed_by_reason: Type.Object(Object.fromEntries(SHED_REASONS.map((r) => [r, Count])), {
    description: 'queue_full: over SHADOW_MAX_QUEUE; live_busy: live work was waiting for a worker when its turn came; candidate_busy: the candidate pool refused it',
  }),
  failed: Count,
  failures: Type.Record(Type.String(), Count, { description: 'Failed items by error code' }),
  agreement: Type.Object(
    { decision: Ratio, type: Ratio, flagged: Ratio },
    { description: 'Share of compared items where both models give the same decision, the same predicted type, the same flag (null before the first)' },
  ),
  flag_rate: Type.Object({ live: Ratio, candidate: Ratio }),
  decision_matrix: Type.Object(Object.fromEntries(DECISIONS.map((d) => [d, Row])), { description: 'Rows: the live decision; columns: the candidate decision; counts of compared items' }),
  latency_ms: Type.Object({ live: Percentiles, candidate: Percentiles }, { description: `Worker time (preprocessing + pass 1) of the batch that carried each compared item, over the last ${LATENCY_WINDOW} items` }),
});

import { Gauge, type Registry } from 'prom-client';
import { DECISIONS } from '../policy/policy.ts';
import { SHED_REASONS } from './queue.ts';
import type { ShadowReport, ShadowRun } from './run.ts';

/**
 * The shadow run's figures in /metrics, read from the run when scraped (the same numbers as
 * GET /v1/models/{id}/shadow); absent while there is none. Labelled by candidate package.
 */
export function registerShadowMetrics(registry: Registry, current: () => ShadowRun | undefined): void {
  const gauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (g: Gauge<L | 'candidate'>, r: ShadowReport, candidate: string) => void) =>
    new Gauge<L | 'candidate'>({
      name,
      help,
      labelNames: ['candidate', ...labelNames],
      registers: [registry],
      collect() {
        this.reset();
        const run = current();
        if (run) fill(this, run.report(), run.candidateId);
      },
    });
  gauge<never>('psa_shadow_running', 'A shadow run is running (1) or ended and kept for reading (0)', [], (g, r, candidate) => g.set({ candidate }, r.state === 'running' ? 1 : 0));
  gauge('psa_shadow_items', 'Mirrored items of the shadow run by outcome: compared, failed, shed (with its reason), queued, in_flight', ['outcome'], (g, r, candidate) => {
    for (const outcome of ['compared', 'failed', 'queued', 'in_flight'] as const) g.set({ candidate, outcome }, r[outcome]);
    for (const reason of SHED_REASONS) g.set({ candidate, outcome: `shed_${reason}` }, r.shed_by_reason[reason]);
  });
  gauge('psa_shadow_agreement_ratio', 'Share of compared items where live and candidate agree, on the decision, the predicted type or the flag', ['on'], (g, r, candidate) => {
    for (const on of ['decision', 'type', 'flagged'] as const) if (r.agreement[on] !== null) g.set({ candidate, on }, r.agreement[on]);
  });
  gauge('psa_shadow_flag_rate', 'Share of compared items flagged, by the live model and by the candidate', ['model'], (g, r, candidate) => {
    for (const model of ['live', 'candidate'] as const) if (r.flag_rate[model] !== null) g.set({ candidate, model }, r.flag_rate[model]);
  });
  gauge('psa_shadow_decisions', 'Compared items by live decision and candidate decision (the disagreement matrix)', ['live_decision', 'candidate_decision'], (g, r, candidate) => {
    for (const live of DECISIONS) for (const cand of DECISIONS) g.set({ candidate, live_decision: live, candidate_decision: cand }, r.decision_matrix[live][cand]);
  });
  gauge('psa_shadow_latency_seconds', 'Worker time (preprocessing + pass 1) of compared items, p50 and p95, live and candidate', ['model', 'quantile'], (g, r, candidate) => {
    for (const model of ['live', 'candidate'] as const) {
      const { p50, p95 } = r.latency_ms[model];
      if (p50 !== null) g.set({ candidate, model, quantile: '0.5' }, p50 / 1000);
      if (p95 !== null) g.set({ candidate, model, quantile: '0.95' }, p95 / 1000);
    }
  });
}

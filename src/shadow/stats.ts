import { DECISIONS, type Decision } from '../policy/policy.ts';
import { SHED_REASONS, type ShedReason } from './queue.ts';

/** What one side (live or candidate) said about an item. */
export interface Verdict {
  decision: Decision;
  flagged: boolean;
  /** Predicted type index (argmax of the type probabilities, before any intervention). */
  type: number;
  /** Worker time of the batch that carried the item: preprocessing + pass 1, ms. */
  ms: number;
}

/** Latency percentiles come from this many most recent items per side. */
export const LATENCY_WINDOW = 2048;

/** The last `size` values, for percentiles that follow the current traffic. */
class Window {
  private readonly values: number[] = [];
  private next = 0;
  constructor(private readonly size: number) {}

  push(v: number): void {
    if (this.values.length < this.size) this.values.push(v);
    else this.values[this.next] = v;
    this.next = (this.next + 1) % this.size;
  }

  /** Nearest-rank percentiles, null while empty. */
  percentiles(): { p50: number | null; p95: number | null } {
    if (this.values.length === 0) return { p50: null, p95: null };
    const sorted = [...this.values].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
    return { p50: at(0.5), p95: at(0.95) };
  }
}

const decisionRow = () => Object.fromEntries(DECISIONS.map((d) => [d, 0])) as Record<Decision, number>;
const ratio = (n: number, of: number) => (of === 0 ? null : n / of);

/** Running comparison of a candidate with the live model over mirrored items. */
export class ShadowStats {
  compared = 0;
  failed = 0;
  private agreeDecision = 0;
  private agreeType = 0;
  private agreeFlag = 0;
  private flaggedLive = 0;
  private flaggedCandidate = 0;
  private readonly matrix = Object.fromEntries(DECISIONS.map((d) => [d, decisionRow()])) as Record<Decision, Record<Decision, number>>;
  private readonly shedBy = Object.fromEntries(SHED_REASONS.map((r) => [r, 0])) as Record<ShedReason, number>;
  private readonly failures = new Map<string, number>();
  private readonly latency = { live: new Window(LATENCY_WINDOW), candidate: new Window(LATENCY_WINDOW) };

  compare(live: Verdict, candidate: Verdict): void {
    this.compared++;
    if (live.decision === candidate.decision) this.agreeDecision++;
    if (live.type === candidate.type) this.agreeType++;
    if (live.flagged === candidate.flagged) this.agreeFlag++;
    if (live.flagged) this.flaggedLive++;
    if (candidate.flagged) this.flaggedCandidate++;
    this.matrix[live.decision][candidate.decision]++;
    this.latency.live.push(live.ms);
    this.latency.candidate.push(candidate.ms);
  }

  shed(count: number, reason: ShedReason): void {
    this.shedBy[reason] += count;
  }

  fail(code: string, count = 1): void {
    this.failed += count;
    this.failures.set(code, (this.failures.get(code) ?? 0) + count);
  }

  get shedTotal(): number {
    return SHED_REASONS.reduce((sum, r) => sum + this.shedBy[r], 0);
  }

  /** The figures GET /v1/models/{id}/shadow and /metrics show. */
  snapshot() {
    const n = this.compared;
    return {
      compared: n,
      shed: this.shedTotal,
      shed_by_reason: { ...this.shedBy },
      failed: this.failed,
      failures: Object.fromEntries(this.failures),
      agreement: { decision: ratio(this.agreeDecision, n), type: ratio(this.agreeType, n), flagged: ratio(this.agreeFlag, n) },
      flag_rate: { live: ratio(this.flaggedLive, n), candidate: ratio(this.flaggedCandidate, n) },
      decision_matrix: structuredClone(this.matrix),
      latency_ms: { live: this.latency.live.percentiles(), candidate: this.latency.candidate.percentiles() },
    };
  }
}

export type ShadowSnapshot = ReturnType<ShadowStats['snapshot']>;

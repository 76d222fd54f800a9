/** The service benchmark's result file and its Markdown tables. */
export const STAGE_COLUMNS = ['parse', 'queue', 'decode', 'ocr_detect', 'ocr_recognize', 'query', 'vision', 'head', 'policy', 'serialize'] as const;

export interface ServiceCell {
  kind: string;
  transport: string;
  concurrency: number;
  answered: number;
  accepted: number;
  refused: number;
  elapsed_s: number;
  items_per_s: number;
  /** Latency of accepted requests. */
  p50_ms: number;
  p99_ms: number;
  /** Latency of refused ones (how fast a 503 comes back). */
  refused_p50_ms: number | null;
  refusal_rate: number;
  /** Requests abandoned after the client's timeout (--request-timeout): a stall, not a slow answer. */
  timed_out?: number;
  /** Mean milliseconds per item by stage, from the server's psa_stage_seconds. */
  stages_ms: Record<string, number>;
  in_process?: { items_per_s: number; p50_ms: number; p99_ms: number; ratio: number };
}

export interface BenchResult {
  created_at: string;
  machine: { cpus: string; cores: number; memory_gib: number; node: string; load_before: number[]; load_after: number[]; note: string };
  settings: Record<string, unknown>;
  cells: ServiceCell[];
  memory: { peak_rss_mib: number; leak_check?: { n: number; rss_after_n_mib: number; rss_after_10n_mib: number; growth: number } };
}

const f = (x: number | null | undefined, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
const key = (c: ServiceCell) => `${c.kind}/${c.transport}/${c.concurrency}`;

export function markdown(r: BenchResult, baseline?: BenchResult): string {
  const old = new Map((baseline?.cells ?? []).map((c) => [key(c), c]));
  const head = ['kind', 'transport', 'clients', 'items/s', 'p50 ms', 'p99 ms', 'refused', '503 p50 ms', 'timed out', 'in-process items/s', 'service / in-process'];
  if (baseline) head.push(`baseline items/s (${baseline.created_at.slice(0, 10)})`, 'baseline p50 ms', 'baseline p99 ms');
  const rows = r.cells.map((c) => {
    const row = [
      c.kind,
      c.transport,
      String(c.concurrency),
      f(c.items_per_s, 2),
      f(c.p50_ms, 0),
      f(c.p99_ms, 0),
      `${(c.refusal_rate * 100).toFixed(0)}%`,
      f(c.refused_p50_ms, 0),
      c.timed_out === undefined ? '-' : String(c.timed_out),
      f(c.in_process?.items_per_s, 2),
      f(c.in_process?.ratio, 2),
    ];
    if (baseline) {
      const b = old.get(key(c));
      row.push(f(b?.items_per_s, 2), f(b?.p50_ms, 0), f(b?.p99_ms, 0));
    }
    return row;
  });
  const table = (h: string[], body: string[][]) => [`| ${h.join(' | ')} |`, `| ${h.map(() => '---').join(' | ')} |`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
  const stages = table(
    ['kind', 'transport', 'clients', ...STAGE_COLUMNS],
    r.cells.map((c) => [c.kind, c.transport, String(c.concurrency), ...STAGE_COLUMNS.map((s) => f(c.stages_ms[s]))]),
  );
  const m = r.memory;
  const leak = m.leak_check
    ? `; RSS after ${m.leak_check.n} requests ${f(m.leak_check.rss_after_n_mib, 0)} MiB, after ${m.leak_check.n * 10} ${f(m.leak_check.rss_after_10n_mib, 0)} MiB (${(m.leak_check.growth * 100).toFixed(1)}%)`
    : '';
  const mc = r.machine;
  return [
    `Service benchmark, ${r.created_at} on ${mc.cores} x ${mc.cpus}, ${mc.memory_gib} GiB, Node ${mc.node}; load average ${mc.load_before.map((x) => x.toFixed(2)).join(' ')} before, ${mc.load_after.map((x) => x.toFixed(2)).join(' ')} after${mc.note ? `; ${mc.note}` : ''}`,
    `Settings: ${Object.entries(r.settings)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ')}`,
    '',
    table(head, rows),
    '',
    'items/s and p50/p99 count accepted requests; refused is the share of answers that were 503 (a refused client waits Retry-After, capped, before its next request); 503 p50 is how fast a refusal came back; timed out counts requests left unanswered after --request-timeout seconds (a stall; they are not in p50/p99).',
    '',
    'Milliseconds per item by stage (worker stages per batch divided by its items; queue per item; parse, policy, serialize per request):',
    '',
    stages,
    '',
    `Server peak RSS ${f(m.peak_rss_mib, 0)} MiB${leak}.`,
  ].join('\n');
}

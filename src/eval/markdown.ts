/** report.md: the report's numbers as tables a person reads, model and baselines side by side. */
import { DECISIONS } from '../policy/policy.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../psa/taxonomy.ts';
import type { ClassScore } from './metrics.ts';
import { SYSTEM_KEYS, type EvalReport } from './report.ts';
import type { SystemMetrics } from './score.ts';
import { markdownSets } from './markdown-sets.ts';
import { markdownReliability } from './reliability.ts';

const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${(100 * v).toFixed(1)}%`);
const dec = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(3));
const ms = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${v.toFixed(1)} ms`);
const cell = (s: string) => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\s+/g, ' ');

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function confusionTable(matrix: number[][], labels: readonly string[]): string {
  return table(
    ['expected \\ predicted', ...labels, 'total'],
    matrix.map((row, r) => [`**${labels[r]}**`, ...row.map((n, c) => (r === c ? `**${n}**` : String(n))), String(row.reduce((a, b) => a + b, 0))]),
  );
}

const SUMMARY_ROWS: [string, (m: SystemMetrics) => string][] = [
  ['type macro-F1 (7 types, safe included)', (m) => dec(m.type.macro_f1)],
  ['risk-type macro-F1 (6 types, safe left out)', (m) => dec(m.type.risk_macro_f1)],
  ['type accuracy (all items)', (m) => pct(m.type.accuracy)],
  ['type accuracy on unsafe items', (m) => pct(m.type.accuracy_on_unsafe)],
  ['level accuracy', (m) => pct(m.level.accuracy)],
  ['level macro-F1', (m) => dec(m.level.macro_f1)],
  ['flagged recall on unsafe items', (m) => pct(m.flagged.recall_on_unsafe)],
  ['flagged recall on items at or above the flag level', (m) => `${pct(m.flagged.recall_at_flag_level)} (${m.flagged.flag_min_level})`],
  ['flagged rate on safe items', (m) => pct(m.flagged.rate_on_safe)],
  ['over-refusal on safe items (caution or refuse)', (m) => pct(m.over_refusal_rate_on_safe)],
  ['refusal on safe items (refuse)', (m) => pct(m.refusal_rate_on_safe)],
  ['decision accuracy', (m) => (m.decision === null ? 'n/a (no expected decisions)' : `${pct(m.decision.accuracy)} of ${m.decision.items}`)],
  ['latency p50 / p90 / p99', (m) => (m.latency === null ? 'n/a' : `${ms(m.latency.p50_ms)} / ${ms(m.latency.p90_ms)} / ${ms(m.latency.p99_ms)}`)],
  ['latency mean', (m) => ms(m.latency?.mean_ms)],
];

export function markdownReport(r: EvalReport): string {
  const systems = SYSTEM_KEYS.map((k) => r.systems[k]);
  const names = systems.map((s) => s.name);
  const d = r.dataset;
  const out: string[] = [];
  out.push(`# Evaluation of ${r.model.name}`, '');
  out.push(
    table(
      ['', ''],
      [
        ['model', `${cell(r.model.name)}, version ${cell(r.model.version)}${r.model.status ? ` (${cell(r.model.status)})` : ''}, \`${cell(r.model.dir)}\`, ${r.model.provider}`],
        ['data', `\`${cell(d.path)}\`: ${d.items} items, ${d.unsafe_items} unsafe and ${d.safe_items} safe; ${d.with_decision} with an expected decision, ${d.with_ocr_text} with ocr_text`],
        ['types', TYPE_LABELS.map((t) => `${t} ${d.by_type[t]}`).join(', ')],
        ['levels', LEVEL_LABELS.map((l) => `${l} ${d.by_level[l]}`).join(', ')],
        ['policy', `${r.policy.file === null ? 'built-in' : `\`${cell(r.policy.file)}\``}; flagged when P(level >= ${r.policy.flag.min_level}) >= ${r.policy.flag.threshold} or the decision is refuse`],
        ['run', `${r.created_at}; latency covers ${cell(r.latency_scope)}`],
      ],
    ),
    '',
  );
  out.push('## Model vs baselines', '');
  out.push(systems.map((s) => `- **${cell(s.name)}**: ${cell(s.description)}`).join('\n'), '');
  out.push(
    table(
      ['metric', ...names],
      SUMMARY_ROWS.map(([label, f]) => [label, ...systems.map((s) => f(s.metrics))]),
    ),
    '',
  );
  const p1 = r.pass1_latency.summary;
  out.push(`Pass 1 alone (model): ${p1 === null ? 'n/a' : `p50 ${ms(p1.p50_ms)}, p90 ${ms(p1.p90_ms)}, mean ${ms(p1.mean_ms)} over ${p1.count} items`}; ${cell(r.pass1_latency.scope)}.`, '');
  out.push(...markdownSets(r.sets, r.policy.flag.min_level));

  out.push('## Per-type precision / recall / F1', '', 'n/a: no item expected (recall) or predicted (precision) with that type.', '');
  const prf = (s: ClassScore) => [pct(s.precision), pct(s.recall), dec(s.f1)];
  out.push(
    table(
      ['type', 'support', ...names.flatMap((n) => [`${n} P`, `${n} R`, `${n} F1`])],
      TYPE_LABELS.map((t, i) => [t, String(systems[0]!.metrics.type.per_type[i]!.support), ...systems.flatMap((s) => prf(s.metrics.type.per_type[i]!))]),
    ),
    '',
  );

  out.push('## Flagged recall by expected level', '');
  out.push(
    table(
      ['expected level', ...names],
      LEVEL_LABELS.slice(1).map((l) => [l, ...systems.map((s) => pct(s.metrics.flagged.recall_by_level[l]))]),
    ),
    '',
  );
  out.push('## Decisions', '');
  out.push(
    table(
      ['decision', ...names],
      DECISIONS.map((dn) => [dn, ...systems.map((s) => String(s.metrics.decisions[dn]))]),
    ),
    '',
  );

  if (r.calibration) out.push(...markdownReliability(r.calibration));
  const model = r.systems.model.metrics;
  out.push('## Level confusion matrix (model)', '', confusionTable(model.level.confusion, LEVEL_LABELS), '');
  out.push('## Type confusion matrix (model)', '', confusionTable(model.type.confusion, TYPE_LABELS), '');
  if (model.decision !== null) out.push('## Decision confusion matrix (model)', '', confusionTable(model.decision.confusion, DECISIONS), '');

  out.push(`## Worst errors (model, ${r.worst_errors.length} shown)`, '');
  if (r.worst_errors.length === 0) out.push('The model predicted the expected level and type of every item.', '');
  else {
    out.push('Largest level distance first, then a wrong type, then the confidence of the wrong level.', '');
    out.push(
      table(
        ['id', 'line', 'expected level / type', 'predicted level (p) / type (p)', 'decision', 'flagged', 'prompt'],
        r.worst_errors.map((e) => [
          `\`${cell(e.id)}\``,
          String(e.line),
          `${e.expected.level} / ${e.expected.type}`,
          `${e.predicted.level} (${e.predicted.level_prob.toFixed(2)}) / ${e.predicted.type} (${e.predicted.type_prob.toFixed(2)})`,
          e.predicted.decision,
          e.predicted.flagged ? 'yes' : 'no',
          cell(e.prompt),
        ]),
      ),
      '',
    );
  }
  const charts = r.outputs.filter((f) => f.endsWith('.png'));
  if (charts.length > 0) out.push('## Charts', '', ...charts.map((f) => `![${f.replace(/\.png$/, '')}](${f})`), '');
  out.push('Metric definitions: docs/evaluation.md. All numbers: report.json; per-item predictions: predictions.jsonl.', '');
  return out.join('\n');
}

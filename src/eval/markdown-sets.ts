/** report.md's sections on named sets, AUROC comparisons and per-source figures (the model's). */
import type { SetFigures, SetsReport } from './sets.ts';

const pct = (v: number | null) => (v === null ? 'n/a' : `${(100 * v).toFixed(1)}%`);
const dec = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
const cell = (s: string) => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\s+/g, ' ');
const table = (head: string[], rows: string[][]) => [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const SET_HEAD = ['items', 'flagged (of those at the flag level)', 'flagged rate', 'over-refusal on safe', 'type accuracy on unsafe', 'level accuracy', 'AUROC (flag level vs safe)'];
const setRow = (f: SetFigures) => [
  String(f.items),
  `${pct(f.flagged_recall)} (${f.should_flag})`,
  pct(f.flagged_rate),
  `${pct(f.over_refusal)} (${f.safe})`,
  `${pct(f.type_accuracy_on_unsafe)} (${f.unsafe})`,
  pct(f.level_accuracy),
  dec(f.auroc),
];

export function markdownSets(s: SetsReport, flagLevel: string): string[] {
  const out: string[] = [];
  out.push('## AUROC between named sets (model)', '');
  out.push(
    `Score: P(level >= ${flagLevel}) from pass 1; AUROC by the rank statistic (ties count half). Recall and over-refusal are the policy's decisions; "recall at FPR" is the best a threshold on the score gives while flagging at most that share of the negative set. Sets from ${cell(s.from)}.`,
    '',
  );
  out.push(
    table(
      ['comparison', 'positive (n)', 'negative (n)', 'AUROC', 'recall (policy)', 'caution/refuse on negatives', 'flagged on negatives', 'recall at FPR'],
      s.comparisons.map((c) => [
        cell(c.name),
        `${cell(c.positive)} (${c.positives})`,
        `${cell(c.negative)} (${c.negatives})`,
        dec(c.auroc),
        pct(c.recall),
        pct(c.over_refusal_on_negatives),
        pct(c.flagged_rate_on_negatives),
        `${pct(c.recall_at_max_fpr)} at ${pct(c.max_fpr)}`,
      ]),
    ),
    '',
  );
  out.push('## Named sets (model)', '');
  out.push(
    table(
      ['set', ...SET_HEAD],
      Object.entries(s.sets).map(([name, f]) => [cell(name), ...setRow(f)]),
    ),
    '',
  );
  out.push('## Per source (model)', '', 'By the items\' `source` (else the id up to its first "-") and `variant`.', '');
  out.push(
    table(
      ['source', ...SET_HEAD],
      Object.entries(s.per_source).map(([name, f]) => [cell(name), ...setRow(f)]),
    ),
    '',
  );
  return out;
}

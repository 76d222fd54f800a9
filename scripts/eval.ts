/**
 * npm run eval -- --model <package dir> --data <eval set> [--out eval-report] [--policy file.json]
 *
 * Scores a model package and two baselines on a labelled evaluation set (docs/evaluation.md).
 * Exit codes: 0 done, 1 the evaluation failed (bad data, unloadable model), 2 bad arguments.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { formatProblem, isDatasetError } from '../src/datasets/errors.ts';
import { runEvaluation } from '../src/eval/run.ts';
import { SYSTEM_KEYS } from '../src/eval/report.ts';
import type { DeviceSetting } from '../src/psa/onnx-session.ts';
import { Ocr } from '../src/psa/ocr/ocr.ts';
import { ocrTextExtractor } from '../src/eval/ocr-extractor.ts';
import { parseCli } from './lib/cli.ts';

const USAGE = `usage: npm run eval -- --model <package dir> --data <eval set> [options]

  --model DIR       model package to evaluate (a directory with psa.json)
  --data PATH       evaluation set: a directory, or a .tar/.tar.gz/.zip of one, holding
                    eval.jsonl and the images it names (format: docs/evaluation.md)
  --out DIR         where report.json, report.md, predictions.jsonl and the PNG charts go
                    (default: eval-report in the current directory)
  --policy FILE     policy JSON applied over the built-in policy, as the server's POLICY_FILE
  --sets FILE       named sets and AUROC comparisons (docs/evaluation.md); default the data's
                    own eval-sets.json, else unsafe vs safe
  --no-ocr-text     the keyword baseline reads only the prompt, not the items' ocr_text
  --worst N         how many of the model's worst errors report.md lists (default 15)
  --device D        cpu (default), cuda or auto
  --no-charts       write no PNG charts
  --no-ocr          the keyword baseline does not read the images (by default PP-OCRv4 reads
                    each image that carries no ocr_text, as the keyword/OCR baseline)
  -h, --help        this message`;

function usageError(message: string): never {
  process.stderr.write(`eval: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

const args = parseCli(
  USAGE,
  {
    model: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string', default: 'eval-report' },
    policy: { type: 'string' },
    sets: { type: 'string' },
    'no-ocr-text': { type: 'boolean', default: false },
    worst: { type: 'string', default: '15' },
    device: { type: 'string', default: 'cpu' },
    'no-charts': { type: 'boolean', default: false },
    'no-ocr': { type: 'boolean', default: false },
  },
  usageError,
);
if (!args.model) usageError('--model is required');
if (!args.data) usageError('--data is required');
const worst = Number(args.worst);
if (!Number.isInteger(worst) || worst < 0) usageError(`--worst must be a whole number >= 0; got ${JSON.stringify(args.worst)}`);
if (!['cpu', 'cuda', 'auto'].includes(args.device!)) usageError(`--device must be cpu, cuda or auto; got ${JSON.stringify(args.device)}`);
const isDir = (p: string) =>
  stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
if (!(await isDir(args.model))) usageError(`--model ${args.model} is not a directory`);
if (
  !(await stat(args.data).then(
    () => true,
    () => false,
  ))
)
  usageError(`--data ${args.data} does not exist`);
if (
  args.policy &&
  !(await stat(args.policy).then(
    (s) => s.isFile(),
    () => false,
  ))
)
  usageError(`--policy ${args.policy} is not a file`);
if (
  args.sets &&
  !(await stat(args.sets).then(
    (s) => s.isFile(),
    () => false,
  ))
)
  usageError(`--sets ${args.sets} is not a file`);

const log = (msg: string) => process.stderr.write(`[eval] ${msg}\n`);
let nextReport = 0;
const ocr = args['no-ocr'] ? null : await Ocr.load({ device: args.device as DeviceSetting });
try {
  const started = Date.now();
  const { report, dir } = await runEvaluation({
    model: args.model,
    data: args.data,
    out: args.out!,
    ...(args.policy ? { policyFile: args.policy } : {}),
    ...(args.sets ? { setsFile: args.sets } : {}),
    useOcrText: !args['no-ocr-text'],
    worst,
    device: args.device as DeviceSetting,
    charts: !args['no-charts'],
    ...(ocr && { textExtractor: ocrTextExtractor(ocr) }),
    onProgress: (done, total) => {
      if (done === total || done >= nextReport) {
        log(`${done}/${total} items`);
        nextReport = done + Math.max(1, Math.ceil(total / 10));
      }
    },
  });
  const pct = (v: number | null) => (v === null ? 'n/a' : `${(100 * v).toFixed(1)}%`);
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
  log(`${report.dataset.items} items in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const key of SYSTEM_KEYS) {
    const s = report.systems[key];
    const m = s.metrics;
    process.stdout.write(
      `${s.name.padEnd(16)} type macro-F1 ${f(m.type.macro_f1)}  level acc ${pct(m.level.accuracy)}  flagged recall ${pct(m.flagged.recall_on_unsafe)}  over-refusal ${pct(m.over_refusal_rate_on_safe)}` +
        (m.latency ? `  p50 ${m.latency.p50_ms.toFixed(1)} ms` : '') +
        '\n',
    );
  }
  for (const c of report.sets.comparisons) {
    process.stdout.write(
      `${c.name}: AUROC ${f(c.auroc)} (${c.positives} vs ${c.negatives})  recall ${pct(c.recall)}  caution/refuse on negatives ${pct(c.over_refusal_on_negatives)}  recall at ${pct(c.max_fpr)} FPR ${pct(c.recall_at_max_fpr)}\n`,
    );
  }
  const p1 = report.pass1_latency.summary;
  if (p1) process.stdout.write(`pass 1 per item: p50 ${p1.p50_ms.toFixed(1)} ms  p90 ${p1.p90_ms.toFixed(1)} ms\n`);
  const md = path.join(dir, 'report.md');
  const rel = path.relative(process.cwd(), md);
  process.stdout.write(`report: ${rel.startsWith('..') ? md : rel}\n`);
  await ocr?.close();
} catch (err) {
  if (isDatasetError(err)) {
    if (err.problems.length === 0) process.stderr.write(`eval: ${err.message}\n`);
    else process.stderr.write(`eval: ${args.data} has ${err.totalProblems} problem(s):\n`);
    for (const p of err.problems) process.stderr.write(`  ${formatProblem(p)}\n`);
    if (err.totalProblems > err.problems.length) process.stderr.write(`  ... and ${err.totalProblems - err.problems.length} more\n`);
  } else {
    const code = (err as { code?: unknown }).code;
    process.stderr.write(`eval: ${typeof code === 'string' ? `${code}: ` : ''}${(err as Error).message}\n`);
  }
  process.exit(1);
}

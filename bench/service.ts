/**
 * npm run bench:service [-- --requests 24 --duration 30 --concurrency 1,4,16,32 --kinds typographic,photo,large_jpeg
 *                          --transports json,multipart --leak 100 --request-timeout 60 --baseline bench/baselines/FILE.json --note "..."]
 *
 * The service end to end: starts the real server (bench/lib/serve.ts: buildApp + listen, as
 * src/server.ts) on the embedded default package in a process of its own, drives POST
 * /v1/moderate over HTTP with a closed-loop load, and beside each cell runs the same items through
 * PsaRuntime.preprocess + classify in this process, in POOL_SIZE worker threads with the server's
 * threads per worker (the ceiling).
 * Prints Markdown tables and writes the result as JSON under .cache/bench/. Server settings come
 * from the environment as for `npm start` (POOL_SIZE, POOL_THREADS, MAX_QUEUE_WAIT_MS, ...).
 */
import { fork } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { threadsPerWorker } from '../src/inference/pool.ts';
import { benchImages, IMAGE_KINDS, type BenchImage, type ImageKind } from './lib/images.ts';
import { CeilingPool } from './lib/in-process.ts';
import { closedLoop, percentile, processMemory, stageTotals, type Transport } from './lib/load.ts';
import { markdown, STAGE_COLUMNS, type BenchResult, type ServiceCell } from './lib/report.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '24' },
    duration: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '1,4,16,32' },
    kinds: { type: 'string', default: IMAGE_KINDS.join(',') },
    transports: { type: 'string', default: 'json,multipart' },
    // multipart runs at these client counts only (it differs from JSON only in the HTTP stages)
    'multipart-concurrency': { type: 'string', default: '4' },
    'retry-cap': { type: 'string', default: '1' },
    // Seconds a client waits for an answer before it abandons the request and counts it as timed out.
    'request-timeout': { type: 'string', default: '60' },
    leak: { type: 'string', default: '0' },
    'no-ceiling': { type: 'boolean', default: false },
    baseline: { type: 'string' },
    note: { type: 'string', default: '' },
    out: { type: 'string' },
  },
});
const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const requests = Number(values.requests);
const durationS = Number(values.duration);
const levels = list(values.concurrency).map(Number);
const kinds = list(values.kinds) as ImageKind[];
const transports = list(values.transports) as Transport[];
const multipartLevels = new Set(list(values['multipart-concurrency']).map(Number));
for (const k of kinds) if (!IMAGE_KINDS.includes(k)) throw new Error(`--kinds: "${k}" is not one of ${IMAGE_KINDS.join(', ')}`);

// Shed requests are logged at warn; under the overload cells that would bury the tables.
// MALLOC_ARENA_MAX as `npm start` and the images set it (README, "Memory"), unless the environment says otherwise.
const env = { PSA_MODEL: 'models/default', LOG_LEVEL: 'error', MALLOC_ARENA_MAX: '2', ...process.env };
const config = loadConfig(env);
const threads = threadsPerWorker(config);
const loadBefore = loadavg();

const child = fork(new URL('./lib/serve.ts', import.meta.url), { env, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const base = await new Promise<string>((resolve, reject) => {
  child.once('message', (m: { address: string }) => resolve(m.address));
  child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
});
const stopServer = () =>
  new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.disconnect();
  });

const images = new Map<ImageKind, BenchImage[]>();
for (const kind of kinds) images.set(kind, await benchImages(kind));
const loadOptions = (concurrency: number) => ({ concurrency, requests: Math.max(requests, concurrency), durationS, retryCapS: Number(values['retry-cap']), timeoutS: Number(values['request-timeout']) });

// Warm-up: every kind once through the service.
for (const kind of kinds) await closedLoop(base, images.get(kind)!, 'json', { ...loadOptions(1), requests: 2 });

const cells: ServiceCell[] = [];
for (const kind of kinds) {
  for (const transport of transports) {
    for (const concurrency of levels) {
      if (transport === 'multipart' && !multipartLevels.has(concurrency)) continue;
      const before = await stageTotals(base);
      const { samples, elapsedS } = await closedLoop(base, images.get(kind)!, transport, loadOptions(concurrency));
      const after = await stageTotals(base);
      const ok = samples.filter((s) => s.status === 200);
      const refused = samples.filter((s) => s.status === 503);
      const timedOut = samples.filter((s) => s.status === 0);
      const delta = (stage: string) => ({ sum: (after[stage]?.sum ?? 0) - (before[stage]?.sum ?? 0), count: (after[stage]?.count ?? 0) - (before[stage]?.count ?? 0) });
      const itemsRun = delta('queue').count;
      const perRequest = new Set(['parse', 'policy', 'serialize', 'queue']);
      const stages = Object.fromEntries(
        STAGE_COLUMNS.map((s) => {
          const d = delta(s);
          const n = perRequest.has(s) ? d.count : itemsRun;
          return [s, n > 0 ? (1000 * d.sum) / n : NaN];
        }),
      );
      const cell: ServiceCell = {
        kind,
        transport,
        concurrency,
        answered: samples.length,
        accepted: ok.length,
        refused: refused.length,
        elapsed_s: elapsedS,
        items_per_s: ok.length / elapsedS,
        p50_ms: percentile(
          ok.map((s) => s.ms),
          50,
        ),
        p99_ms: percentile(
          ok.map((s) => s.ms),
          99,
        ),
        refused_p50_ms: refused.length
          ? percentile(
              refused.map((s) => s.ms),
              50,
            )
          : null,
        refusal_rate: samples.length ? refused.length / samples.length : 0,
        timed_out: timedOut.length,
        stages_ms: stages,
      };
      cells.push(cell);
      console.error(
        `${kind} ${transport} x${concurrency}: ${cell.items_per_s.toFixed(2)} items/s, p50 ${cell.p50_ms.toFixed(0)} ms, p99 ${cell.p99_ms.toFixed(0)} ms, ${refused.length} refused, ${timedOut.length} timed out`,
      );
    }
  }
}

let leakCheck: BenchResult['memory']['leak_check'];
const n = Number(values.leak);
if (n > 0) {
  const kind = kinds.includes('photo') ? 'photo' : kinds[0]!;
  await closedLoop(base, images.get(kind)!, 'json', { ...loadOptions(4), requests: n, durationS: Infinity });
  const atN = await processMemory(child.pid!);
  await closedLoop(base, images.get(kind)!, 'json', { ...loadOptions(4), requests: 9 * n, durationS: Infinity });
  const at10N = await processMemory(child.pid!);
  leakCheck = { n, rss_after_n_mib: atN.rssMiB, rss_after_10n_mib: at10N.rssMiB, growth: at10N.rssMiB / atN.rssMiB - 1 };
}
const peak = (await processMemory(child.pid!)).peakMiB;
await stopServer();

if (!values['no-ceiling']) {
  const ceiling = CeilingPool.start(config.POOL_SIZE, config.PSA_MODEL, { device: 'cpu', intraOpThreads: threads, memoryArena: config.POOL_MEMORY_ARENA, verifyChecksums: false });
  try {
    // warm-up: every worker reads each kind twice
    for (const kind of kinds) await ceiling.run({ images: images.get(kind)!, concurrency: config.POOL_SIZE, batchSize: 1, requests: 2 * config.POOL_SIZE, durationS: Infinity });
    const ceilings = new Map<string, { items_per_s: number; p50_ms: number; p99_ms: number }>();
    for (const cell of cells) {
      const id = `${cell.kind}/${cell.concurrency}`;
      if (!ceilings.has(id)) {
        const r = await ceiling.run({ images: images.get(cell.kind as ImageKind)!, concurrency: cell.concurrency, batchSize: config.BATCH_MAX_SIZE, requests: Math.max(requests, cell.concurrency), durationS });
        ceilings.set(id, { items_per_s: r.items / r.elapsedS, p50_ms: percentile(r.latenciesMs, 50), p99_ms: percentile(r.latenciesMs, 99) });
      }
      const c = ceilings.get(id)!;
      cell.in_process = { ...c, ratio: cell.items_per_s / c.items_per_s };
    }
  } finally {
    await ceiling.close();
  }
}

const result: BenchResult = {
  created_at: new Date().toISOString(),
  machine: { cpus: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), memory_gib: Math.round(totalmem() / 2 ** 30), node: process.version, load_before: loadBefore, load_after: loadavg(), note: values.note },
  settings: {
    model: config.PSA_MODEL,
    POOL_SIZE: config.POOL_SIZE,
    threads_per_worker: threads,
    POOL_MEMORY_ARENA: config.POOL_MEMORY_ARENA,
    MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX || 'glibc default',
    BATCH_MAX_SIZE: config.BATCH_MAX_SIZE,
    BATCH_MAX_WAIT_MS: config.BATCH_MAX_WAIT_MS,
    MAX_QUEUE_WAIT_MS: config.MAX_QUEUE_WAIT_MS,
    POOL_MAX_QUEUE: config.POOL_MAX_QUEUE,
    requests_per_cell: requests,
    max_seconds_per_cell: durationS,
  },
  cells,
  memory: { peak_rss_mib: peak, ...(leakCheck && { leak_check: leakCheck }) },
};
const outPath = values.out ?? `.cache/bench/service-${result.created_at.replace(/[:.]/g, '-')}.json`;
await mkdir(new URL('../.cache/bench/', import.meta.url), { recursive: true });
await writeFile(outPath, `${JSON.stringify(result, null, 2)}\n`);
const baseline = values.baseline ? (JSON.parse(await readFile(values.baseline, 'utf8')) as BenchResult) : undefined;
console.log(markdown(result, baseline));
console.error(`\nresult written to ${outPath}`);

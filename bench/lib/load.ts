/** Closed-loop load over real HTTP: `concurrency` clients, each sending its next request when the last is answered. */
import type { BenchImage } from './images.ts';

export type Transport = 'json' | 'multipart';

export interface Sample {
  /** HTTP status, or 0 when no answer came within the request timeout. */
  status: number;
  ms: number;
  retryAfterS?: number;
  /** The response's timings.stages_ms, for 200s. */
  stages?: Record<string, number>;
}

export interface LoadOptions {
  concurrency: number;
  /** Stop starting requests after this many answers or this many seconds, whichever comes first. */
  requests: number;
  durationS: number;
  /** A refused client waits Retry-After, at most this long, before its next request. */
  retryCapS: number;
  /** A request unanswered after this many seconds is abandoned and counted as timed out (status 0). */
  timeoutS: number;
}

function request(base: string, image: BenchImage, prompt: string, transport: Transport): RequestInit & { url: string } {
  if (transport === 'json') {
    return { url: `${base}/v1/moderate`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: image.bytes.toString('base64'), prompt }) };
  }
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(image.bytes)], { type: image.mime }), image.mime === 'image/png' ? 'image.png' : 'image.jpg');
  form.append('prompt', prompt);
  return { url: `${base}/v1/moderate`, method: 'POST', body: form };
}

export async function closedLoop(base: string, images: BenchImage[], transport: Transport, o: LoadOptions): Promise<{ samples: Sample[]; elapsedS: number }> {
  const samples: Sample[] = [];
  const start = performance.now();
  let sent = 0;
  const more = () => sent < o.requests && (performance.now() - start) / 1000 < o.durationS;
  async function client(id: number) {
    while (more()) {
      const n = sent++;
      const { url, ...init } = request(base, images[(n + id) % images.length]!, `What does this say? (${n})`, transport);
      const t0 = performance.now();
      let res: Response;
      try {
        res = await fetch(url, { ...init, signal: AbortSignal.timeout(1000 * o.timeoutS) });
      } catch (err) {
        if ((err as Error).name !== 'TimeoutError') throw err;
        samples.push({ status: 0, ms: performance.now() - t0 });
        continue;
      }
      const body = (await res.json()) as { timings?: { stages_ms?: Record<string, number> } };
      const sample: Sample = { status: res.status, ms: performance.now() - t0 };
      if (res.status === 200 && body.timings?.stages_ms) sample.stages = body.timings.stages_ms;
      const retry = Number(res.headers.get('retry-after'));
      if (res.status === 503 && retry > 0) sample.retryAfterS = retry;
      samples.push(sample);
      if (res.status === 503) await new Promise((r) => setTimeout(r, 1000 * Math.min(o.retryCapS, sample.retryAfterS ?? 1)));
      else if (res.status !== 200) throw new Error(`the server answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => client(i)));
  return { samples, elapsedS: (performance.now() - start) / 1000 };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Sums and counts of psa_stage_seconds from /metrics, by stage. */
export async function stageTotals(base: string): Promise<Record<string, { sum: number; count: number }>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out: Record<string, { sum: number; count: number }> = {};
  for (const m of text.matchAll(/^psa_stage_seconds_(sum|count)\{stage="([a-z_0-9]+)"\} ([0-9.e+-]+)$/gm)) {
    const stage = m[2]!;
    out[stage] ??= { sum: 0, count: 0 };
    out[stage][m[1] as 'sum' | 'count'] = Number(m[3]);
  }
  return out;
}

/** Peak and current resident memory of a process, MiB (Linux /proc). */
export async function processMemory(pid: number): Promise<{ peakMiB: number; rssMiB: number }> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
}

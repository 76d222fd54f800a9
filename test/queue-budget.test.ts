import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { QueueWaitEstimator } from '../src/inference/queue-wait.ts';
import { b64, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

const png = b64(await gradientPng());

t.test('the estimate is items ahead x recent time per item / workers, from the second batch per worker', async (t) => {
  const e = new QueueWaitEstimator(2, 0.5);
  e.observe(900, 1);
  e.observe(800, 1);
  t.equal(e.expectedWaitMs(10), 0, "each worker's first batch is not a sample");
  e.observe(40, 4);
  t.equal(e.msPerItem, 10, 'the first sample is taken as it is');
  e.observe(60, 2);
  t.equal(e.msPerItem, 20, 'later ones move the mean by the weight');
  t.equal(e.expectedWaitMs(6), 60, '6 items at 20 ms on 2 workers');
  e.observe(10, 0);
  t.equal(e.msPerItem, 20, 'an empty batch says nothing');
});

/** Fires `n` moderation requests at once over real HTTP; status, Retry-After, body and latency of each. */
async function burst(base: string, n: number) {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const start = performance.now();
      const res = await fetch(`${base}/v1/moderate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: png, prompt: `request ${i}` }) });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, any>, ms: performance.now() - start };
    }),
  );
}

async function serve(budgetMs: string): Promise<{ app: FastifyInstance; base: string }> {
  const { app } = await testApp({ MAX_QUEUE_WAIT_MS: budgetMs });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  // Warm-up: the worker's first batch is not a sample; the second sets the time per item.
  for (let i = 0; i < 3; i++) await fetch(`${base}/v1/moderate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: png }) });
  return { app, base };
}

const itemsRun = async (app: FastifyInstance) => {
  const m = /psa_stage_seconds_count\{stage="queue"\} (\d+)/.exec((await app.inject('/metrics')).body);
  return Number(m?.[1] ?? 0);
};

t.test('over the queue-time budget, work is refused at once with 503 and Retry-After; accepted work completes', async (t) => {
  const { app, base } = await serve('1');
  t.teardown(() => app.close());
  const before = await itemsRun(app);
  const results = await burst(base, 40);
  const accepted = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status === 503);
  t.equal(accepted.length + refused.length, 40, `only 200 or 503 (${results.map((r) => r.status)})`);
  t.ok(refused.length > 0, `some were refused (${refused.length} of 40)`);
  t.ok(accepted.length > 0, `some were accepted (${accepted.length} of 40)`);
  for (const r of accepted) t.equal(r.body.items?.[0]?.concepts?.level?.scores && Object.keys(r.body.items[0].concepts.level.scores).length, 4, 'an accepted request gets its concepts');
  for (const r of refused) {
    t.equal(r.body.error.code, 'PSA_OVERLOADED');
    t.match(r.body.error.message, /MAX_QUEUE_WAIT_MS 1\b/, 'the message names the budget');
    const d = r.body.error.details;
    t.ok(d.expected_wait_ms >= 1 && d.items_ahead >= 1 && d.max_queue_wait_ms === 1, `details say why (${JSON.stringify(d)})`);
    t.equal(r.retryAfter, String(Math.max(1, Math.ceil(d.expected_wait_ms / 1000))), 'Retry-After comes from the estimate');
  }
  t.equal((await itemsRun(app)) - before, accepted.length, 'refused requests never reached a worker');
});

t.test('with the budget off (0), the same burst is all accepted', async (t) => {
  const { app, base } = await serve('0');
  t.teardown(() => app.close());
  const batched = async () => Number(/psa_pass1_batch_size_sum (\d+)/.exec((await app.inject('/metrics')).body)?.[1] ?? NaN);
  const before = await batched();
  const results = await burst(base, 40);
  t.same(new Set(results.map((r) => r.status)), new Set([200]));
  t.equal((await batched()) - before, 40, 'each batch is counted once in the batch metrics, however many requests it carried');
  t.ok(Math.max(...results.map((r) => r.body.timings.batch_size)) > 1, 'requests did share batches');
});

t.test('refusals on the OpenAI route keep its error shape', async (t) => {
  const { app, base } = await serve('1');
  t.teardown(() => app.close());
  const results = await Promise.all(
    Array.from({ length: 30 }, async () => {
      const res = await fetch(`${base}/v1/moderations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer any' },
        body: JSON.stringify({ input: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] }),
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, any> };
    }),
  );
  const refused = results.filter((r) => r.status === 503);
  t.ok(refused.length > 0, `some were refused (${results.map((r) => r.status)})`);
  for (const r of refused) {
    t.equal(r.body.error.code, 'PSA_OVERLOADED');
    t.ok(Number(r.retryAfter) >= 1);
  }
});

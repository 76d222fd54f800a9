import t from 'tap';
import { ShadowQueue, type ShedReason } from '../src/shadow/queue.ts';

type Job = { items: number[] };
const cut = (job: Job, keep: number) => ({ items: job.items.slice(0, keep) });

function harness(maxItems: number, concurrency: number) {
  const shed: [number, ShedReason][] = [];
  const started: Job[] = [];
  const finish: (() => void)[] = [];
  let busy = false;
  const queue = new ShadowQueue<Job>(maxItems, concurrency, {
    run: (job) => {
      started.push(job);
      return new Promise<void>((resolve) => finish.push(resolve));
    },
    shed: (count, reason) => shed.push([count, reason]),
    liveBusy: () => busy,
  });
  return { queue, shed, started, finish, setBusy: (b: boolean) => (busy = b) };
}
const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('a job that does not fit is cut to the room left; the rest is shed at once', async (t) => {
  const h = harness(3, 1);
  t.equal(h.queue.offer({ items: [1, 2] }, cut), 2);
  t.same(h.started, [{ items: [1, 2] }], 'the first job goes to the candidate at once');
  t.equal(h.queue.offer({ items: [3, 4] }, cut), 2);
  t.equal(h.queue.offer({ items: [5, 6, 7] }, cut), 1, 'one place was left');
  t.same(h.shed, [[2, 'queue_full']]);
  t.equal(h.queue.queued, 3);
  t.equal(h.queue.offer({ items: [8] }, cut), 0);
  t.same(h.shed.at(-1), [1, 'queue_full']);
  h.finish.shift()!();
  await tick();
  t.same(h.started.at(-1), { items: [3, 4] }, 'the next one runs when the candidate is free');
  t.equal(h.queue.inFlight, 1, 'at most `concurrency` jobs run');
});

t.test('a job whose turn comes while live work waits is shed, not run', async (t) => {
  const h = harness(8, 1);
  h.queue.offer({ items: [1] }, cut);
  h.queue.offer({ items: [2, 3] }, cut);
  h.setBusy(true);
  h.finish.shift()!();
  await tick();
  t.same(h.shed, [[2, 'live_busy']]);
  t.equal(h.started.length, 1);
  h.setBusy(false);
  h.queue.offer({ items: [4] }, cut);
  t.equal(h.started.length, 2, 'work resumes once live traffic is served');
});

t.test('clear drops what waits and settles when running jobs are done', async (t) => {
  const h = harness(8, 1);
  h.queue.offer({ items: [1] }, cut);
  h.queue.offer({ items: [2, 3] }, cut);
  const { dropped, settled } = h.queue.clear();
  t.equal(dropped, 2);
  let done = false;
  void settled.then(() => (done = true));
  await tick();
  t.notOk(done, 'a job is still with the candidate');
  h.finish.shift()!();
  await settled;
  t.equal(h.started.length, 1, 'the dropped job never ran');
});

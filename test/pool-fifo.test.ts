import t from 'tap';
import { testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

// Under sustained load one worker must take tasks in the order they came. piscina's default
// returns a task it could not hand out to the back of its queue, so with a single busy worker
// an early request could wait behind hundreds of later ones (seen as a request unanswered for
// minutes among thousands answered in ~0.4 s); the pool sets stricterFIFO against that.

const { app } = await testApp({ POOL_SIZE: '1', BATCH_MAX_SIZE: '1', MAX_QUEUE_WAIT_MS: '0' });
t.teardown(() => app.close());
const png = await gradientPng();

t.test('four clients in a closed loop on one worker: answers come in submission order', async (t) => {
  const pool = app.models.active;
  const total = 60;
  const submitted: number[] = [];
  const answered: number[] = [];
  let next = 0;
  async function client() {
    while (next < total) {
      const seq = next++;
      submitted.push(seq);
      await pool.moderateAll([{ image: png, prompt: `item ${seq}` }]);
      answered.push(seq);
    }
  }
  await Promise.all([client(), client(), client(), client()]);
  t.equal(answered.length, total, 'every task answered');
  // How many later tasks were answered before each one: 0 everywhere when the queue is FIFO.
  const overtakenBy = answered.map((seq, i) => answered.slice(0, i).filter((other) => other > seq).length);
  t.equal(Math.max(...overtakenBy), 0, `no task is answered after one submitted later (answer order: ${answered.join(' ')})`);
  t.same(answered, submitted);
});

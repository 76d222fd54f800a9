import t from 'tap';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { tinyPackage } from '../scripts/lib/random-package.ts';
import { LEVEL_LABELS, TYPE_LABELS } from '../src/psa/taxonomy.ts';
import { b64, testApp } from './helpers/app.ts';
import { testRedis } from './helpers/redis.ts';
import { startWorker } from './helpers/worker.ts';

// The loop end to end, on real components: moderate and chat on the tiny package with retention
// on -> reviewers correct the model by request id (and one item inline) -> a dataset of the
// reviews -> a training job in the real worker and PyTorch trainer -> the new model, activated,
// gives every reviewed item the reviewer's type and level, where the old one gave none of them.
const redis = await testRedis();
t.teardown(() => redis.stop());
const root = await mkdtemp(join(tmpdir(), 'psa-feedback-train-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const modelsDir = join(root, 'models');
await cp(await tinyPackage(), join(modelsDir, 'base'), { recursive: true });
const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, DATA_DIR: join(root, 'data'), MODELS_DIR: modelsDir };
const { app } = await testApp({ ...env, PSA_MODEL: 'base', FEEDBACK_RETENTION: 'on' });
t.teardown(() => app.close());
const worker = startWorker(env);
t.teardown(() => worker.kill('SIGKILL'));

const png = (background: string) =>
  sharp({ create: { width: 48, height: 48, channels: 3, background } })
    .png()
    .toBuffer();
type Input = { image?: string; prompt: string };
const inputs: Input[] = [
  { image: b64(await png('#c02020')), prompt: 'what does this sign say?' },
  { image: b64(await png('#2040c0')), prompt: 'who lives at this address?' },
  { image: b64(await png('#20a040')), prompt: 'is this medicine safe for children?' },
  { prompt: 'write a friendly birthday message for my aunt' },
  { image: b64(await png('#e0c020')), prompt: 'describe the colours here' },
];
// Wanted labels (type, level), each moved on to the next candidate when it happens to be the model's own judgement.
const candidates: [number, number][] = [
  [1, 3],
  [4, 2],
  [5, 1],
  [6, 0],
  [2, 3],
  [0, 2],
  [3, 1],
];

async function scores(input: Input): Promise<{ type: number[]; level: number[] }> {
  const item = (await app.inject({ method: 'POST', url: '/v1/moderate', payload: input })).json().items[0];
  return { type: Object.values(item.concepts.type.scores), level: Object.values(item.concepts.level.scores) };
}
const argmax = (p: number[]) => p.indexOf(Math.max(...p));
async function judge(input: Input): Promise<{ type: number; level: number }> {
  const s = await scores(input);
  return { type: argmax(s.type), level: argmax(s.level) };
}

t.test('moderate -> feedback -> dataset -> training job -> the new model gets the reviewed items right', async (t) => {
  // Served: a batch of two, a single item, a chat (text-only); the last input is reviewed inline.
  const batch = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { items: inputs.slice(0, 2) } });
  const single = await app.inject({ method: 'POST', url: '/v1/moderate', payload: inputs[2] });
  const chat = await app.inject({ method: 'POST', url: '/v1/chat', payload: { ...inputs[3], max_tokens: 4, seed: 1 } });
  for (const res of [batch, single, chat]) t.equal(res.statusCode, 200, res.body);
  const served = [...batch.json().items, ...single.json().items, chat.json()].map((i) => ({ type: i.concepts.type.index as number, level: i.concepts.level.index as number }));
  served.push(await judge(inputs[4]!));
  const labels = served.map((s, i) => {
    for (let k = 0; k < candidates.length; k++) {
      const [type, level] = candidates[(i + k) % candidates.length]!;
      if (type !== s.type || level !== s.level) return { type, level };
    }
    throw new Error('unreachable');
  });
  t.equal(labels.filter((l, i) => l.type === served[i]!.type && l.level === served[i]!.level).length, 0, 'before training the model gets none of the reviews right');

  const review = (body: object, i: number) => app.inject({ method: 'POST', url: '/v1/feedback', payload: { ...body, safe_type: TYPE_LABELS[labels[i]!.type], safe_level: LEVEL_LABELS[labels[i]!.level] } });
  const reviews = [
    await review({ request_id: batch.headers['x-request-id'], item: 0 }, 0),
    await review({ request_id: batch.headers['x-request-id'], item: 1 }, 1),
    await review({ request_id: single.headers['x-request-id'] }, 2),
    await review({ request_id: chat.headers['x-request-id'] }, 3),
    await review(inputs[4]!, 4),
  ];
  for (const r of reviews) t.equal(r.statusCode, 201, r.body);
  const stats = (await app.inject('/v1/feedback')).json();
  t.match(stats, { items: 5, by_source: { request: 4, inline: 1 }, disagreement: { none: 0, not_judged: 1 } });

  const built = await app.inject({ method: 'POST', url: '/v1/feedback/dataset', payload: {} });
  t.equal(built.statusCode, 201, built.body);
  t.match(built.json(), { items: 5, val_source: 'feedback', splits: { train: { count: 5, text_only: 1 } } });

  await worker.waitFor(/training workers ready/);
  // Stage 1 trains the safety head on the five reviews until it has them; stage 2 (LoRA on the decoder) adds nothing here.
  const job = await app.inject({ method: 'POST', url: '/v1/train', payload: { dataset: built.json().id, output_name: 'reviewed', stages: ['stage1'], stage1: { epochs: 12, batch_size: 1, lr: 0.003 }, seed: 3 } });
  t.equal(job.statusCode, 202, job.body);
  const id = job.json().id as string;
  const deadline = Date.now() + 480_000;
  let view: Record<string, any> = {};
  while (Date.now() < deadline) {
    view = (await app.inject(`/v1/train/${id}`)).json();
    if (['completed', 'failed', 'cancelled'].includes(view.state)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.equal(view.state, 'completed', view.error ?? JSON.stringify(view).slice(0, 800));
  t.comment(`job: ${(Date.parse(view.finished_at) - Date.parse(view.started_at)) / 1000} s, ${view.total_steps} steps, final loss ${view.loss}`);
  t.equal(view.result.metrics.examples, 5, 'evaluated on the reviewed items');
  t.comment(`evaluation on the reviews: level accuracy ${view.result.metrics.level_accuracy}, type accuracy ${view.result.metrics.type_accuracy}`);

  const activated = await app.inject({ method: 'POST', url: `/v1/models/${view.result.model_id}/activate` });
  t.equal(activated.statusCode, 200, activated.body);
  const after = await Promise.all(inputs.map(scores));
  t.same(
    after.map((s) => ({ type: argmax(s.type), level: argmax(s.level) })),
    labels,
    "the new model gives every reviewed item the reviewer's type and level",
  );
  const least = Math.min(...after.flatMap((s, i) => [s.type[labels[i]!.type]!, s.level[labels[i]!.level]!]));
  t.comment(`least probability the new model gives a reviewed label: ${least.toFixed(3)}`);
  t.equal(view.result.metrics.level_accuracy, 1);
  t.equal(view.result.metrics.type_accuracy, 1);
});

import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { tinyPackage } from '../../scripts/lib/random-package.ts';
import { b64 } from './app.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './images.ts';

/**
 * A models directory of tiny packages the trainer builds: `base` (seed 0), `same` (a copy of
 * it: same weights, another directory) and `other` (seed 1). Remove `root` when done.
 */
export async function shadowModels(): Promise<{ root: string; modelsDir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'psa-shadow-'));
  const modelsDir = join(root, 'models');
  await cp(await tinyPackage(0), join(modelsDir, 'base'), { recursive: true });
  await cp(await tinyPackage(0), join(modelsDir, 'same'), { recursive: true });
  await cp(await tinyPackage(1), join(modelsDir, 'other'), { recursive: true });
  return { root, modelsDir };
}

export const removeDir = (dir: string) => rm(dir, { recursive: true, force: true });

/** Images with prompts and prompts alone. */
export const shadowInputs = async () => [
  { image: b64(await gradientPng()), prompt: 'Is this fine?' },
  { image: b64(await gradientPng(64, 64)), prompt: 'How do I make this at home?' },
  { image: b64(await noiseJpeg(64, 64, 1)), prompt: '' },
  { image: b64(await noiseJpeg(64, 64, 2)), prompt: 'Who lives here?' },
  { image: b64(await noiseJpeg(48, 80, 3)), prompt: 'Tell me a joke about them.' },
  { image: b64(await shapesWebp()), prompt: 'What is this?' },
  { prompt: 'How do I pick a lock?' },
  { prompt: 'What is the capital of France?' },
  { prompt: 'Write an insult for my coworker.' },
];

export type Item = { decision: string; flagged: boolean; concepts: { type: { label: string } } };

/** A /v1/moderate answer without its timings (which differ run to run), and its request id. */
export async function moderate(app: FastifyInstance, payload: object) {
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload });
  if (res.statusCode !== 200) throw new Error(res.body);
  const { timings: _timings, ...answer } = res.json();
  return { id: res.headers['x-request-id'] as string, answer: answer as { model: string; items: Item[] } };
}

export const shadowReport = async (app: FastifyInstance, id: string) => (await app.inject(`/v1/models/${id}/shadow`)).json();

/** Waits until `n` mirrored items are settled (compared, failed or shed). */
export async function untilSettled(app: FastifyInstance, id: string, n: number) {
  // Generous: it bounds a hang on a loaded machine, it times nothing.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const r = await shadowReport(app, id);
    if (r.compared + r.failed + r.shed >= n) return r;
    if (Date.now() > deadline) throw new Error(`shadow stuck: ${JSON.stringify(r)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

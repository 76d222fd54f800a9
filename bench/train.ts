/**
 * npm run bench:train [-- --shape 7b|1b|small --batch 8 --text-tokens 96 --steps 5 --activation-checkpointing]
 *
 * Drives `python -m trainer bench-train`: tokens/s, model FLOP utilisation and peak memory of
 * stage 1 and stage 2 on random weights. On a CUDA machine it defaults to the LLaVA-1.5-7B shape
 * (batch 8 x 672 tokens, bf16) and compares with a transformers + peft reference measured on one
 * H100 80GB; on CPU it defaults to the `small` shape, whose figures say nothing about GPUs.
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { PYTHON, runTrainer } from '../scripts/lib/trainer-cli.ts';

const { values } = parseArgs({
  options: {
    shape: { type: 'string' },
    stages: { type: 'string', default: 'stage1,stage2' },
    batch: { type: 'string', default: '8' },
    'text-tokens': { type: 'string', default: '96' },
    steps: { type: 'string' },
    'lora-r': { type: 'string', default: '256' },
    'activation-checkpointing': { type: 'boolean', default: false },
  },
});

function hasCuda(): boolean {
  try {
    return execFileSync(PYTHON, ['-c', 'import torch; print(int(torch.cuda.is_available()))'], { encoding: 'utf8' }).trim() === '1';
  } catch {
    throw new Error(`cannot run torch with ${PYTHON} (set PSA_PYTHON to an interpreter with PyTorch)`);
  }
}
const cuda = hasCuda();
const shape = values.shape ?? (cuda ? '7b' : 'small');
const args = [
  'bench-train',
  '--shape',
  shape,
  '--stages',
  values.stages!,
  '--batch',
  values.batch!,
  '--text-tokens',
  values['text-tokens']!,
  '--steps',
  values.steps ?? (cuda ? '10' : '3'),
  '--warmup',
  cuda ? '3' : '1',
  '--lora-r',
  values['lora-r']!,
];
if (values['activation-checkpointing']) args.push('--activation-checkpointing');
console.error(`running python -m trainer ${args.join(' ')} (${cuda ? 'CUDA' : 'CPU'})`);
const rows = (await runTrainer(args))
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as Record<string, number | string | boolean>);

/** transformers 5.17 + peft 0.21 on one H100 80GB, LLaVA-1.5-7B shape, batch 8 x 672, bf16, SDPA. */
const REFERENCE: Record<string, { tokensPerS: number; mfu: number; memoryGiB: number; goal: number }> = {
  stage1: { tokensPerS: 13_900, mfu: 0.47, memoryGiB: 36.7, goal: 1.2 },
  stage2: { tokensPerS: 7_700, mfu: 0.3, memoryGiB: 71.3, goal: 1.5 },
};
const fmt = (v: unknown, digits = 1) => (typeof v === 'number' ? v.toFixed(digits) : String(v));
console.log(`| stage | shape | device | tokens/s | MFU | peak memory (GiB) | step (s) | trainable params |${shape === '7b' ? ' reference tokens/s | ratio (goal) |' : ''}`);
console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |${shape === '7b' ? ' --- | --- |' : ''}`);
for (const r of rows) {
  const ref = REFERENCE[String(r.stage)];
  const extra = shape === '7b' && ref ? ` ${ref.tokensPerS} | ${(Number(r.tokens_per_s) / ref.tokensPerS).toFixed(2)}x (${ref.goal}x) |` : '';
  console.log(
    `| ${r.stage} | ${r.shape} ${r.batch}x${r.sequence} | ${r.device} (${r.dtype}) | ${fmt(r.tokens_per_s, 0)} | ${fmt(r.mfu, 3)} | ${fmt(r.peak_memory_gib, 2)} | ${fmt(r.step_s, 2)} | ${(Number(r.trainable_params) / 1e6).toFixed(1)} M |${extra}`,
  );
}
if (!cuda) console.log('\nCPU run: the matmul peak is fp32 on this CPU; GPU figures need a CUDA machine (shape 7b).');

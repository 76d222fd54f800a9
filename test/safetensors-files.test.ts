// The trainer's safetensors files (trainer/io/safetensors_files.py, the safetensors library) and
// the Node reader (src/psa/safetensors-read.ts) agree both ways: what the trainer writes, Node
// reads value for value, and the trainer reads the default model's committed shards as Node does.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SHARD = join(ROOT, 'models', 'default', 'model-00002-of-00005.safetensors');

interface Report {
  written: Record<string, { shape: number[]; values: number[] }>;
  read: Record<string, { shape: number[]; sum: number }>;
}

t.test('library-written files read in Node; committed shards read by the library', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'psa-st-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'all.safetensors');
  const r = JSON.parse(execFileSync('/usr/bin/python3', ['test/helpers/safetensors_check.py', out, SHARD], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 })) as Report;

  const node = await readSafetensorsFile(out);
  t.same([...node.keys()].sort(), Object.keys(r.written).sort(), 'every tensor written is there');
  for (const [name, w] of Object.entries(r.written)) {
    const tensor = node.get(name)!;
    t.same(tensor.shape, w.shape, `${name}: shape`);
    t.same(Array.from(tensor.data as ArrayLike<number | bigint>, Number), w.values, `${name}: values`);
  }

  const shard = await readSafetensorsFile(SHARD);
  t.ok(shard.size > 0);
  t.same(Object.keys(r.read).sort(), [...shard.keys()].sort(), 'the library reads every tensor of the shard');
  for (const [name, tensor] of shard) {
    t.same(r.read[name]!.shape, tensor.shape, `${name}: shape`);
    const sum = Array.from(tensor.data as ArrayLike<number | bigint>, Number).reduce((a, b) => a + b, 0);
    t.ok(Math.abs(r.read[name]!.sum - sum) <= 1e-6 * Math.max(1, Math.abs(sum)), `${name}: sum ${r.read[name]!.sum} vs ${sum}`);
  }
});

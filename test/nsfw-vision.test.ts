import t from 'tap';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import sharp from 'sharp';
import { gradientPng, noiseJpeg } from './helpers/images.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { PYTHON, REPO_ROOT, runTrainer } from '../scripts/lib/trainer-cli.ts';
import { NSFWJS_MODEL_DIR, nsfwjsReference, type ReferenceImage } from '../scripts/nsfwjs/reference.ts';

// nsfwjs's MobileNetV2 converted to PyTorch, compared with nsfwjs itself (tfjs, CPU backend) on the
// very tensors nsfwjs fed its network, so only the conversion is measured.
interface TorchImage {
  name: string;
  probabilities: number[];
  top1: string;
  featureRows: { file: string; shape: number[] };
  fromRgb: { probabilities: number[]; inputMaxDiff: number };
}
interface Timing {
  median: number;
  min: number;
}
interface TorchReport {
  gridSize: number;
  numPatches: number;
  hiddenSize: number;
  threads: number;
  forwardMsByThreads: Record<string, Timing>;
  images: TorchImage[];
}

function runPython(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: REPO_ROOT, env: { ...process.env, PYTHONPATH: REPO_ROOT }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const floats = async (path: string): Promise<Float32Array> => {
  const b = await readFile(path);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

async function skinBlobPng(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400">
    <rect width="300" height="400" fill="#3b2f2f"/><ellipse cx="150" cy="210" rx="95" ry="150" fill="#e0ac8c"/>
    <ellipse cx="150" cy="90" rx="55" ry="65" fill="#d99f7e"/><ellipse cx="120" cy="230" rx="30" ry="40" fill="#c98b6b"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

// All setup runs before the first subtest.
const work = await mkdtemp(join(tmpdir(), 'psa-nsfwjs-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const tower = join(work, 'tower');
const refDir = join(work, 'reference');

const started = performance.now();
const converted = JSON.parse(await runTrainer(['convert-nsfwjs', '--model-dir', NSFWJS_MODEL_DIR, '--out', tower])) as { tensors: number; parameters: number; seconds: number };
const convertWallSeconds = (performance.now() - started) / 1000;
const config = JSON.parse(await readFile(join(tower, 'config.json'), 'utf8')) as {
  grid_size: number;
  num_patches: number;
  hidden_size: number;
  class_names: string[];
  source: { version: string; license: string; files: Record<string, string> };
};

const FIGSTEP = join(REPO_ROOT, '..', 'shared', 'data', 'figstep-dev', 'images');
const figstep = existsSync(FIGSTEP) ? ['query_ForbidQI_1_1_6.png', 'query_ForbidQI_6_3_6.png', 'query_ForbidQI_10_12_6.png'].filter((f) => existsSync(join(FIGSTEP, f))) : [];
const images: ReferenceImage[] = [
  ...(await Promise.all(figstep.map(async (f) => ({ name: f.replace('.png', ''), source: join(FIGSTEP, f), bytes: await readFile(join(FIGSTEP, f)) })))),
  { name: 'gradient-224', source: 'generated: RGB gradient, 224x224 (no resize)', bytes: await gradientPng(224, 224) },
  { name: 'skin-blobs', source: 'generated: skin-toned ellipses on dark brown, 300x400', bytes: await skinBlobPng() },
  { name: 'noise', source: 'generated: uniform noise JPEG, 97x61 (upsampled)', bytes: await noiseJpeg(97, 61, 11) },
];
const reference = await nsfwjsReference(images, refDir);
const torchRun = await runPython([join(REPO_ROOT, 'scripts/nsfwjs/torch_outputs.py'), tower, refDir, '5']);
if (torchRun.code !== 0) throw new Error(`torch_outputs.py exited ${torchRun.code}: ${torchRun.stderr.slice(-2000)}`);
const torchReport = JSON.parse(torchRun.stdout) as TorchReport;

t.test('the converter maps all 266 weights of the files nsfwjs loads', async (t) => {
  t.equal(converted.tensors, 266);
  t.equal(converted.parameters, 2_619_461);
  t.same(config.source.files, reference.modelFiles, 'converted from the same files (sha256) that nsfwjs ran');
  t.equal(config.source.version, reference.nsfwjs);
  t.equal(config.source.license, 'MIT');
  t.same(config.class_names, reference.classes);
  t.comment(`conversion: ${converted.seconds.toFixed(2)} s in the converter, ${convertWallSeconds.toFixed(2)} s with interpreter start`);
});

t.test("class probabilities equal nsfwjs's within 1e-3 on the same input tensors", async (t) => {
  t.equal(torchReport.images.length, images.length);
  let maxDiff = 0;
  let sum = 0;
  let count = 0;
  let agree = 0;
  for (const [i, ref] of reference.images.entries()) {
    const ours = torchReport.images[i]!;
    t.equal(ours.name, ref.name);
    t.ok(ref.inputReproducesInfer, `${ref.name}: the dumped input reproduces NSFWJS.infer exactly`);
    let imageMax = 0;
    ref.probabilities.forEach((p, k) => {
      const d = Math.abs(p - ours.probabilities[k]!);
      imageMax = Math.max(imageMax, d);
      sum += d;
      count++;
    });
    maxDiff = Math.max(maxDiff, imageMax);
    if (ours.top1 === ref.top1) agree++;
    t.comment(`${ref.name}: nsfwjs ${ref.top1} ${Math.max(...ref.probabilities).toFixed(4)}, max diff ${imageMax.toExponential(2)}`);
  }
  t.ok(maxDiff <= 1e-3, `max diff ${maxDiff}`);
  t.equal(agree, images.length, `top-1 agreement ${agree}/${images.length}`);
  t.comment(`probabilities: max abs diff ${maxDiff.toExponential(3)}, mean abs diff ${(sum / count).toExponential(3)}, top-1 ${agree}/${images.length}`);
  for (const [threads, ms] of Object.entries(torchReport.forwardMsByThreads)) {
    t.comment(`PyTorch forward, 1x3x224x224 on CPU, ${threads} thread(s): median ${ms.median.toFixed(1)} ms, min ${ms.min.toFixed(1)} ms`);
  }
});

t.test("feature rows are [1, 49, 1280], row-major over the 7x7 grid, equal to nsfwjs's out_relu", async (t) => {
  t.same([config.grid_size, config.num_patches, config.hidden_size], [7, 49, 1280]);
  t.same([torchReport.gridSize, torchReport.numPatches, torchReport.hiddenSize], [7, 49, 1280]);
  let maxDiff = 0;
  for (const [i, ref] of reference.images.entries()) {
    const ours = torchReport.images[i]!;
    t.same(ours.featureRows.shape, [1, config.num_patches, config.hidden_size], `${ref.name}: feature rows shape`);
    t.same(ref.features.shape, [config.num_patches, config.hidden_size]);
    // nsfwjs's map is NHWC [1, 7, 7, 1280]: flat index (y * 7 + x) * 1280 + c, the rows' layout.
    const a = await floats(join(refDir, ref.features.file));
    const b = await floats(join(refDir, ours.featureRows.file));
    t.equal(b.length, a.length);
    a.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - b[k]!))));
  }
  t.ok(maxDiff <= 1e-3, `feature max diff ${maxDiff} (ReLU6 range 0..6)`);
});

t.test("the PyTorch preprocessing of the decoded RGB reproduces nsfwjs's input", async (t) => {
  for (const [i, ref] of reference.images.entries()) {
    const ours = torchReport.images[i]!.fromRgb;
    let d = 0;
    ref.probabilities.forEach((p, k) => (d = Math.max(d, Math.abs(p - ours.probabilities[k]!))));
    t.ok(ours.inputMaxDiff <= 1e-4, `${ref.name}: input max diff ${ours.inputMaxDiff}`);
    t.ok(d <= 1e-3, `${ref.name}: probabilities from the RGB, max diff ${d}`);
  }
});

t.test('a standard model.json + binary shard converts to the same tensors', async (t) => {
  // As .cjs files the UMD bundles take their CommonJS branch and export their payload.
  const plain = join(work, 'plain');
  const bundles = join(work, 'bundles');
  await mkdir(plain, { recursive: true });
  await mkdir(bundles, { recursive: true });
  await cp(join(NSFWJS_MODEL_DIR, 'model.min.js'), join(bundles, 'model.cjs'));
  await cp(join(NSFWJS_MODEL_DIR, 'group1-shard1of1.min.js'), join(bundles, 'shard.cjs'));
  const model = (await import(pathToFileURL(join(bundles, 'model.cjs')).href)).default as { weightsManifest: { paths: string[] }[] };
  const shard = (await import(pathToFileURL(join(bundles, 'shard.cjs')).href)).default as string;
  t.same(model.weightsManifest[0]!.paths, ['group1-shard1of1']);
  await writeFile(join(plain, 'model.json'), JSON.stringify(model));
  await writeFile(join(plain, 'group1-shard1of1'), Buffer.from(shard, 'base64'));
  await runTrainer(['convert-nsfwjs', '--model-dir', plain, '--out', join(work, 'plain-out')]);
  const [a, b] = await Promise.all([readSafetensorsFile(join(tower, 'model.safetensors')), readSafetensorsFile(join(work, 'plain-out', 'model.safetensors'))]);
  t.same([...b.keys()], [...a.keys()]);
  const differing = [...a].filter(([name, x]) => {
    const y = b.get(name)!;
    return Buffer.compare(Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength), Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength)) !== 0;
  });
  t.same(
    differing.map(([name]) => name),
    [],
    `all ${a.size} tensors bit-identical`,
  );
});

t.test('a model that does not fit stops the conversion with the weight or layer named', async (t) => {
  const text = await readFile(join(NSFWJS_MODEL_DIR, 'model.min.js'), 'utf8');
  const cases: { name: string; edit: (s: string) => string; error: RegExp }[] = [
    { name: 'misshaped', edit: (s) => s.replace('{name:"dense_3/kernel",shape:[128,5]', '{name:"dense_3/kernel",shape:[5,128]'), error: /weight 'dense_3\/kernel' has shape \[5, 128\].*needs \[128, 5\] in Keras layout/ },
    { name: 'missing', edit: (s) => s.replace('{name:"dense_3/bias"', '{name:"dense_3/bias_"'), error: /missing weight 'dense_3\/bias' \(for 'classifier\.2\.bias'\)/ },
    { name: 'extra', edit: (s) => s.replace('weights:[', 'weights:[{name:"extra/kernel",shape:[0],dtype:"float32"},'), error: /unexpected weight 'extra\/kernel'/ },
    { name: 'short shard', edit: (s) => s.replace('{name:"dense_3/bias",shape:[5]', '{name:"dense_3/bias",shape:[6]'), error: /weight '[^']+' needs bytes \d+\.\.\d+, the shard data has \d+/ },
    {
      name: 'stride',
      edit: (s) => s.replace(/(name:"block_3_depthwise",class_name:"DepthwiseConv2D",config:\{[^}]*?strides:)\[2,2\]/, '$1[1,1]'),
      error: /layer 'block_3_depthwise': strides is \[1, 1\], the PyTorch module expects \[2, 2\]/,
    },
  ];
  for (const c of cases) {
    const dir = join(work, `bad-${c.name.replace(' ', '-')}`);
    await mkdir(dir, { recursive: true });
    const edited = c.edit(text);
    t.not(edited, text, `${c.name}: the edit applies`);
    await writeFile(join(dir, 'model.min.js'), edited);
    await cp(join(NSFWJS_MODEL_DIR, 'group1-shard1of1.min.js'), join(dir, 'group1-shard1of1.min.js'));
    const run = await runPython(['-m', 'trainer', 'convert-nsfwjs', '--model-dir', dir, '--out', join(dir, 'out')]);
    t.equal(run.code, 2, `${c.name}: exit code 2`);
    t.match(run.stderr, c.error, `${c.name}: ${run.stderr.trim()}`);
    t.notOk((await readdir(dir)).includes('out'), `${c.name}: nothing written`);
  }
});

import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { embedPrompt, DecoderState } from '../src/psa/generator.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { readSafetensorsFile, type Tensor } from '../src/psa/safetensors-read.ts';
import { gradientPng, noiseJpeg, shapesWebp } from './helpers/images.ts';
import { PYTHON, REPO_ROOT, runTrainer } from '../scripts/lib/trainer-cli.ts';
import { NSFWJS_MODEL_DIR, randomPackage } from '../scripts/lib/random-package.ts';

// A package whose vision tower is nsfwjs's pretrained MobileNetV2 (the rest tiny and random):
// its format, the runtime's stretch preprocessing, Node against PyTorch, the tower against the
// converter's module, and a training run that leaves the tower as it was.
const dir = await randomPackage('tiny', 0, 'nsfwjs');
const work = await mkdtemp(join(tmpdir(), 'psa-mobilenet-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const converted = join(work, 'converted');
await runTrainer(['convert-nsfwjs', '--model-dir', NSFWJS_MODEL_DIR, '--out', converted]);
const runtime = await PsaRuntime.load(dir, { device: 'cpu' });
t.teardown(() => runtime.close());

const readJson = async (file: string) => JSON.parse(await readFile(join(dir, file), 'utf8'));
const b64 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const unb64 = (s: string) => new Float32Array(new Uint8Array(Buffer.from(s, 'base64')).buffer);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const towerTensors = (m: Map<string, Tensor>) => [...m.keys()].filter((k) => k.startsWith('vision_tower.')).sort();
const sameBytes = (a: Tensor, b: Tensor) => Buffer.compare(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)) === 0;

t.test('the package describes a MobileNetV2 tower and its preprocessing', async (t) => {
  const config = await readJson('config.json');
  t.match(config, { vision_feature_layer: -1, vision_feature_select_strategy: 'full', image_seq_length: 49 });
  t.match(config.vision_config, { model_type: 'nsfwjs_mobilenet_v2', image_size: 224, grid_size: 7, patch_size: 32, num_patches: 49, hidden_size: 1280 });
  const b = runtime.pkg.manifest.safety_tokens.b;
  t.equal(runtime.pkg.manifest.image.image_token_count, 49 + b, 'image rows: tokens B + 7 x 7');
  t.match(await readJson('processor_config.json'), { patch_size: 32, num_additional_image_tokens: b, vision_feature_select_strategy: 'full' });
  t.match(await readJson('preprocessor_config.json'), {
    do_resize: true,
    size: { height: 224, width: 224 },
    resample: 2,
    do_center_crop: false,
    do_rescale: true,
    do_normalize: false,
  });
  t.same(runtime.pkg.preprocess, {
    shortestEdge: 0,
    cropSize: { height: 224, width: 224 },
    doCenterCrop: false,
    resample: 'bilinear',
    rescaleFactor: 1 / 255,
    imageMean: [0, 0, 0],
    imageStd: [1, 1, 1],
    resizeTo: { height: 224, width: 224 },
  });
  t.match((await readJson('psa.json')).provenance.vision_tower, { model_type: 'nsfwjs_mobilenet_v2', source: { package: 'nsfwjs', license: 'MIT' } });

  // The converter's 266 tensors, bit for bit, under vision_tower.*.
  const pkg = await readSafetensorsFile(join(dir, 'model.safetensors'));
  const conv = await readSafetensorsFile(join(converted, 'model.safetensors'));
  t.same(towerTensors(pkg), [...conv.keys()].map((k) => `vision_tower.${k}`).sort(), 'the same tensor names under vision_tower.');
  t.equal(conv.size, 266);
  t.ok(
    [...conv].every(([k, v]) => sameBytes(v, pkg.get(`vision_tower.${k}`)!)),
    'identical values',
  );
});

t.test('config.json: the layer and strategy settings do not apply to this tower, unknown towers are refused', async (t) => {
  const config = await readJson('config.json');
  const variants: [string, object, RegExp][] = [
    ['layer', { ...config, vision_feature_layer: -2 }, /vision_feature_layer is -2.*use -1/],
    ['strategy', { ...config, vision_feature_select_strategy: 'default' }, /no CLS row.*'full'/],
    ['type', { ...config, vision_config: { ...config.vision_config, model_type: 'siglip_vision_model' } }, /vision_config\.model_type 'siglip_vision_model' is not supported/],
    ['size', { ...config, vision_config: { ...config.vision_config, image_size: 256 } }, /image_size 256 is not supported/],
  ];
  for (const [name, changed, message] of variants) {
    const checkpoint = join(work, `config-${name}`);
    await mkdir(checkpoint);
    await writeFile(join(checkpoint, 'config.json'), JSON.stringify(changed));
    const err = await runTrainer(['export', '--checkpoint', checkpoint, '--out', join(work, `out-${name}`)]).then(
      () => null,
      (e: Error) => e,
    );
    t.match(err?.message, /exited 2/, `${name}: export refuses it`);
    t.match(err?.message, message, `${name}: and says why`);
  }
});

t.test('preprocessing stretches to 224 x 224 without a crop and only rescales', async (t) => {
  // Left half red, right half blue, 4:1: a centre crop would keep only the middle of it.
  const w = 400;
  const h = 100;
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) raw[i * 3 + (i % w < w / 2 ? 0 : 2)] = 255;
  const img = await runtime.preprocess(
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer(),
  );
  t.same([img.width, img.height, img.pixels.length], [224, 224, 3 * 224 * 224]);
  const at = (c: number, y: number, x: number) => img.pixels[c * 224 * 224 + y * 224 + x];
  t.same([at(0, 0, 0), at(2, 0, 0), at(0, 223, 100), at(2, 223, 100)], [1, 0, 1, 0], 'the left edge is in, red');
  t.same([at(0, 0, 223), at(2, 0, 223), at(0, 100, 124), at(2, 100, 124)], [0, 1, 0, 1], 'the right edge is in, blue');

  // A 224 x 224 image is not resampled: pixels are exactly value / 255.
  const gradient = await gradientPng(224, 224);
  const { data } = await sharp(gradient).raw().toBuffer({ resolveWithObject: true });
  const same = await runtime.preprocess(gradient);
  const want = new Float32Array(3 * 224 * 224);
  for (let i = 0; i < 224 * 224; i++) for (let c = 0; c < 3; c++) want[c * 224 * 224 + i] = data[i * 3 + c]! / 255;
  t.equal(maxAbs(same.pixels, want), 0, 'value / 255, no mean or std');
});

const cases = [
  { name: 'gradient', bytes: await gradientPng(), prompt: 'What is shown in this picture?' },
  { name: 'noise', bytes: await noiseJpeg(), prompt: 'Describe the colours, please.' },
  { name: 'shapes', bytes: await shapesWebp(), prompt: '' },
  { name: 'large', bytes: await gradientPng(640, 400), prompt: 'Is this safe?' }, // a downscale
];
const GREEDY = 12;

t.test('Node and PyTorch agree on pass 1 and greedy tokens', async (t) => {
  const images = await Promise.all(cases.map((c) => runtime.preprocess(c.bytes)));
  const pass1 = await runtime.classify(cases.map((c, i) => ({ image: images[i]!, prompt: c.prompt })));
  const graphs = runtime['graphs'];
  const shape = runtime['decoderShape'];
  const pass2 = { embed: graphs.embed_tokens, decoder: graphs.decoder };
  const request = { cases: [] as object[] };
  const node: { lastLogits: Float32Array; tokens: number[] }[] = [];
  for (const [i, c] of cases.entries()) {
    const prompt = runtime.text.chatPrompt(c.prompt, null);
    const state = DecoderState.empty(pass2, shape);
    const lastLogits = await state.step(await embedPrompt(pass2, shape, prompt.ids, pass1[i]!.imageFeatures), prompt.ids.length);
    const tokens: number[] = [];
    for await (const ev of runtime.chat({ imageFeatures: pass1[i]!.imageFeatures, prompt: c.prompt, hint: null, options: { maxNewTokens: GREEDY, temperature: 0 } })) {
      if (ev.type === 'token') tokens.push(ev.id);
    }
    node.push({ lastLogits, tokens });
    request.cases.push({ pixel_values: b64(images[i]!.pixels), input_ids: prompt.ids, query_ids: runtime.text.queryIds(c.prompt), max_new_tokens: GREEDY });
  }
  const reference = JSON.parse(await runTrainer(['reference', '--package', dir], JSON.stringify(request))) as {
    cases: { level_probs: number[]; type_probs: number[]; last_logits: string; greedy_tokens: number[] }[];
  };
  for (const [i, c] of cases.entries()) {
    const ref = reference.cases[i]!;
    const levelDiff = maxAbs(pass1[i]!.levelProbs, ref.level_probs);
    const typeDiff = maxAbs(pass1[i]!.typeProbs, ref.type_probs);
    const logitDiff = maxAbs(node[i]!.lastLogits, unb64(ref.last_logits));
    t.comment(`${c.name}: level ${levelDiff.toExponential(2)}, type ${typeDiff.toExponential(2)}, logits ${logitDiff.toExponential(2)}`);
    t.ok(levelDiff <= 1e-4, `${c.name}: level probabilities within 1e-4 (${levelDiff})`);
    t.ok(typeDiff <= 1e-4, `${c.name}: type probabilities within 1e-4 (${typeDiff})`);
    t.ok(logitDiff <= 1e-3, `${c.name}: last-position logits within 1e-3 (${logitDiff})`);
    t.same(node[i]!.tokens, ref.greedy_tokens, `${c.name}: same greedy tokens`);
    t.ok(node[i]!.tokens.length > 0, `${c.name}: generated something`);
  }
  t.not(pass1[0]!.typeProbs[0], pass1[1]!.typeProbs[0], 'different images, different concepts');
});

// The package's tower (PsaLlava.vision_features, loaded from model.safetensors, also after
// model.train()) and the converter's module (load_converted) on the very same pixels.
const TOWER_CHECK = `
import base64, json, sys
import numpy as np, torch
from trainer.io.hf_checkpoint import load_model
from trainer.convert.nsfwjs import load_converted
from trainer.modeling.mobilenet import preprocess
req = json.load(sys.stdin)
f32 = lambda s: torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype="<f4").copy())
x = f32(req["pixels"]).reshape(-1, 3, 224, 224)
tower, model = load_converted(req["converted"]), load_model(req["package"]).eval()
with torch.no_grad():
    out = tower(x)
    feats = model.vision_features(x)
    model.train()
    in_train = model.vision_features(x)
    # nsfwjs's own resize (bilinear, align_corners, in float) of the same decoded RGB, for comparison
    own = [tower(preprocess(torch.from_numpy(np.frombuffer(base64.b64decode(r["rgb"]), dtype=np.uint8).copy())
                            .reshape(r["height"], r["width"], 3))).probs[0] for r in req["rgb"]]
print(json.dumps({
    "rows": base64.b64encode(out.feature_rows.contiguous().numpy().astype("<f4").tobytes()).decode(),
    "package_vs_converted": float((feats - out.feature_rows).abs().max()),
    "train_mode_vs_eval": float((in_train - feats).abs().max()),
    "tower_modules_training": sum(m.training for m in model.vision_tower.modules()),
    "tower_requires_grad": sum(p.requires_grad for p in model.vision_tower.parameters()),
    "probs": out.probs.tolist(), "probs_nsfwjs_resize": [p.tolist() for p in own]}))
`;

function python(code: string, stdin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', code], { cwd: REPO_ROOT, env: { ...process.env, PYTHONPATH: REPO_ROOT }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python exited ${code}: ${err.slice(-2000)}`))));
    child.stdin.end(stdin);
  });
}

t.test("the package's vision features are the pretrained MobileNetV2's feature rows", async (t) => {
  const images = await Promise.all(cases.map((c) => runtime.preprocess(c.bytes)));
  const pixels = new Float32Array(cases.length * 3 * 224 * 224);
  images.forEach((img, i) => pixels.set(img.pixels, i * 3 * 224 * 224));
  const vision = await runtime['graphs'].vision_encoder.run({ pixel_values: new ort.Tensor('float32', pixels, [cases.length, 3, 224, 224]) });
  const features = vision.vision_features!;
  t.same(features.dims, [cases.length, 49, 1280]);
  const rgb = await Promise.all(
    cases.map(async (c) => {
      const { data, info } = await sharp(c.bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { rgb: data.toString('base64'), height: info.height, width: info.width };
    }),
  );
  const got = JSON.parse(await python(TOWER_CHECK, JSON.stringify({ pixels: b64(pixels), converted, package: dir, rgb }))) as {
    rows: string;
    package_vs_converted: number;
    train_mode_vs_eval: number;
    tower_modules_training: number;
    tower_requires_grad: number;
    probs: number[][];
    probs_nsfwjs_resize: number[][];
  };
  t.equal(got.package_vs_converted, 0, "PyTorch: the package tower gives load_converted's rows exactly");
  t.equal(got.train_mode_vs_eval, 0, 'model.train() changes nothing in the tower (BatchNorm stays frozen)');
  t.equal(got.tower_modules_training, 0, 'no tower module is in training mode after model.train()');
  t.equal(got.tower_requires_grad, 0, 'no tower parameter takes gradients');
  const onnxDiff = maxAbs(features.data as Float32Array, unb64(got.rows));
  t.comment(`vision features, ONNX (Node) vs load_converted: max abs diff ${onnxDiff.toExponential(2)} (ReLU6 range 0..6)`);
  t.ok(onnxDiff <= 1e-3, `ONNX vision features within 1e-3 of load_converted's rows (${onnxDiff})`);
  for (const [i, c] of cases.entries()) {
    const d = maxAbs(got.probs[i]!, got.probs_nsfwjs_resize[i]!);
    t.comment(`${c.name}: nsfwjs class probabilities, runtime resize vs nsfwjs's resize: max abs diff ${d.toExponential(2)}`);
  }
});

t.test('a stage-1 run trains the safety modules and leaves the tower as it was', async (t) => {
  const data = join(work, 'data');
  await promisify(execFile)(PYTHON, [join(REPO_ROOT, 'test/helpers/make_prepared_dataset.py'), '--package', dir, '--out', data, '--train', '8', '--shards', '1']);
  const workdir = join(work, 'run');
  const job = join(work, 'job.json');
  await writeFile(
    job,
    JSON.stringify({
      base: dir,
      data,
      workdir,
      stages: ['stage1'],
      stage1: { epochs: 1, lr: 3e-3, batch_size: 4, concept_weight: 10.0, weight_decay: 0.0 },
      seed: 0,
      checkpoint_every_steps: 100,
      device: 'cpu',
      max_steps: 2,
    }),
  );
  const events = (await runTrainer(['train', '--job', job]))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; [k: string]: unknown });
  const steps = events.filter((e) => e.event === 'step');
  t.equal(steps.length, 2, 'two steps');
  t.ok(
    steps.every((s) => Number.isFinite(s.loss)),
    `losses ${steps.map((s) => Number(s.loss).toFixed(3)).join(', ')}`,
  );
  const done = events.at(-1)!;
  t.equal(done.event, 'done');
  const before = await readSafetensorsFile(join(dir, 'model.safetensors'));
  const after = await readSafetensorsFile(join(done.output as string, 'model.safetensors'));
  const tower = towerTensors(before);
  t.ok(tower.length === 266 && tower.some((k) => k.endsWith('.running_mean')), 'weights and BatchNorm statistics');
  t.same(towerTensors(after), tower, 'the tower is saved under the same names');
  t.same(
    tower.filter((k) => !sameBytes(before.get(k)!, after.get(k)!)),
    [],
    'no tower tensor changed',
  );
  const psa = [...before.keys()].filter((k) => k.startsWith('psa.'));
  t.ok(
    psa.some((k) => !sameBytes(before.get(k)!, after.get(k)!)),
    'the safety modules did change',
  );
});

import t from 'tap';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadConfig } from '../src/config.ts';
import { DEFAULT_IMAGE_LIMITS } from '../src/psa/image-config.ts';
import { PsaRuntime } from '../src/psa/runtime.ts';
import { preprocessImage } from '../src/psa/image-preprocess.ts';
import { loadPackage } from '../src/psa/package-loader.ts';
import { prepareDataset } from '../src/training/prepare.ts';
import { readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { runTrainer } from '../scripts/lib/trainer-cli.ts';
import { typographicPng } from '../scripts/default-model/render.ts';
import { gradientPng } from './helpers/images.ts';
import { b64, testApp } from './helpers/app.ts';

// A package built with --query-ocr: the text OCR reads in the image starts the safety head's
// query, in serving and in the prepared training data alike.
const work = await mkdtemp(join(tmpdir(), 'psa-ocr-query-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const pkgDir = join(work, 'reads');
await runTrainer(['build-random', '--size', 'tiny', '--seed', '3', '--query-ocr', '--name', 'psa-reads', '--out', pkgDir]);
const runtime = await PsaRuntime.load(pkgDir, { device: 'cpu' });
t.teardown(() => runtime.close());
const sign = await typographicPng('Steps to bake bread.');
const blank = await gradientPng(96, 64);
const { app } = await testApp({ PSA_MODEL: pkgDir });
t.teardown(() => app.close());

t.test('the package says it reads images; the runtime reads them and puts the text in the query', async (t) => {
  const m = runtime.pkg.manifest;
  t.same(m.ocr, { engine: 'pp-ocrv4', max_text_tokens: 64 });
  t.equal(m.text.max_query_tokens, 128, 'room for the image text and the prompt');
  t.ok(runtime.ocr, 'OCR loaded with the package');
  const image = await runtime.preprocess(sign);
  t.match(image.text, /^Steps to bake\sbread\.\n1\.\n2\.\n3\.$/, 'the text in the image, rows on lines (FigStep layout: the sentence, then an empty list)');
  const read = image.text!;
  const codec = runtime.text;
  const withText = codec.queryIds('What is this?', read);
  const promptOnly = codec.queryIds('What is this?');
  t.same(withText.slice(-promptOnly.length + 1), promptOnly.slice(1), 'the prompt comes last');
  t.same(withText.slice(1, 1 + codec.encode(`${read}\n`).length), codec.encode(`${read}\n`), 'the image text first');
  t.same(codec.queryIds('What is this?', '   '), promptOnly, 'no text: the query of a package without OCR');
  const [withOcr, without] = await runtime.classify([
    { image, prompt: 'What is this?' },
    { image: { ...image, text: '' }, prompt: 'What is this?' },
  ]);
  t.not(withOcr!.levelProbs.join(), without!.levelProbs.join(), 'the text changes what the safety head sees');
  t.equal((await runtime.preprocess(blank)).text, '', 'an image without text reads as empty');
});

t.test('one decode feeds both the vision encoder and OCR, alpha handled as each needs', async (t) => {
  // Text on a transparent background: the vision encoder keeps the stored colour (alpha dropped),
  // OCR reads it over white. Decoded once, each must see what a decode of its own gave it.
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="420" height="110"><text x="20" y="70" font-family="DejaVu Sans" font-size="48" fill="black">safety first</text></svg>';
  const rgba = await sharp(Buffer.from(svg)).png().toBuffer();
  t.equal((await sharp(rgba).metadata()).channels, 4);
  for (const bytes of [rgba, sign]) {
    const image = await runtime.preprocess(bytes);
    const own = await preprocessImage(bytes, runtime.pkg.preprocess, DEFAULT_IMAGE_LIMITS);
    t.same(Array.from(image.pixels), Array.from(own.pixels), "the vision encoder's pixels");
    t.same(image.source, own.source);
    t.equal(image.text, (await runtime.ocr!.read(bytes)).text, 'the text OCR reads from the bytes');
  }
  t.equal((await runtime.preprocess(rgba)).text, 'safety first');
});

t.test('/v1/moderate reports the text it read', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(sign), prompt: 'What is this?' } });
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json().items[0].image_text, /^Steps to bake\sbread\./);
  const stages = res.json().timings.stages_ms;
  for (const name of ['decode', 'ocr_detect', 'ocr_recognize', 'vision', 'head', 'query']) t.ok(stages[name] > 0, `${name} timed (${stages[name]} ms)`);
  const text = (await app.inject('/metrics')).body;
  t.match(text, /psa_stage_seconds_count\{stage="ocr_recognize"\} [1-9]/, 'OCR recognition in /metrics');
});

t.test('prepared training data carries the same query as serving', async (t) => {
  const ds = join(work, 'dataset');
  await mkdir(join(ds, 'images'), { recursive: true });
  await writeFile(join(ds, 'images', 'sign.png'), sign);
  const pkg = await loadPackage(pkgDir);
  const example = { id: 'a', image: 'images/sign.png', prompt: 'What is this?', answer: 'Bread.', safe_type: 6, safe_level: 0 };
  const out = join(work, 'prepared');
  await prepareDataset(pkg, ds, { train: [example] }, out, { maxImagePixels: 40_000_000 });
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
  const shard = await readSafetensorsFile(join(out, manifest.splits.train.shards[0]));
  const query = Array.from(shard.get('query_ids')!.data as BigInt64Array, Number);
  const expected = runtime.text.queryIds('What is this?', (await runtime.preprocess(sign)).text);
  t.same(query.slice(0, expected.length), expected);
});

t.test('a text-only item reads nothing: no OCR, the query is BOS + the prompt, served and prepared alike', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { prompt: 'Steps to bake bread.' } });
  t.equal(res.statusCode, 200, res.body);
  const item = res.json().items[0];
  t.equal(item.has_image, false);
  t.notOk('image_text' in item, 'OCR did not run');
  t.equal((await runtime.prepareImage(null)).text, undefined);
  const ds = join(work, 'dataset-text');
  await mkdir(ds, { recursive: true });
  const out = join(work, 'prepared-text');
  await prepareDataset(await loadPackage(pkgDir), ds, { train: [{ id: 'a', prompt: 'Steps to bake bread.', answer: 'Bread.', safe_type: 6, safe_level: 0 }] }, out, { maxImagePixels: 40_000_000 });
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
  const shard = await readSafetensorsFile(join(out, manifest.splits.train.shards[0]));
  t.same(Array.from(shard.get('query_ids')!.data as BigInt64Array, Number), runtime.text.queryIds('Steps to bake bread.'));
});

t.test("the runtime's OCR takes the runtime's image limits, whose defaults are the config's", async (t) => {
  const config = loadConfig({});
  t.same(DEFAULT_IMAGE_LIMITS, { maxInputBytes: config.MAX_IMAGE_BYTES, maxInputPixels: config.MAX_IMAGE_PIXELS });
  // A white image stored without compression: over the 10 MiB default, few pixels of text to find.
  const big = await sharp({ create: { width: 2000, height: 1900, channels: 3, background: '#ffffff' } })
    .png({ compressionLevel: 0 })
    .toBuffer();
  t.ok(big.length > DEFAULT_IMAGE_LIMITS.maxInputBytes, `${big.length} bytes`);
  await t.rejects(runtime.preprocess(big), { code: 'PSA_IMAGE_TOO_LARGE' }, 'the default limit refuses it');
  const roomy = await PsaRuntime.load(pkgDir, { device: 'cpu', limits: { maxInputBytes: 2 * big.length } });
  t.teardown(() => roomy.close());
  const image = await roomy.preprocess(big);
  t.equal(image.text, '', 'vision preprocessing and OCR both accept it under the raised limit');
});

import t from 'tap';
import sharp, { type Sharp } from 'sharp';
import { readFile } from 'node:fs/promises';
import { preprocessConfigFromHf, preprocessImage, type ImagePreprocessConfig } from '../src/psa/image-preprocess.ts';
import { parseSafetensors, readSafetensorsFile } from '../src/psa/safetensors-read.ts';
import { PsaErrorCodes, isPsaError } from '../src/psa/errors.ts';

const REF = '/work/shared/data/hf-tiny-llava';
const limits = { maxInputPixels: 4_000_000, maxInputBytes: 8_000_000 };
const cfg: ImagePreprocessConfig = {
  shortestEdge: 56,
  cropSize: { height: 56, width: 56 },
  doCenterCrop: true,
  resample: 'bicubic',
  rescaleFactor: 1 / 255,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
};

// An asymmetric pattern (so rotations and crops are visible) of smooth colour gradients.
function pattern(w: number, h: number, channels: 3 | 4 = 3): Buffer {
  const buf = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * channels;
      buf[i] = Math.round((255 * x) / w);
      buf[i + 1] = Math.round((255 * y) / h);
      buf[i + 2] = x < w / 3 && y < h / 2 ? 230 : 20;
      if (channels === 4) buf[i + 3] = x < w / 2 ? 0 : 255;
    }
  return buf;
}
const fromRaw = (buf: Uint8Array, w: number, h: number, channels: 3 | 4 = 3) => sharp(buf, { raw: { width: w, height: h, channels } });

function diff(a: Float32Array, b: Float32Array): { mean: number; max: number } {
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}

async function rejects(tt: Asserts, bytes: Uint8Array, code: string, lim = limits) {
  try {
    await preprocessImage(bytes, cfg, lim);
    tt.fail(`expected ${code}`);
  } catch (err) {
    tt.ok(isPsaError(err), 'is a PsaError');
    tt.equal((err as { code?: string }).code, code, (err as Error).message);
  }
}
type Asserts = Pick<typeof t, 'ok' | 'equal' | 'fail'>;

t.test('config from processor_config.json (nested) and preprocessor_config.json', async (tt) => {
  const nested = preprocessConfigFromHf(JSON.parse(await readFile(`${REF}/processor_config.json`, 'utf8')));
  tt.same(nested, cfg);
  tt.same(preprocessConfigFromHf({ size: { height: 384, width: 384 }, do_center_crop: false, resample: 2, image_mean: 0.5, image_std: 0.5 }), {
    shortestEdge: 0,
    cropSize: { height: 384, width: 384 },
    doCenterCrop: false,
    resample: 'bilinear',
    rescaleFactor: 1 / 255,
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
    resizeTo: { height: 384, width: 384 },
  });
  tt.same(preprocessConfigFromHf({ size: 224, crop_size: 224, do_rescale: false, do_normalize: false, resample: 0 }), {
    shortestEdge: 224,
    cropSize: { height: 224, width: 224 },
    doCenterCrop: true,
    resample: 'nearest',
    rescaleFactor: 1,
    imageMean: [0, 0, 0],
    imageStd: [1, 1, 1],
  });
  const bad: [unknown, string][] = [
    [null, '(root)'],
    [{ size: { shortest_edge: -1 }, crop_size: 1 }, 'size.shortest_edge'],
    [{ size: { foo: 1 } }, 'size'],
    [{ size: 224 }, 'crop_size'],
    [{ size: 224, crop_size: { height: 2 } }, 'crop_size.width'],
    [{ size: 224, crop_size: 224, resample: 1 }, 'resample'],
    [{ size: 224, crop_size: 224, image_std: [1, 0, 1] }, 'image_std'],
    [{ size: 224, crop_size: 224, image_mean: [1, 2] }, 'image_mean'],
    [{ size: 224, crop_size: 224, rescale_factor: '1/255' }, 'rescale_factor'],
    [{ size: 224, crop_size: 224, do_resize: 'yes' }, 'do_resize'],
  ];
  for (const [json, field] of bad) {
    tt.throws(() => preprocessConfigFromHf(json), { code: PsaErrorCodes.PACKAGE_CONFIG_INVALID, details: { field } }, field);
  }
});

t.test('matches transformers CLIPImageProcessor on the reference cases', async (tt) => {
  const refCfg = preprocessConfigFromHf(JSON.parse(await readFile(`${REF}/processor_config.json`, 'utf8')));
  const outputs = await readSafetensorsFile(`${REF}/reference/outputs.safetensors`);
  for (const name of ['figstep', 'gradient', 'noise']) {
    const ref = outputs.get(`${name}.pixel_values`);
    tt.ok(ref, `${name}.pixel_values present`);
    tt.same(ref!.shape, [1, 3, 56, 56]);
    const got = await preprocessImage(await readFile(`${REF}/reference/${name}.png`), refCfg, limits);
    tt.equal(got.pixels.length, 3 * 56 * 56);
    const d = diff(got.pixels, ref!.data as Float32Array);
    tt.comment(`${name} (${got.source.width}x${got.source.height}): mean abs diff ${d.mean.toExponential(2)}, max ${d.max.toExponential(2)}`);
    // The resampler reproduces torch's uint8 antialiased bicubic exactly; what is left is float rounding.
    tt.ok(d.max < 1e-5, `${name} max abs diff ${d.max} < 1e-5`);
    tt.ok(d.mean < 1e-6, `${name} mean abs diff ${d.mean} < 1e-6`);
  }
});

t.test('solid colours map exactly to (c * rescale - mean) / std', async (tt) => {
  for (const [r, g, b] of [
    [0, 0, 0],
    [255, 255, 255],
    [12, 200, 99],
  ] as const) {
    const png = await sharp({ create: { width: 100, height: 40, channels: 3, background: { r, g, b } } })
      .png()
      .toBuffer();
    const out = await preprocessImage(png, cfg, limits);
    const plane = out.height * out.width;
    [r, g, b].forEach((v, c) => {
      const want = Math.fround((v * cfg.rescaleFactor - cfg.imageMean[c]!) / cfg.imageStd[c]!);
      const values = new Set(out.pixels.subarray(c * plane, (c + 1) * plane));
      tt.same(
        [...values].map((x) => Math.abs(x - want) < 1e-6),
        [true],
        `channel ${c} of rgb(${r},${g},${b})`,
      );
    });
  }
});

t.test('non-square inputs: shortest edge resized, centre crop', async (tt) => {
  for (const [w, h] of [
    [100, 40],
    [40, 100],
    [20, 30],
    [56, 300],
  ] as const) {
    const out = await preprocessImage(await fromRaw(pattern(w, h), w, h).png().toBuffer(), cfg, limits);
    tt.equal(out.width, 56);
    tt.equal(out.height, 56);
    tt.equal(out.pixels.length, 3 * 56 * 56);
    tt.same(out.source, { format: 'png', width: w, height: h }, `${w}x${h}`);
  }
  const wide = await preprocessImage(await fromRaw(pattern(100, 40), 100, 40).png().toBuffer(), { ...cfg, doCenterCrop: false }, limits);
  tt.same([wide.width, wide.height], [140, 56], 'no crop: 100x40 -> int(56 * 100 / 40) x 56');
  // crop larger than the image: zero padding (pixel value 0), image centred
  const small = await preprocessImage(await fromRaw(pattern(100, 40), 100, 40).png().toBuffer(), { ...cfg, shortestEdge: 20, cropSize: { height: 30, width: 30 } }, limits);
  tt.equal(small.pixels[0], Math.fround(-cfg.imageMean[0] / cfg.imageStd[0]), 'padding is pixel value 0');
});

t.test('nearest and bilinear kernels; large downscales (libvips path)', async (tt) => {
  // nearest follows torch: source index floor(dst * in / out), so 112 -> 56 takes the even columns.
  const ramp = Buffer.alloc(112 * 112 * 3);
  for (let i = 0; i < 112 * 112; i++) ramp[i * 3] = i % 112;
  const near = await preprocessImage(await fromRaw(ramp, 112, 112).png().toBuffer(), { ...cfg, resample: 'nearest' }, limits);
  const red = Array.from(near.pixels.subarray(0, 56), (v) => Math.round((v * cfg.imageStd[0] + cfg.imageMean[0]) * 255));
  tt.same(
    red,
    Array.from({ length: 56 }, (_, i) => 2 * i),
  );
  const img = await fromRaw(pattern(300, 200), 300, 200).png().toBuffer();
  const cubic = await preprocessImage(img, cfg, limits);
  const linear = await preprocessImage(img, { ...cfg, resample: 'bilinear' }, limits);
  const d = diff(cubic.pixels, linear.pixels);
  tt.ok(d.mean > 0 && d.mean < 0.02, `bilinear close to bicubic on a smooth image (mean ${d.mean.toFixed(4)})`);
  // 3000x2000 is past the JS budget: libvips resizes. Compare with the exact path on a half-size copy.
  const big = await preprocessImage(await fromRaw(pattern(3000, 2000), 3000, 2000).png().toBuffer(), cfg, { ...limits, maxInputPixels: 10e6 });
  const half = await preprocessImage(await fromRaw(pattern(1500, 1000), 1500, 1000).png().toBuffer(), cfg, limits);
  const dd = diff(big.pixels, half.pixels);
  tt.comment(`3000x2000 (libvips) vs 1500x1000 (exact): mean ${dd.mean.toFixed(4)}, max ${dd.max.toFixed(4)}`);
  tt.ok(dd.mean < 0.02, 'libvips path agrees with the exact path');
});

t.test('formats: RGBA, greyscale, JPEG, WebP, GIF, CMYK', async (tt) => {
  const w = 90;
  const h = 70;
  const base = await preprocessImage(await fromRaw(pattern(w, h), w, h).png().toBuffer(), cfg, limits);
  // RGBA: alpha is dropped and the stored RGB kept, even under fully transparent pixels (PIL convert('RGB')).
  const rgba = await preprocessImage(
    await fromRaw(pattern(w, h, 4), w, h, 4)
      .png()
      .toBuffer(),
    cfg,
    limits,
  );
  tt.same(diff(rgba.pixels, base.pixels).max, 0, 'RGBA equals RGB');
  const grey = await fromRaw(pattern(w, h), w, h).toColourspace('b-w').png().toBuffer();
  tt.equal((await sharp(grey).metadata()).channels, 1);
  const g = await preprocessImage(grey, cfg, limits);
  const plane = 56 * 56;
  tt.same(
    diff(
      g.pixels.subarray(0, plane).map((v) => v * cfg.imageStd[0] + cfg.imageMean[0]),
      g.pixels.subarray(plane, 2 * plane).map((v) => v * cfg.imageStd[1] + cfg.imageMean[1]),
    ).max < 1e-5,
    true,
    'grey -> equal R and G',
  );
  for (const [name, enc, tol] of [
    ['jpeg', (s: Sharp) => s.jpeg({ quality: 95 }), 0.1],
    ['webp', (s: Sharp) => s.webp({ lossless: true }), 1e-6],
    ['gif', (s: Sharp) => s.gif(), 0.5],
    ['tiff', (s: Sharp) => s.tiff({ compression: 'lzw' }), 1e-6], // sharp's default TIFF compression is JPEG
  ] as const) {
    const out = await preprocessImage(await enc(fromRaw(pattern(w, h), w, h)).toBuffer(), cfg, limits);
    const d = diff(out.pixels, base.pixels);
    tt.equal(out.source.format, name);
    tt.ok(d.mean < tol, `${name}: mean diff ${d.mean.toFixed(4)} to PNG`);
  }
  const cmyk = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3366cc' } })
    .toColourspace('cmyk')
    .jpeg()
    .toBuffer();
  const c = await preprocessImage(cmyk, cfg, limits);
  const red = c.pixels[0]! * cfg.imageStd[0] + cfg.imageMean[0];
  const blue = c.pixels[2 * plane]! * cfg.imageStd[2] + cfg.imageMean[2];
  tt.ok(blue > red + 0.3, `CMYK converted to sRGB (r=${red.toFixed(2)}, b=${blue.toFixed(2)})`);
});

t.test('animated GIF and WebP: only the first frame', async (tt) => {
  const first = await fromRaw(pattern(48, 36), 48, 36).png().toBuffer();
  const second = await sharp({ create: { width: 48, height: 36, channels: 3, background: '#00ff00' } })
    .png()
    .toBuffer();
  const want = await preprocessImage(first, cfg, limits);
  for (const fmt of ['gif', 'webp'] as const) {
    const frames = sharp([first, second], { join: { animated: true } });
    const anim = await (fmt === 'gif' ? frames.gif() : frames.webp({ lossless: true })).toBuffer();
    const out = await preprocessImage(anim, cfg, limits);
    tt.equal(out.source.pages, 2, `${fmt} has 2 pages`);
    tt.equal(out.source.height, 36, `${fmt} height is one frame`);
    const d = diff(out.pixels, want.pixels);
    tt.ok(d.mean < (fmt === 'gif' ? 0.5 : 1e-6), `${fmt}: first frame (mean diff ${d.mean.toFixed(4)})`);
  }
});

t.test('EXIF orientation is applied', async (tt) => {
  const w = 80;
  const h = 60;
  const upright = await preprocessImage(await fromRaw(pattern(w, h), w, h).jpeg({ quality: 95 }).toBuffer(), cfg, limits);
  // Orientation 6 means "rotate 90 deg clockwise to display": store the image rotated the other way.
  const stored = await fromRaw(pattern(w, h), w, h).rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  const out = await preprocessImage(stored, cfg, limits);
  tt.equal(out.source.orientation, 6);
  tt.same([out.source.width, out.source.height], [h, w], 'source size is as stored');
  const d = diff(out.pixels, upright.pixels);
  tt.ok(d.mean < 0.05, `rotated equals upright (mean ${d.mean.toFixed(4)}, max ${d.max.toFixed(3)})`);
});

t.test('errors', async (tt) => {
  await rejects(tt, new Uint8Array(0), PsaErrorCodes.EMPTY_IMAGE);
  const noise = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
  await rejects(tt, noise, PsaErrorCodes.INVALID_IMAGE);
  await rejects(tt, Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'), PsaErrorCodes.INVALID_IMAGE);
  const raw = pattern(64, 48).map((v, i) => v ^ ((i * 2654435761) >>> 26)); // noisy, so the data is long
  for (const enc of [(s: Sharp) => s.png(), (s: Sharp) => s.jpeg()]) {
    const full = await enc(fromRaw(raw, 64, 48)).toBuffer();
    await rejects(tt, full.subarray(0, full.length >> 1), PsaErrorCodes.INVALID_IMAGE);
  }
  const big = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#000' } })
    .png()
    .toBuffer();
  await rejects(tt, big, PsaErrorCodes.IMAGE_TOO_LARGE, { maxInputPixels: 5_000_000, maxInputBytes: 1e9 });
  await rejects(tt, big, PsaErrorCodes.IMAGE_TOO_LARGE, { maxInputPixels: 1e9, maxInputBytes: big.length - 1 });
  const extreme = await sharp({ create: { width: 4000, height: 1, channels: 3, background: '#000' } })
    .png()
    .toBuffer();
  await rejects(tt, extreme, PsaErrorCodes.IMAGE_TOO_LARGE, { maxInputPixels: 100_000, maxInputBytes: 1e9 });
});

t.test('safetensors reader', async (tt) => {
  const header = JSON.stringify({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] }, c: { dtype: 'I64', shape: [1], data_offsets: [6, 14] } });
  const data = Buffer.from([0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const file = Buffer.concat([len, Buffer.from(header), data]);
  const m = parseSafetensors(file);
  tt.same(Array.from(m.get('a')!.data as Float32Array), [1, -2]);
  tt.same(Array.from(m.get('b')!.data as Float32Array), [1]);
  tt.same(Array.from(m.get('c')!.data as BigInt64Array), [-1n]);
  tt.throws(() => parseSafetensors(file.subarray(0, 5)), { code: PsaErrorCodes.PACKAGE_TENSOR_MISMATCH });
  tt.throws(() => parseSafetensors(file.subarray(0, file.length - 1)), /data_offsets/);
  tt.throws(() => parseSafetensors(Buffer.concat([len, Buffer.from(header.replace('{', '['))])), /JSON/);
});

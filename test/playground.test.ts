import t from 'tap';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Page } from 'playwright-core';
import { randomPackage, tinyPackage } from '../scripts/lib/random-package.ts';
import { REPO_ROOT } from '../scripts/lib/trainer-cli.ts';
import { typographicPng } from '../scripts/default-model/render.ts';
import { testApp } from './helpers/app.ts';
import { browserUnavailable, launchChromium } from './helpers/browser.ts';
import { writeTinyDataset } from './helpers/dataset.ts';
import { gradientPng } from './helpers/images.ts';
import { testRedis } from './helpers/redis.ts';

// The playground in Debian's Chromium against a real listening server: a package that reads
// text in images (OCR) with a decoder large enough (the `small` shape, ~35 tokens/s here) that a
// long answer is still streaming when Stop is pressed; real Redis for the training queue.
const unavailable = browserUnavailable();
if (unavailable && 'skip' in unavailable) t.plan(0, unavailable.skip);
else if (unavailable) t.fail(unavailable.fail);
else await main();

async function main() {
  const SHOTS = join(REPO_ROOT, '.cache', 'playground');
  await mkdir(SHOTS, { recursive: true });
  const ADMIN = 'playground-admin-key-0001';
  const redis = await testRedis();
  t.teardown(() => redis.stop());
  const root = await mkdtemp(join(tmpdir(), 'psa-playground-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const modelsDir = join(root, 'models');
  await cp(await randomPackage('small', 0, 'clip', { queryOcr: true }), join(modelsDir, 'reads'), { recursive: true });
  await cp(await tinyPackage(), join(modelsDir, 'plain'), { recursive: true });
  // Evaluation metrics as a training job registers them (psa.json's provenance).
  const plainManifest = join(modelsDir, 'plain', 'psa.json');
  const manifest = JSON.parse(await readFile(plainManifest, 'utf8'));
  manifest.provenance = { ...manifest.provenance, status: 'trained', metrics: { level_accuracy: 0.874, type_accuracy: 0.8125, refusal_rate_on_safe: 0 } };
  await writeFile(plainManifest, JSON.stringify(manifest, null, 2));
  const dataDir = join(root, 'data');
  await writeTinyDataset(join(dataDir, 'colours'));

  const logLines: { msg?: string; completion?: number }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  const { app } = await testApp(
    { PSA_MODEL: 'reads', MODELS_DIR: modelsDir, DATA_DIR: dataDir, REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, API_KEYS: `${ADMIN}=admin`, PLAYGROUND: 'on', MAX_NEW_TOKENS: '512' },
    { level: 'info', stream: sink },
  );
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };

  const browser = await launchChromium();
  t.teardown(() => browser.close());
  // Anything that would mean a script ran, or the page broke: dialogs, uncaught errors, console
  // errors. Chromium logs every 4xx answer as "Failed to load resource"; the wrong key and the
  // bad policy cause those on purpose, so they alone are left out.
  const problems: string[] = [];
  const watch = (page: Page) => {
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d /.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    return page;
  };
  const page = watch(await browser.newPage({ viewport: { width: 1280, height: 800 } }));
  const png = (name: string, buffer: Buffer) => ({ name, mimeType: 'image/png', buffer });
  const bread = png('bread.png', await typographicPng('Steps to bake bread.'));
  const shot = (name: string, p: Page = page) => p.screenshot({ path: join(SHOTS, name), fullPage: true });
  const useKey = async (p: Page, key: string) => {
    await p.fill('#api-key', key);
    await p.press('#api-key', 'Enter');
  };

  t.test('/ redirects to the page; every control has a label; keyboard focus is visible', async (t) => {
    await page.goto(`${base}/`);
    t.equal(new URL(page.url()).pathname, '/playground');
    t.equal(await page.title(), 'psa-guard playground');
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea, button')]
        .filter((el) => {
          const named = el.getAttribute('aria-label') || (el as HTMLInputElement).labels?.length || (el.tagName === 'BUTTON' && el.textContent!.trim());
          return !named;
        })
        .map((el) => el.id || el.outerHTML),
    );
    t.same(unlabelled, [], 'every input, select, textarea and button has a label');
    await page.focus('#api-key');
    await page.keyboard.press('Tab');
    t.equal(await page.evaluate(() => document.activeElement?.id), 'key-save', 'Tab moves from the key to its button');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    t.equal(outline, 'solid', 'the focused control shows an outline');
  });

  t.test('a wrong key shows the error message, not a blank page', async (t) => {
    await useKey(page, 'not-the-right-key-at-all');
    await page.setInputFiles('#images', bread);
    await page.click('#moderate');
    await page.waitForSelector('#error:not([hidden])');
    const error = await page.textContent('#error');
    t.match(error, /PSA_UNAUTHORIZED: the API key is not valid/);
    t.match(await page.textContent('#models-state'), /PSA_UNAUTHORIZED/, 'the models panel says why it is empty');
    t.equal(await page.locator('.card').count(), 0);
    await shot('wrong-key-1280.png');
  });

  t.test('moderation: bars, decision, flag, OCR text, hint and timings, as the API answers', async (t) => {
    await useKey(page, ADMIN);
    t.equal(await page.evaluate(() => sessionStorage.getItem('psa-guard.api-key')), ADMIN, 'the key is kept in session storage');
    t.equal(await page.inputValue('#api-key'), '', 'and not left in the field');
    await page.focus('#moderate');
    await page.keyboard.press('Enter');
    const card = page.locator('.card').first();
    await card.waitFor();
    t.equal(await page.isHidden('#error'), true);
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(bread.buffer)], { type: 'image/png' }), 'bread.png');
    form.append('prompt', await page.inputValue('#prompt'));
    const expected = (await (await fetch(`${base}/v1/moderate`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: form })).json()).items[0];
    t.equal(await card.locator('[data-decision]').textContent(), expected.decision, 'the decision the API gives');
    t.equal(await card.locator('.flagged, .not-flagged').textContent(), expected.flagged ? 'flagged' : 'not flagged');
    t.equal(await card.locator('.bar').count(), 11, '4 level bars and 7 type bars');
    for (const [group, key] of [
      ['level', 'Level'],
      ['type', 'Type'],
    ] as const) {
      for (const [label, p] of Object.entries(expected.concepts[group].scores as Record<string, number>)) {
        const bar = card.locator(`[aria-label="${key} probabilities"] [data-label="${label}"]`);
        t.equal(await bar.locator('.bar-value').textContent(), `${(p * 100).toFixed(1)}%`, `${group} ${label}`);
        t.ok(Math.abs(Number(await bar.locator('meter').getAttribute('value')) - p) < 1e-9);
      }
    }
    t.match(await card.locator('.ocr').textContent(), /^Steps to bake\sbread\./, 'the text OCR read');
    t.equal(await card.locator('.hint').textContent(), expected.hint ?? 'none');
    t.match(await page.textContent('#timings'), /^psa-small-ocr: total \d+ ms, preprocess and OCR \d+ ms, pass 1 \d+ ms, batch of 1$/);
  });

  t.test('several images: a grid with one result each', async (t) => {
    await page.setInputFiles('#images', [png('guitar.png', await typographicPng('Ways to learn the guitar.')), png('gradient.png', await gradientPng(160, 120))]);
    t.equal(await page.locator('#previews li').count(), 3);
    await page.click('#moderate');
    await page.waitForFunction(() => document.querySelectorAll('.card').length === 3);
    t.same(await page.locator('.card .file-name').allTextContents(), ['bread.png', 'guitar.png', 'gradient.png']);
    const texts = await page.locator('.card .ocr').allTextContents();
    t.match(texts[1], /^Ways to learn/);
    t.equal(texts[2], '(no text found)');
    await shot('moderation-1280.png');
  });

  t.test('chat: tokens stream in, Stop ends the stream and the server stops generating', async (t) => {
    await page.fill('#max-tokens', '512');
    await page.fill('#temperature', '1');
    const streamed = () =>
      page.evaluate(() => ({ chars: document.getElementById('answer')!.textContent!.length, tokens: Number(/Generating: (\d+) tokens/.exec(document.getElementById('chat-state')!.textContent!)?.[1] ?? 0) }));
    // Sampling at temperature 1 draws a fresh seed per request, and this random package's answer
    // can end (EOS) at any token: about 1 answer in 100 within 10 tokens. An answer that ends by
    // itself before the page sees it grow, or before the Stop click reaches the server, proves
    // nothing about Stop, so the page is asked again, up to 5 times. An answer that runs to its
    // length (Stop ignored) is never retried.
    let early = { chars: 0, tokens: 0 };
    let later = early;
    for (let attempt = 1; ; attempt++) {
      if (attempt > 5) throw new Error('5 answers in a row ended by themselves before Stop');
      await page.focus('#chat');
      await page.keyboard.press('Space');
      await page.waitForFunction(() => /Generating: (\d{2,}) tokens/.test(document.getElementById('chat-state')!.textContent!) || document.getElementById('chat-state')!.dataset.phase === 'done', undefined, {
        timeout: 60_000,
      });
      if ((await page.getAttribute('#chat-state', 'data-phase')) === 'done') continue;
      early = await streamed();
      await page.waitForFunction((n) => document.getElementById('answer')!.textContent!.length > n || document.getElementById('chat-state')!.dataset.phase === 'done', early.chars, { timeout: 30_000 });
      if ((await page.getAttribute('#chat-state', 'data-phase')) === 'done') continue;
      later = await streamed();
      t.ok(later.tokens > early.tokens && later.chars > early.chars, `the answer grows token by token (${early.tokens} then ${later.tokens} tokens)`);
      t.equal(await page.isEnabled('#stop'), true, 'Stop is enabled while streaming');
      await page.click('#stop');
      await page.waitForSelector('#chat-state[data-phase="stopped"], #chat-state[data-phase="done"]');
      if ((await page.getAttribute('#chat-state', 'data-phase')) === 'stopped') break;
      t.match(await page.textContent('#chat-state'), /Done \(eos\)/, 'an answer that beat the click ended by EOS, not by running to its length');
    }
    const shown = Number(/Stopped after (\d+) tokens\./.exec((await page.textContent('#chat-state'))!)?.[1]);
    t.ok(shown >= later.tokens, `the page says how many tokens came (${shown})`);
    const stopped = (await page.textContent('#answer'))!.length;
    const deadline = Date.now() + 15_000;
    while (!logLines.some((l) => l.msg === 'chat cancelled by the client') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const cancelled = logLines.find((l) => l.msg === 'chat cancelled by the client');
    const completion = cancelled?.completion ?? 512;
    t.ok(completion >= shown && completion < 512, `the server stopped generating (${completion} of 512 tokens)`);
    await new Promise((r) => setTimeout(r, 1000));
    t.equal((await page.textContent('#answer'))!.length, stopped, 'nothing arrives after Stop');
    t.equal(await page.isDisabled('#stop'), true);
    await shot('chat-stopped-1280.png');

    await page.fill('#max-tokens', '6');
    await page.click('#chat');
    await page.waitForSelector('#chat-state[data-phase="done"]');
    t.match(await page.textContent('#chat-state'), /Done \(length\): 6 tokens in \d+ ms/, 'a short answer runs to its end');
    t.ok(await page.locator('#chat-state [data-decision]').count(), 'the concepts come first, with the decision');
  });

  t.test('training jobs: the list, live progress, cancel', async (t) => {
    const ds = await api('POST', '/v1/datasets', { path: 'colours' });
    t.equal(ds.status, 201);
    const waiting = await api('POST', '/v1/train', { dataset: ds.json.id, output_name: 'pg-cancel' });
    t.equal(waiting.status, 202);
    await page.click('#jobs-refresh');
    const row = page.locator(`.job[data-id="${waiting.json.id}"]`);
    await row.waitFor();
    t.equal(await row.getAttribute('data-state'), 'waiting');
    await row.getByRole('button', { name: /Cancel/ }).click();
    await row.waitFor({ state: 'detached' });
    t.equal((await api('GET', `/v1/train/${waiting.json.id}`)).json.state, 'cancelled', 'the page cancelled the job');

    // A BullMQ worker on the same queue reports progress as the training worker does, one step
    // at a time, so the page's polling is seen to follow it.
    const { Worker } = await import('bullmq');
    const { QUEUE_NAME } = await import('../src/training/job-types.ts');
    const { workerRedis } = await import('../src/redis.ts');
    const connection = workerRedis(redis.url);
    let advance = () => {};
    const worker = new Worker(
      QUEUE_NAME,
      async (job) => {
        for (const step of [3, 8]) {
          await job.updateProgress({ phase: 'training', stage: 'stage1', step, total_steps: 10, epoch: 1, loss: 2 / step, level_acc: step / 10, type_acc: step / 20, eta_s: 10 - step, processes: 1 });
          await new Promise<void>((r) => (advance = r));
        }
        return { model_id: 'pg-live-v1', model_dir: '/unused', metrics: {} };
      },
      { connection, prefix: redis.prefix },
    );
    t.teardown(async () => {
      await worker.close();
      await connection.quit();
    });
    const live = await api('POST', '/v1/train', { dataset: ds.json.id, output_name: 'pg-live' });
    const job = page.locator(`.job[data-id="${live.json.id}"]`);
    for (const step of [3, 8]) {
      await page.waitForFunction(([id, s]) => document.querySelector(`.job[data-id="${id}"] progress`)?.getAttribute('value') === String(s), [live.json.id, step] as const, { timeout: 20_000 });
      t.match(await job.locator('.job-steps').textContent(), new RegExp(`^stage1: step ${step} of 10, about ${10 - step} s left$`), `step ${step} shown without a click`);
      if (step === 3) await shot('jobs-1280.png');
      advance();
    }
    await page.waitForSelector(`.job[data-id="${live.json.id}"][data-state="completed"]`, { timeout: 20_000 });
    t.match(await job.textContent(), /Registered as pg-live-v1/);
    t.equal(await job.locator('.job-steps').textContent(), 'finished');
    t.equal(await job.getByRole('button', { name: /Cancel/ }).count(), 0, 'a finished job has no Cancel');
  });

  t.test('models: metrics and Activate, from the table and from the picker', async (t) => {
    await page.click('#models-refresh');
    await page.waitForSelector('#models-table tr[data-id="plain"]');
    t.equal(await page.getAttribute('#models-table tr[data-id="reads"]', 'class'), 'active');
    t.same(await page.locator('#models-table tr[data-id="plain"] td').allTextContents(), ['trained', '87.4%', '81.3%', '0.0%', 'Activate'], 'status and metrics');
    await page.click('#models-table tr[data-id="plain"] button');
    await page.waitForSelector('#models-table tr.active[data-id="plain"]');
    t.match(await page.textContent('#models-state'), /Now serving plain \(was reads\)/);
    t.equal((await api('GET', '/v1/models')).json.active, 'plain');
    await page.selectOption('#model', 'reads');
    await page.click('#model-activate');
    await page.waitForSelector('#models-table tr.active[data-id="reads"]');
    t.equal((await api('GET', '/v1/models')).json.active, 'reads');
  });

  t.test('drop and paste add images; a concept intervention changes the decision', async (t) => {
    while (await page.locator('#previews button').count()) await page.locator('#previews button').first().click();
    const bytes = bread.buffer.toString('base64');
    await page.evaluate((b64) => {
      const file = (name: string) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: 'image/png' });
      const dropped = new DataTransfer();
      dropped.items.add(file('dropped.png'));
      document.getElementById('drop')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
      const pasted = new DataTransfer();
      pasted.items.add(file('pasted.png'));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true }));
    }, bytes);
    t.same(await page.locator('#previews li span').allTextContents(), ['dropped.png', 'pasted.png']);
    await page.locator('#advanced summary').click();
    await page.selectOption('#intervene-level', 'refuse');
    await page.selectOption('#intervene-type', 'privacy');
    await page.click('#moderate');
    await page.waitForFunction(() => document.querySelectorAll('.card').length === 2 && document.querySelector('.card .file-name')?.textContent === 'dropped.png');
    const card = page.locator('.card').first();
    t.equal(await card.locator('[data-decision]').textContent(), 'refuse');
    t.equal(await card.locator('.flagged').count(), 1, 'flagged');
    t.match(await card.locator('.decision').textContent(), /applied: refuse \/ privacy \(intervened\)/);
    t.match(await card.locator('.hint').textContent(), /refuse/i);
    await page.selectOption('#intervene-level', '');
    await page.selectOption('#intervene-type', '');
    await page.locator('#advanced summary').click();
  });

  t.test('text that looks like HTML stays text: OCR, file names, error messages', async (t) => {
    const markup = '<img src=x onerror=alert(1)>';
    while (await page.locator('#previews button').count()) await page.locator('#previews button').first().click();
    await page.setInputFiles('#images', png(`${markup}.png`, await typographicPng(markup)));
    await page.locator('#advanced summary').click();
    await page.fill('#policy', JSON.stringify({ decisions: { [markup]: { refuse: 'allow' } } }));
    await page.click('#moderate');
    await page.waitForSelector('#error:not([hidden])');
    t.match(await page.textContent('#error'), /PSA_INVALID_LABEL: .*<img src=x onerror=alert\(1\)>/, 'the error message shows the markup as text');
    await page.fill('#policy', '');
    await page.click('#moderate');
    await page.waitForFunction(() => document.querySelectorAll('.card').length === 1);
    t.match(await page.textContent('.card .ocr'), /<img src=x\sonerror=alert\(1\)>/, 'the OCR text, as text');
    t.equal(await page.textContent('.card .file-name'), `${markup}.png`);
    await page.fill('#max-tokens', '24');
    await page.click('#chat');
    await page.waitForSelector('#chat-state[data-phase="done"]');
    const injected = await page.evaluate(() => ({ imgX: document.querySelectorAll('img[src="x"]').length, handlers: document.querySelectorAll('[onerror]').length }));
    t.same(injected, { imgX: 0, handlers: 0 }, 'no element was made from the text');
    t.same(problems, [], 'no dialog, no page error, no console error');
    await shot('markup-as-text-1280.png');

    // Were markup ever to slip in, the Content-Security-Policy would still not run its handler.
    await page.evaluate((m) => document.body.insertAdjacentHTML('beforeend', m.replace('alert(1)', 'window.ran=1')), markup);
    await page.waitForTimeout(500);
    t.equal(await page.evaluate(() => (window as unknown as { ran?: number }).ran), undefined, 'an inline handler is refused');
    t.ok(
      problems.some((p) => /Content Security Policy/.test(p)),
      'Chromium reports the policy refused it',
    );
    t.equal(problems.filter((p) => p.startsWith('dialog')).length, 0);
  });

  t.test('a phone-width screen: one column, nothing wider than the screen', async (t) => {
    const phone = watch(await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }));
    t.teardown(() => phone.close());
    await phone.goto(`${base}/playground`);
    await useKey(phone, ADMIN);
    await phone.setInputFiles('#images', bread);
    await phone.click('#moderate');
    await phone.locator('.card').waitFor();
    await phone.fill('#max-tokens', '12');
    await phone.click('#chat');
    await phone.waitForSelector('#chat-state[data-phase="done"]');
    await phone.locator('.job').first().waitFor();
    t.equal(await phone.evaluate(() => document.documentElement.scrollWidth), 390, 'no horizontal scrolling');
    const [input, results] = await Promise.all(['#input', '#results'].map((s) => phone.locator(s).boundingBox()));
    t.ok(input && results && results.y >= input.y + input.height, 'results sit below the input');
    t.equal(await page.evaluate(() => document.documentElement.scrollWidth), 1280, 'nor at 1280 px');
    await shot('phone-390.png', phone);
  });
}

import t from 'tap';
import { b64, multipartBody, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

// A multipart chat is the JSON body in another encoding: the same checks, codes and messages.
const { app } = await testApp({ MAX_NEW_TOKENS: '3' });
t.teardown(() => app.close());
const png = await gradientPng();
const image = { name: 'image', value: png, filename: 'a.png', type: 'image/png' };

const form = (fields: Record<string, string>) => {
  const body = multipartBody([image, { name: 'prompt', value: 'Describe it.' }, ...Object.entries(fields).map(([name, value]) => ({ name, value }))]);
  return app.inject({ method: 'POST', url: '/v1/chat', payload: body.body, headers: { 'content-type': body.contentType } });
};
const json = (fields: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/chat', payload: { image: b64(png), prompt: 'Describe it.', ...fields } });
const failure = (res: { statusCode: number; json(): { error: { code: string; message: string } } }) => ({ status: res.statusCode, code: res.json().error.code, message: res.json().error.message });

t.test('a malformed or invalid intervene field fails as it does in JSON', async (t) => {
  for (const raw of ['garbage', '{"level":', '{"level": "bogus"}', '{"type": 99}', '"refuse"', 'null', '{"level": "safe", "extra": 1}']) {
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // JSON has no unparsable values: the nearest request sends the text as a string.
    }
    const viaForm = failure(await form({ intervene: raw }));
    t.equal(viaForm.status, 400, `${raw}: 400`);
    t.equal(viaForm.code, 'PSA_INVALID_LABEL', `${raw}: code`);
    t.same(viaForm, failure(await json({ intervene: value })), `${raw}: as in JSON`);
  }
});

t.test('/v1/moderate reads its intervene field the same way', async (t) => {
  const body = multipartBody([image, { name: 'intervene', value: 'garbage' }]);
  const viaForm = await app.inject({ method: 'POST', url: '/v1/moderate', payload: body.body, headers: { 'content-type': body.contentType } });
  const viaJson = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png), intervene: 'garbage' } });
  t.same(failure(viaForm), failure(viaJson));
  t.equal(failure(viaForm).code, 'PSA_INVALID_LABEL');
});

t.test('bad generation options give the same error in a form as in JSON', async (t) => {
  const cases: Record<string, unknown>[] = [
    { temperature: 99 },
    { top_k: 1.5 },
    { top_p: 0 },
    { seed: -1 },
    { stop: '' },
    { max_tokens: 0 },
    { max_tokens: 4 },
    { max_tokens: '2' },
    { stream: 'yes' },
    { frequency_penalty: 1 },
  ];
  for (const options of cases) {
    const viaJson = failure(await json(options));
    t.equal(viaJson.status, 400, `${JSON.stringify(options)}: 400 in JSON`);
    t.same(failure(await form({ options: JSON.stringify(options) })), viaJson, `${JSON.stringify(options)}: ${viaJson.code}`);
  }
  const overCap = failure(await form({ options: '{"max_tokens": 4}' }));
  t.same(overCap, { status: 400, code: 'PSA_INVALID_GENERATION_OPTION', message: 'max_tokens is at most 3 on this server' });
});

t.test('the options field holds generation options only', async (t) => {
  for (const options of ['{"intervene": {"level": "safe"}}', '{"prompt": "hi"}', '[]', 'garbage']) {
    const res = failure(await form({ options }));
    t.equal(res.status, 400, options);
    t.equal(res.code, 'PSA_BAD_REQUEST', options);
    t.match(res.message, /form field "options"/, options);
  }
});

t.test('a valid form answers with every default applied at the edge', async (t) => {
  const res = await form({ options: '{"temperature": 0}', intervene: '{"level": "safe"}' });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().applied.level, 'safe', 'the intervene field is applied');
  t.ok(res.json().usage.completion_tokens <= 3, "the package's max_new_tokens is cut to MAX_NEW_TOKENS");
  const viaJson = await json({ temperature: 0, intervene: { level: 'safe' } });
  t.equal(res.json().answer, viaJson.json().answer, 'the same answer as the JSON request');
});

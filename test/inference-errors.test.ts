import t from 'tap';
import { InferenceNotReadyError } from '../src/inference/errors.ts';
import { ModelNotFoundError } from '../src/packages/discovery.ts';
import { b64, testApp } from './helpers/app.ts';
import { gradientPng } from './helpers/images.ts';

// The inference layer throws its own errors; the error handler alone says how HTTP answers them.

const { app } = await testApp();
t.teardown(() => app.close());
const png = await gradientPng();

t.test('activating a package that is not there: a domain error, answered 404 PSA_MODEL_NOT_FOUND', async (t) => {
  await t.rejects(app.models.activate('no-such-model'), ModelNotFoundError);
  await t.rejects(app.models.activate('../etc'), ModelNotFoundError, 'an id that is not a directory name');
  const res = await app.inject({ method: 'POST', url: '/v1/models/no-such-model/activate' });
  t.equal(res.statusCode, 404);
  t.equal(res.json().error.code, 'PSA_MODEL_NOT_FOUND');
  t.match(res.json().error.message, /no model package "no-such-model"/);
});

t.test('a closing pool refuses work: 503 PSA_NOT_READY with Retry-After', async (t) => {
  const pool = app.models.active;
  await pool.close();
  await t.rejects(pool.moderateAll([]), InferenceNotReadyError);
  const res = await app.inject({ method: 'POST', url: '/v1/moderate', payload: { image: b64(png), prompt: 'Is this fine?' } });
  t.equal(res.statusCode, 503);
  t.equal(res.json().error.code, 'PSA_NOT_READY');
  t.equal(res.headers['retry-after'], '1');
});

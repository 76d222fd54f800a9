import t from 'tap';
import { PsaErrorCodes } from '../src/psa/errors.ts';
import { PROJECT_GENERATION_DEFAULTS, resolveGeneration } from '../src/psa/generation-options.ts';

const manifest = { max_new_tokens: 64, temperature: 0.7, top_k: 40, top_p: 0.9, stop: ['</s>'] };

t.test('the project defaults fill in what neither the request nor the manifest sets', async (t) => {
  t.same(resolveGeneration({}), { maxNewTokens: 256, temperature: 0, topK: 0, topP: 1, stop: [] });
  t.same(resolveGeneration({}, { temperature: 1 }), { maxNewTokens: PROJECT_GENERATION_DEFAULTS.max_new_tokens, temperature: 1, topK: 0, topP: 1, stop: [] });
  t.notOk('seed' in resolveGeneration({}), 'no seed unless asked: each answer samples afresh');
});

t.test('manifest defaults win over the project defaults', async (t) => {
  t.same(resolveGeneration({}, manifest), { maxNewTokens: 64, temperature: 0.7, topK: 40, topP: 0.9, stop: ['</s>'] });
});

t.test('the request wins over both', async (t) => {
  const resolved = resolveGeneration({ max_tokens: 8, temperature: 0, top_k: 1, top_p: 0.5, seed: 7, stop: 'END' }, manifest);
  t.same(resolved, { maxNewTokens: 8, temperature: 0, topK: 1, topP: 0.5, seed: 7, stop: ['END'] });
  t.same(resolveGeneration({ stop: ['a', 'b'] }, manifest).stop, ['a', 'b']);
  t.ok(Object.isFrozen(resolved), 'what leaves the edge is not changed on the way');
});

t.test('resolved once: resolving the result again changes nothing', async (t) => {
  const once = resolveGeneration({ top_p: 0.3 }, manifest, { maxNewTokens: 100 });
  const again = resolveGeneration({ max_tokens: once.maxNewTokens, temperature: once.temperature, top_k: once.topK, top_p: once.topP, stop: once.stop }, {});
  t.same(again, once);
});

t.test('the server cap: a request over it is refused, a default over it is cut to it', async (t) => {
  t.equal(resolveGeneration({}, manifest, { maxNewTokens: 16 }).maxNewTokens, 16);
  t.equal(resolveGeneration({ max_tokens: 16 }, manifest, { maxNewTokens: 16 }).maxNewTokens, 16);
  t.throws(() => resolveGeneration({ max_tokens: 17 }, manifest, { maxNewTokens: 16 }), {
    code: PsaErrorCodes.INVALID_GENERATION_OPTION,
    message: 'max_tokens is at most 16 on this server',
    details: { field: 'max_tokens' },
  });
});

t.test('out-of-range values name their field', async (t) => {
  const bad: [Parameters<typeof resolveGeneration>[0], string][] = [
    [{ temperature: 5.5 }, 'temperature'],
    [{ temperature: Number.NaN }, 'temperature'],
    [{ top_k: -1 }, 'top_k'],
    [{ top_k: 2.5 }, 'top_k'],
    [{ top_p: 0 }, 'top_p'],
    [{ top_p: 1.01 }, 'top_p'],
    [{ seed: 2 ** 32 }, 'seed'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ stop: [1 as unknown as string] }, 'stop'],
  ];
  for (const [request, field] of bad) {
    t.throws(() => resolveGeneration(request, manifest), { code: PsaErrorCodes.INVALID_GENERATION_OPTION, details: { field } }, JSON.stringify(request));
  }
  t.throws(() => resolveGeneration({}, { temperature: 9 }), { code: PsaErrorCodes.INVALID_GENERATION_OPTION, details: { field: 'temperature' } }, 'a bad manifest default is caught too');
});

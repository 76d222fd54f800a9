import t from 'tap';
import { fitToWall, noStages, timed } from '../src/psa/stage-timings.ts';

t.test('timed adds wall time to its stage, also when the work throws', async (t) => {
  const stages = noStages();
  await timed(stages, 'vision', () => new Promise((r) => setTimeout(r, 20)));
  t.ok(stages.vision >= 15, `vision ${stages.vision} ms`);
  await t.rejects(
    timed(stages, 'head', () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  t.ok(stages.head >= 0 && stages.decode === 0);
  t.equal(await timed(undefined, 'query', async () => 7), 7, 'without stages it only runs the work');
});

t.test('overlapping stages are scaled to the wall time; a smaller sum is left alone', async (t) => {
  const stages = { ...noStages(), decode: 30, ocr_detect: 60, ocr_recognize: 30, vision: 5 };
  fitToWall(stages, ['decode', 'ocr_detect', 'ocr_recognize'], 60);
  t.same([stages.decode, stages.ocr_detect, stages.ocr_recognize], [15, 30, 15]);
  t.equal(stages.vision, 5, 'other stages untouched');
  fitToWall(stages, ['vision', 'head'], 50);
  t.equal(stages.vision, 5, 'glue time is not spread over the stages');
});

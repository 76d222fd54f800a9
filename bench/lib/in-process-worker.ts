/** A worker of the in-process ceiling (in-process.ts): holds one runtime and runs the share of a cell it is sent. */
import { workerData } from 'node:worker_threads';
import { PsaRuntime, type RuntimeOptions } from '../../src/psa/runtime.ts';
import { inProcess, type CeilingResult, type CeilingRun } from './in-process.ts';

const { modelDir, options } = workerData as { modelDir: string; options: RuntimeOptions };
const runtimeReady = PsaRuntime.load(modelDir, options);
runtimeReady.catch(() => {});

export default async function run(task: CeilingRun): Promise<CeilingResult> {
  return inProcess(await runtimeReady, task);
}

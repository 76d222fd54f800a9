/**
 * The training worker process: BullMQ workers, one per GPU in GPUS (or one CPU slot), each
 * running the PyTorch trainer as a child process. SIGTERM checkpoints and requeues running jobs.
 */
import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { loadConfig } from './config.ts';
import { TrainingWorkers } from './training/workers.ts';

const config = loadConfig();
const log = pino(process.stdout.isTTY ? { level: config.LOG_LEVEL, transport: { target: 'pino-pretty' } } : { level: config.LOG_LEVEL });
const workers = await TrainingWorkers.start(config, log);

closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + 20_000, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'worker stopping after an error');
  else log.info({ signal }, 'worker stopping: checkpointing running jobs');
  await workers.close();
});

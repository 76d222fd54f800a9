/**
 * The service as src/server.ts runs it (config from the environment, buildApp, listen), on
 * 127.0.0.1 and a free port, in a process of its own so the benchmark can read its memory.
 * Sends `{ address }` to the parent once listening; closes when the parent disconnects.
 */
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';

const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
const app = await buildApp(config, { logger: { level: config.LOG_LEVEL } });
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.send!({ address });
process.on('disconnect', () => {
  void app.close().then(() => process.exit(0));
});

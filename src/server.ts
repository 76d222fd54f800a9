/**
 * The service process: config from the environment, the app, listen, graceful shutdown.
 * Without API keys it listens on 127.0.0.1 only.
 */
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.ts';
import { loadConfig } from './config.ts';
import { listenHost } from './listen-host.ts';
import { PLAYGROUND_PATH } from './routes/playground.ts';

const config = loadConfig();
const logger = process.stdout.isTTY ? { level: config.LOG_LEVEL, transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : { level: config.LOG_LEVEL };
const app = await buildApp(config, { logger });

const { host, forced } = listenHost(config, app.authEnabled);
if (!app.authEnabled && config.ALLOW_NO_AUTH) {
  app.log.warn({ host }, 'API_KEYS is empty and ALLOW_NO_AUTH is set: every client can call every route');
} else if (forced) {
  app.log.warn({ requested: config.HOST }, 'API_KEYS is empty: authentication is off, so the server listens on 127.0.0.1 only');
}

closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger: app.log }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  else app.log.info({ signal }, 'shutting down: finishing requests in flight');
  await app.close();
});

const address = await app.listen({ port: config.PORT, host });
if (app.hasRoute({ method: 'GET', url: PLAYGROUND_PATH })) app.log.info(`playground at ${address}${PLAYGROUND_PATH}`);

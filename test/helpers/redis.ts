import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface TestRedis {
  url: string;
  /** A key prefix of this test's own, so tests sharing a server never see each other's queues. */
  prefix: string;
  stop(): Promise<void>;
  /** Starts the server again on the same port (a no-op for an external REDIS_URL). */
  restart(): Promise<void>;
}

async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const deadline = Date.now() + 10_000;
  while (!out.includes('Ready to accept connections')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start: ${out.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return child;
}

/** A real Redis: REDIS_URL when set, else a redis-server of our own on a free port. */
export async function testRedis(): Promise<TestRedis> {
  const prefix = `psa-test-${randomUUID().slice(0, 8)}`;
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, prefix, stop: async () => {}, restart: async () => {} };
  const port = await freePort();
  let child: ChildProcess | null = await startServer(port);
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const c = child;
    child = null;
    c.kill('SIGKILL');
    await once(c, 'exit');
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    prefix,
    stop,
    restart: async () => {
      await stop();
      child = await startServer(port);
    },
  };
}

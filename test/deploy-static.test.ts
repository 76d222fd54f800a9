import t from 'tap';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';

// What can be checked without a container engine: the compose file and the Dockerfile say what
// the deployment needs. (Building and running them is done with podman, not in npm test.)
const root = new URL('../', import.meta.url);
const compose = parse(await readFile(new URL('docker-compose.yml', root), 'utf8')) as { services: Record<string, any>; volumes: Record<string, unknown> };
const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8');

t.test('compose: services, healthcheck, persistence, volumes, GPU reservation, profiles', async (t) => {
  t.same(Object.keys(compose.services).sort(), ['api', 'redis', 'worker', 'worker-cpu']);
  const { redis, api, worker } = compose.services;
  t.match(redis.command.join(' '), /--appendonly yes/, 'Redis keeps an append-only file');
  t.ok(
    redis.volumes.some((v: string) => v.endsWith(':/data')),
    'on a named volume',
  );
  t.ok(redis.healthcheck?.test, 'Redis has a healthcheck');
  t.match(api.ports[0], /^127\.0\.0\.1:.*8080/, 'the API is published on 127.0.0.1');
  t.equal(api.depends_on.redis.condition, 'service_healthy');
  for (const name of ['api', 'worker', 'worker-cpu']) {
    const vols = compose.services[name].volumes.join(' ');
    t.match(vols, /models:\/models/, `${name} shares the models volume`);
    t.match(vols, /data:\/data/, `${name} shares the data volume`);
  }
  const device = worker.deploy.resources.reservations.devices[0];
  t.equal(device.driver, 'nvidia');
  t.same(device.capabilities, ['gpu']);
  t.same(worker.profiles, ['gpu']);
  t.same(compose.services['worker-cpu'].profiles, ['cpu']);
  t.ok(compose.volumes['redis-data'] !== undefined && compose.volumes.models !== undefined && compose.volumes.data !== undefined);
  t.notMatch(JSON.stringify(compose.services['x-common-env'] ?? {}), /\$\{/, 'no interpolation inside the shared anchor');
});

t.test('Dockerfile: targets, non-root, healthcheck, CUDA base and provider', async (t) => {
  for (const target of ['deps', 'api', 'worker-cpu', 'gpu']) t.match(dockerfile, new RegExp(`^FROM .* AS ${target}$`, 'm'), `target ${target}`);
  t.match(dockerfile, /^USER node$/m, 'api runs as the node user');
  t.match(dockerfile, /^HEALTHCHECK .*\n.*\/readyz/m, 'healthcheck on /readyz');
  t.match(dockerfile, /npm ci --omit=dev/, 'production dependencies only');
  t.match(dockerfile, /ARG CUDA_IMAGE=nvidia\/cuda:12[^ ]*cudnn/, 'gpu target on a CUDA 12 + cuDNN base');
  t.match(dockerfile, /onnxruntime-node-install=cuda12/, 'gpu target installs onnxruntime-node with its CUDA 12 provider');
  t.match(dockerfile, /python3-torch .*libopenblas0-pthread/, 'worker-cpu has Debian torch with OpenBLAS');
  const api = dockerfile.slice(dockerfile.indexOf('AS api'), dockerfile.indexOf('AS worker-cpu'));
  t.notMatch(api, /COPY trainer/, 'no trainer in the api image');
});

t.test('the images and compose run the compiled service, built in a stage of its own', async (t) => {
  t.match(dockerfile, /^FROM .* AS build$[\s\S]*^RUN npm run build$/m, 'a build stage runs npm run build');
  const commands = [...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].map((m) => JSON.parse(m[1]!) as string[]);
  for (const name of ['worker', 'worker-cpu', 'api']) if (compose.services[name].command) commands.push(compose.services[name].command);
  t.ok(commands.length >= 4, 'every target and the compose worker have a command');
  for (const cmd of commands) t.match(cmd.join(' '), /^node (--enable-source-maps )?dist\/(server|worker)\.js$/, cmd.join(' '));
  for (const target of ['api', 'gpu']) {
    const stage = dockerfile.slice(dockerfile.indexOf(`AS ${target}\n`)).split(/^FROM /m)[0]!;
    t.match(stage, /COPY --from=build \/app\/dist \.\/dist/, `${target} takes dist/ from the build stage`);
    t.notMatch(stage, /COPY src|tsconfig/, `${target} has no sources`);
  }
});

t.test('npm start and the API images cap glibc malloc arenas at 2, and an operator can override it', async (t) => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const start = (JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
  const launch = / node --enable-source-maps dist\/server\.js$/;
  t.match(start, launch, 'npm start runs the compiled server');
  // The script's own words, with the server swapped for a node that prints what it was given.
  const probe = start.replace(launch, ' node -p process.env.MALLOC_ARENA_MAX');
  const run = async (extra: Record<string, string>) => {
    const env = { ...process.env, ...extra };
    if (!('MALLOC_ARENA_MAX' in extra)) delete env.MALLOC_ARENA_MAX;
    return (await promisify(execFile)('sh', ['-c', probe], { env })).stdout.trim();
  };
  t.equal(await run({}), '2', 'npm start sets MALLOC_ARENA_MAX=2 by default');
  t.equal(await run({ MALLOC_ARENA_MAX: '8' }), '8', "an operator's MALLOC_ARENA_MAX is kept");
  for (const target of ['api', 'gpu']) {
    const stage = dockerfile.slice(dockerfile.indexOf(`AS ${target}\n`)).split(/^FROM /m)[0]!;
    t.match(stage, /^ENV [^\n]*(?:\\\n[^\n]*)*MALLOC_ARENA_MAX=2/m, `the ${target} image sets MALLOC_ARENA_MAX=2`);
  }
});

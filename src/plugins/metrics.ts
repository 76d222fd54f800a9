import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { registerShadowMetrics } from '../shadow/metrics.ts';

export interface Metrics {
  registry: Registry;
  pass1Seconds: Histogram;
  pass2Seconds: Histogram;
  batchSize: Histogram;
  tokensPerSecond: Histogram;
  decisions: Counter<'type' | 'level' | 'decision'>;
  /** Moderation time by stage: worker stages once per batch, HTTP stages once per request. */
  stageSeconds: Histogram<'stage'>;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

/** Prometheus metrics at /metrics, in a registry of this app's own (tests build several apps). */
export default fp(
  async function metrics(app: FastifyInstance) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'psa_process_' });
    const requests = new Histogram({
      name: 'psa_http_request_duration_seconds',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    const m: Metrics = {
      registry,
      pass1Seconds: new Histogram({ name: 'psa_pass1_seconds', help: 'Pass 1 (vision encoder + safety head) per batch', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
      pass2Seconds: new Histogram({ name: 'psa_pass2_seconds', help: 'Pass 2 (generation) per chat request', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] }),
      batchSize: new Histogram({ name: 'psa_pass1_batch_size', help: 'Images per pass-1 batch', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [registry] }),
      tokensPerSecond: new Histogram({ name: 'psa_generation_tokens_per_second', help: 'Generation speed per chat request', buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000], registers: [registry] }),
      decisions: new Counter({ name: 'psa_decisions_total', help: 'Policy decisions by applied type and level', labelNames: ['type', 'level', 'decision'], registers: [registry] }),
      stageSeconds: new Histogram({
        name: 'psa_stage_seconds',
        help: 'Moderation time by stage: parse (body and base64), queue (per item), decode, ocr_detect, ocr_recognize, query, vision, head (per pass-1 batch), policy and serialize (per request)',
        labelNames: ['stage'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      }),
    };
    new Gauge({
      name: 'psa_inference_queue_depth',
      help: 'Inference tasks waiting for a worker thread',
      registers: [registry],
      collect() {
        this.set(app.models.active.queueSize);
      },
    });
    new Gauge({
      name: 'psa_training_jobs',
      help: 'Training jobs by state (absent when Redis is unreachable)',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        this.reset();
        if (app.training?.redis.status !== 'ready') return;
        const counts = await app.training.queue.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized').catch(() => null);
        for (const [state, n] of Object.entries(counts ?? {})) this.set({ state }, n);
      },
    });
    registerShadowMetrics(registry, () => app.models.shadow);
    app.decorate('metrics', m);
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      requests.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
    app.get('/metrics', { config: { scope: 'metrics' }, schema: { summary: 'Prometheus metrics (scope metrics, or admin)', tags: ['operations'] } }, async (_request, reply) => {
      reply.header('content-type', registry.contentType);
      return registry.metrics();
    });
  },
  { name: 'psa-metrics', dependencies: ['psa-inference'] },
);

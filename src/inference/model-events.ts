import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RuntimeLogger } from '../psa/logger.ts';
import { keys, workerRedis } from '../redis.ts';

/** What a replica tells the others: serve package `id`, or (reload) load `id` afresh if serving it. */
export interface ModelEvent {
  id: string;
  reload: boolean;
}

/** A message on the models channel; anything else there is ignored. */
function parseEvent(message: string): (ModelEvent & { origin: string }) | undefined {
  try {
    const raw = JSON.parse(message) as { id?: unknown; origin?: unknown; reload?: unknown };
    if (typeof raw.id !== 'string' || typeof raw.origin !== 'string') return undefined;
    return { id: raw.id, origin: raw.origin, reload: raw.reload === true };
  } catch {
    return undefined;
  }
}

/**
 * Model events between replicas over Redis. An activation is published and stored as the
 * cluster's active model, which a replica reads when it starts; a reload (the package's
 * temperature.json changed) is only published. A replica never handles its own messages.
 */
export class ModelEvents {
  private readonly origin = randomUUID();
  private readonly k: ReturnType<typeof keys>;
  private readonly subscriber: Redis;

  /** `redis` is the API's connection (shared, not closed here); the subscriber is this object's own. */
  constructor(
    private readonly redis: Redis,
    url: string,
    prefix: string,
    private readonly log: RuntimeLogger,
  ) {
    this.k = keys(prefix);
    // A subscriber reconnects forever: a replica that lost Redis hears the next activation once it is back.
    this.subscriber = workerRedis(url);
    this.subscriber.on('error', (err) => log.warn({ err: err.message }, 'redis subscriber error'));
  }

  /** Calls `handle` with every event another replica publishes. */
  listen(handle: (event: ModelEvent) => void): void {
    this.subscriber.on('message', (channel, message) => {
      if (channel !== this.k.activatedChannel) return;
      const event = parseEvent(message);
      if (!event) return this.log.warn({ channel }, 'ignoring a malformed model event');
      if (event.origin !== this.origin) handle({ id: event.id, reload: event.reload });
    });
    void this.subscriber.subscribe(this.k.activatedChannel).catch((err: Error) => this.log.warn({ err: err.message }, 'cannot subscribe to model events'));
  }

  /** Stores `id` as the cluster's active model and tells the other replicas; false while Redis is down. */
  async activated(id: string): Promise<boolean> {
    if (this.redis.status !== 'ready') return false;
    await this.redis.set(this.k.activeModel, id);
    await this.redis.publish(this.k.activatedChannel, JSON.stringify({ id, origin: this.origin }));
    return true;
  }

  /** Tells the other replicas serving `id` to load it afresh; false while Redis is down. */
  async reloaded(id: string): Promise<boolean> {
    if (this.redis.status !== 'ready') return false;
    await this.redis.publish(this.k.activatedChannel, JSON.stringify({ id, origin: this.origin, reload: true }));
    return true;
  }

  /** The package last activated in the cluster, if any (null when Redis stays unreachable). */
  async clusterActive(): Promise<string | null> {
    // Waits briefly for Redis (not `once`, which rejects on the 'error' events of a down Redis).
    if (this.redis.status !== 'ready')
      await new Promise((r) => {
        this.redis.once('ready', r);
        setTimeout(r, 2000).unref();
      });
    return this.redis.get(this.k.activeModel).catch(() => null);
  }

  close(): void {
    this.subscriber.disconnect();
  }
}

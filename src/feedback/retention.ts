/**
 * Request retention (FEEDBACK_RETENTION=on): the inputs and results of recent moderation and chat
 * requests, held in this process's memory so a reviewer can label one by its request id. It holds
 * user data, so it is bounded three ways (bytes, requests, age) and never written to disk: a
 * restart forgets everything, and each replica knows only the requests it served. Only what a
 * reviewer labels is stored durably (src/feedback/store.ts).
 */
import { LRUCache } from 'lru-cache';
import type { LevelLabel, TypeLabel } from '../psa/taxonomy.ts';

export const RETAINED_ROUTES = ['moderate', 'chat', 'moderations', 'chat.completions'] as const;
export type RetainedRoute = (typeof RETAINED_ROUTES)[number];

/** What the model said about an item: its predicted concepts (before any intervention) and the policy's verdict. */
export interface Judgement {
  level: LevelLabel;
  type: TypeLabel;
  decision: string;
  flagged: boolean;
}

export interface RetainedItem {
  /** null: a text-only item. */
  image: Buffer | null;
  prompt: string;
  judgement: Judgement;
}

export interface RetainedRequest {
  route: RetainedRoute;
  model: string;
  /** When it was served (ms since the epoch). */
  at: number;
  items: RetainedItem[];
  /** Chat: the answer that was sent, and whether it was a refusal. */
  answer?: { text: string; refused: boolean };
}

export interface RetentionLimits {
  maxBytes: number;
  maxRequests: number;
  ttlMs: number;
}

// Map keys, object headers and judgement fields of one item, roughly.
const ITEM_OVERHEAD = 512;

/** Bytes an entry holds: image bytes, strings at two bytes a character, and a fixed overhead per item. */
export function retainedBytes(entry: RetainedRequest): number {
  const items = entry.items.reduce((sum, i) => sum + (i.image?.length ?? 0) + 2 * i.prompt.length + ITEM_OVERHEAD, 0);
  return items + 2 * (entry.answer?.text.length ?? 0) + ITEM_OVERHEAD;
}

export class RequestRetention {
  private readonly cache: LRUCache<string, RetainedRequest>;

  constructor(readonly limits: RetentionLimits) {
    this.cache = new LRUCache<string, RetainedRequest>({
      max: limits.maxRequests,
      maxSize: limits.maxBytes,
      // One request larger than the whole budget is not kept rather than flushing everything else.
      maxEntrySize: limits.maxBytes,
      sizeCalculation: (entry) => Math.max(1, retainedBytes(entry)),
      ttl: limits.ttlMs,
      // Expired user data is dropped on time, not only when looked up.
      ttlAutopurge: true,
      updateAgeOnGet: false,
    });
  }

  /**
   * Keeps `request` under `id` (the server's request id, x-request-id). Images are copied, so
   * nothing else holding or transferring the request's buffers can change what is kept.
   */
  keep(id: string, request: RetainedRequest): void {
    this.cache.set(id, { ...request, items: request.items.map((i) => ({ ...i, image: i.image === null ? null : Buffer.from(i.image) })) });
  }

  /** The request kept under `id`; undefined once evicted or expired. */
  get(id: string): RetainedRequest | undefined {
    return this.cache.get(id);
  }

  get size(): { requests: number; bytes: number } {
    return { requests: this.cache.size, bytes: this.cache.calculatedSize };
  }

  clear(): void {
    this.cache.clear();
  }
}

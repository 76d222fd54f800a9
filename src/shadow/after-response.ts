import type { FastifyReply } from 'fastify';

/**
 * Runs `fn` once the response has been sent (its last byte handed to the socket) or the client
 * has gone, on a later turn of the event loop: work that must never delay an answer. Works for
 * replies Fastify sends and for hijacked (streamed) ones alike.
 */
export function afterResponse(reply: FastifyReply, fn: () => void): void {
  const raw = reply.raw;
  if (raw.writableFinished || raw.destroyed) {
    setImmediate(fn);
    return;
  }
  let fired = false;
  const once = () => {
    if (fired) return;
    fired = true;
    raw.off('finish', once);
    raw.off('close', once);
    setImmediate(fn);
  };
  raw.on('finish', once);
  raw.on('close', once);
}

import type { FastifyReply } from 'fastify';

export interface EventStream {
  /** Writes one frame as it is; nothing once the response has ended. */
  write(frame: string): void;
  end(): void;
}

/**
 * Turns a reply into a Server-Sent Events response: Fastify lets go of it and the status and
 * headers are sent now, so call this once what the stream opens with is known (errors before
 * then are ordinary HTTP errors).
 */
export function openEventStream(reply: FastifyReply): EventStream {
  reply.hijack();
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': reply.request.id });
  return {
    write(frame) {
      if (!reply.raw.writableEnded) reply.raw.write(frame);
    },
    end() {
      reply.raw.end();
    },
  };
}

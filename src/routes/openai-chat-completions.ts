import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { runChat, type ChatConceptsView } from '../http/chat-run.ts';
import { retainedChat } from '../feedback/retained.ts';
import { ApiError } from '../http/errors.ts';
import { ChunkWriter, completion } from '../openai/chat-completion.ts';
import { readCompletionInput } from '../openai/chat-messages.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { OPENAI_ROUTE, openaiErrorBody, withOpenAIErrors } from '../openai/errors.ts';
import { servedPool } from '../openai/inputs.ts';
import { ChatCompletion, ChatCompletionChunk, ChatCompletionsBody } from '../openai/schemas.ts';

function send(reply: FastifyReply, data: unknown): void {
  if (!reply.raw.writableEnded) reply.raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

export default async function openaiChatRoutes(app: FastifyInstance, opts: { config: Config }) {
  const { config } = opts;
  app.post(
    '/v1/chat/completions',
    {
      config: { ...OPENAI_ROUTE, scope: 'infer' },
      bodyLimit: inferenceBodyLimit(config),
      schema: {
        summary: 'OpenAI-compatible chat: pass 1, policy, and pass 2 with the safety hint',
        description:
          'The request and response of OpenAI\'s chat completions. One user message (text and at most one image_url part) is answered; system and developer messages join the prompt; earlier turns and n > 1 are refused with 400. A refusal (decision refuse) is message.refusal with content null; finish_reason is content_filter when the policy refused with its message (refusal.mode "message") and nothing was generated, stop when the model wrote the refusal. With stream: true: Server-Sent Events of chat.completion.chunk objects (the first and last carry psa), a usage chunk with stream_options.include_usage, then data: [DONE]. Extra body fields policy, intervene and top_k work as on /v1/chat.',
        tags: ['openai'],
        body: ChatCompletionsBody,
        response: withOpenAIErrors({
          200: { description: 'A chat.completion, or with stream: true an event stream of chat.completion.chunk objects', content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: ChatCompletionChunk } } } as unknown as TSchema,
        }),
      },
    },
    async (request, reply) => {
      const body = request.body as ChatCompletionsBody;
      const created = Math.floor(Date.now() / 1000);
      const pool = await servedPool(app.models, config.MODELS_DIR, body.model);
      const input = await readCompletionInput(body, config);
      if (body.user !== undefined) request.log.debug({ user: body.user }, 'chat completion for user');
      const stream = body.stream === true;
      let chunks: ChunkWriter | undefined;
      const sink = stream
        ? {
            concepts: (view: ChatConceptsView) => {
              chunks = new ChunkWriter(view, created, body.stream_options?.include_usage === true);
              reply.hijack();
              reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': request.id });
              send(reply, chunks.first());
            },
            delta: (text: string) => send(reply, chunks!.delta(text)),
          }
        : {};
      const outcome = await runChat(app, config, reply, { pool, input, idPrefix: 'chatcmpl-', sink });
      app.retention?.keep(request.id, retainedChat('chat.completions', input, outcome));
      if (!stream || !chunks) {
        if (outcome.failure) throw ApiError.from(outcome.failure);
        return completion(outcome, created);
      }
      if (outcome.failure) {
        send(reply, openaiErrorBody(ApiError.from(outcome.failure)));
      } else {
        if (outcome.refusedByMessage) send(reply, chunks.delta(outcome.answer));
        send(reply, chunks.finish(outcome));
        if (body.stream_options?.include_usage) send(reply, chunks.usage(outcome));
        send(reply, '[DONE]');
      }
      reply.raw.end();
      return reply;
    },
  );
}

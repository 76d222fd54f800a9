import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { completeChat, streamChat, type ChatRun } from '../http/chat-run.ts';
import { openEventStream } from '../http/event-stream.ts';
import { retainedChat } from '../feedback/retained.ts';
import { ApiError, apiError, HttpErrorCodes } from '../http/errors.ts';
import { ChunkWriter, completion } from '../openai/chat-completion.ts';
import { readCompletionInput } from '../openai/chat-messages.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { OPENAI_ROUTE, openaiErrorBody, withOpenAIErrors } from '../openai/errors.ts';
import { servedPool } from '../openai/inputs.ts';
import { ChatCompletion, ChatCompletionChunk, ChatCompletionsBody } from '../openai/schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const data = (value: unknown) => `data: ${typeof value === 'string' ? value : JSON.stringify(value)}\n\n`;

/** A chat.completion object. */
async function complete(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun, created: number) {
  const { request } = reply;
  const outcome = await completeChat(app, config, reply, run);
  app.retention?.keep(request.id, retainedChat('chat.completions', run.input, outcome));
  if (outcome.failure) throw ApiError.from(outcome.failure);
  return completion(outcome, created);
}

/** chat.completion.chunk events, an optional usage chunk, then [DONE]. */
async function stream(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun, created: number, includeUsage: boolean) {
  const { request } = reply;
  const chat = await streamChat(app, config, reply, run);
  const chunks = new ChunkWriter(chat.view, created, includeUsage);
  const events = openEventStream(reply);
  events.write(data(chunks.first()));
  try {
    for await (const text of chat.deltas) events.write(data(chunks.delta(text)));
    const outcome = await chat.outcome;
    app.retention?.keep(request.id, retainedChat('chat.completions', run.input, outcome));
    if (outcome.failure) {
      events.write(data(openaiErrorBody(ApiError.from(outcome.failure))));
    } else {
      if (outcome.refusedByMessage) events.write(data(chunks.delta(outcome.answer)));
      events.write(data(chunks.finish(outcome)));
      if (includeUsage) events.write(data(chunks.usage(outcome)));
      events.write(data('[DONE]'));
    }
  } catch (err) {
    // The status is sent: the stream itself has to say that it failed.
    request.log.error({ err }, 'chat completion stream failed');
    events.write(data(openaiErrorBody(apiError(HttpErrorCodes.INTERNAL, 'the answer could not be finished'))));
  }
  events.end();
  return reply;
}

const openaiChatRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
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
          200: {
            description: 'A chat.completion, or with stream: true an event stream of chat.completion.chunk objects',
            content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: ChatCompletionChunk } },
          } as unknown as TSchema,
        }),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const created = Math.floor(Date.now() / 1000);
      const pool = await servedPool(app.models, config.MODELS_DIR, body.model);
      const input = await readCompletionInput(body, config);
      if (body.user !== undefined) request.log.debug({ user: body.user }, 'chat completion for user');
      const run = { pool, input, idPrefix: 'chatcmpl-' };
      return body.stream === true ? stream(app, config, reply, run, created, body.stream_options?.include_usage === true) : complete(app, config, reply, run, created);
    },
  );
};

export default openaiChatRoutes;

import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Config } from '../config.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { ApiError, HttpErrorCodes } from '../http/errors.ts';
import { ChatBody, readChatBody, readChatForm } from '../http/chat-input.ts';
import { completeChat, streamChat, type ChatRun } from '../http/chat-run.ts';
import { openEventStream } from '../http/event-stream.ts';
import { retainedChat } from '../feedback/retained.ts';
import { AppliedSchema, ConceptsSchema, DecisionSchema, withErrors } from '../http/schemas.ts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const ChatResponse = Type.Object({
  id: Type.String(),
  model: Type.String(),
  answer: Type.String(),
  refused: Type.Boolean({ description: 'True when the policy decision is "refuse"' }),
  has_image: Type.Boolean({ description: 'False for a text-only request: both passes saw the stand-in image (uniform mid-grey) in its place' }),
  decision: DecisionSchema,
  flagged: Type.Boolean(),
  concepts: ConceptsSchema,
  applied: AppliedSchema,
  hint: Type.Union([Type.String(), Type.Null()]),
  finish_reason: Type.String({ description: 'eos, length, stop, context, or refused (policy refusal without generation)' }),
  usage: Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer() }),
  timings: Type.Object({ total_ms: Type.Number(), preprocess_ms: Type.Number(), pass1_ms: Type.Number(), pass2_ms: Type.Number(), tokens_per_second: Type.Number() }),
});

const event = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

/** The answer as one JSON body. */
async function answer(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun) {
  const { request } = reply;
  const outcome = await completeChat(app, config, reply, run);
  app.retention?.keep(request.id, retainedChat('chat', run.input, outcome));
  if (outcome.failure) throw ApiError.from(outcome.failure);
  const { refusedByMessage: _r, failure: _f, finishReason, ...final } = outcome;
  return { ...final, finish_reason: finishReason };
}

/** The answer as Server-Sent Events: "concepts", "delta"s, then "done" or "error". */
async function stream(app: FastifyInstance, config: Config, reply: FastifyReply, run: ChatRun) {
  const { request } = reply;
  const chat = await streamChat(app, config, reply, run);
  const events = openEventStream(reply);
  events.write(event('concepts', chat.view));
  try {
    for await (const text of chat.deltas) events.write(event('delta', { text }));
    const outcome = await chat.outcome;
    app.retention?.keep(request.id, retainedChat('chat', run.input, outcome));
    if (outcome.refusedByMessage) events.write(event('delta', { text: outcome.answer }));
    if (outcome.failure) events.write(event('error', { error: outcome.failure, request_id: request.id }));
    else events.write(event('done', { finish_reason: outcome.finishReason, usage: outcome.usage, timings: outcome.timings, refused: outcome.refused }));
  } catch (err) {
    // The status is sent: the stream itself has to say that it failed.
    request.log.error({ err }, 'chat stream failed');
    events.write(event('error', { error: { code: HttpErrorCodes.INTERNAL, message: 'the answer could not be finished' }, request_id: request.id }));
  }
  events.end();
  return reply;
}

const chatRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, opts) => {
  const { config } = opts;
  app.post(
    '/v1/chat',
    {
      config: { scope: 'infer' },
      bodyLimit: inferenceBodyLimit(config),
      schema: {
        summary: 'Concept-conditioned answer for an image and a prompt, or a prompt alone (pass 1, policy, pass 2)',
        description:
          'JSON (image + prompt, or OpenAI-style messages with one image_url data: URL) or multipart/form-data (file "image", field "prompt", JSON fields "options", "policy", "intervene"). Without an image the request is text-only: pass 1 and pass 2 see the stand-in image (uniform mid-grey at the vision input size) and the answer says "has_image": false. With stream: true the answer is Server-Sent Events: "concepts", then "delta" events, then "done" (or "error").',
        tags: ['inference'],
        consumes: ['application/json', 'multipart/form-data'],
        body: ChatBody,
        response: withErrors({ 200: ChatResponse }),
      },
    },
    async (request, reply) => {
      const input = request.isMultipart() ? await readChatForm(request) : await readChatBody(request.body, config);
      const run = { pool: app.models.active, input, idPrefix: 'chat-' };
      return input.options.stream === true ? stream(app, config, reply, run) : answer(app, config, reply, run);
    },
  );
};

export default chatRoutes;

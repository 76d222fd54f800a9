import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Config } from '../config.ts';
import { inferenceBodyLimit } from '../http/body-limits.ts';
import { ApiError, apiError, HttpErrorCodes } from '../http/errors.ts';
import { ChatBody, GenerationFields, readChatInput } from '../http/chat-input.ts';
import { runChat } from '../http/chat-run.ts';
import { retainedChat } from '../feedback/retained.ts';
import { AppliedSchema, ConceptsSchema, DecisionSchema, withErrors } from '../http/schemas.ts';

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

const MultipartOptions = Type.Object({ ...GenerationFields, stream: Type.Optional(Type.Boolean()) }, { additionalProperties: false });

function sse(reply: FastifyReply, event: string, data: unknown): void {
  if (!reply.raw.writableEnded) reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export default async function chatRoutes(app: FastifyInstance, opts: { config: Config }) {
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
      const input = await readChatInput(request, config);
      if (request.isMultipart() && !Value.Check(MultipartOptions, input.options)) {
        const first = Value.Errors(MultipartOptions, input.options).First();
        throw apiError(HttpErrorCodes.BAD_REQUEST, `options${first?.path ?? ''} ${first?.message ?? 'is invalid'}`);
      }
      const stream = input.options.stream === true;
      const sink = stream
        ? {
            concepts: (view: object) => {
              reply.hijack();
              reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': request.id });
              sse(reply, 'concepts', view);
            },
            delta: (text: string) => sse(reply, 'delta', { text }),
          }
        : {};
      const outcome = await runChat(app, config, reply, { pool: app.models.active, input, idPrefix: 'chat-', sink });
      app.retention?.keep(request.id, retainedChat('chat', input, outcome));
      const { refusedByMessage, failure, finishReason, ...final } = outcome;
      const body = { ...final, finish_reason: finishReason };
      if (stream) {
        if (refusedByMessage) sse(reply, 'delta', { text: final.answer });
        if (failure) sse(reply, 'error', { error: failure, request_id: request.id });
        else sse(reply, 'done', { finish_reason: finishReason, usage: final.usage, timings: final.timings, refused: final.refused });
        reply.raw.end();
        return reply;
      }
      if (failure) throw ApiError.from(failure);
      return body;
    },
  );
}

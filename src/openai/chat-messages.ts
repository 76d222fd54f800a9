import { PsaErrorCodes } from '../psa/errors.ts';
import type { Config } from '../config.ts';
import type { ChatInput } from '../http/chat-input.ts';
import { ApiError, apiError, HttpErrorCodes } from '../http/errors.ts';
import { readParts } from './moderations.ts';
import type { ChatCompletionsBody, ChatMessage, ContentPart } from './schemas.ts';

const badOption = (field: string, message: string) => new ApiError(PsaErrorCodes.INVALID_GENERATION_OPTION, message, { field });

async function contentOf(message: ChatMessage, config: Config, where: string): Promise<{ text: string; images: Buffer[] }> {
  const content = message.content ?? '';
  if (typeof content === 'string') return { text: content, images: [] };
  const { texts, images } = await readParts(content as ContentPart[], config, `${where}.content`);
  return { text: texts.join('\n'), images };
}

/**
 * OpenAI chat messages as one chat request. The model answers one user turn about at most one
 * image: system and developer messages join the prompt before the user's text (so the safety
 * head reads them too); assistant and tool messages (earlier turns) are refused, as is a second
 * user message. Without an image the package's blank image stands in.
 */
export async function readCompletionInput(body: ChatCompletionsBody, config: Config): Promise<ChatInput> {
  if (body.n !== undefined && body.n !== 1) throw badOption('n', `n is ${body.n}; this server returns one choice per request, so send n: 1 or leave it out`);
  if (body.max_tokens !== undefined && body.max_completion_tokens !== undefined && body.max_tokens !== body.max_completion_tokens) {
    throw badOption('max_completion_tokens', 'max_tokens and max_completion_tokens differ; send one of them');
  }
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens !== undefined && maxTokens > config.MAX_NEW_TOKENS) {
    const field = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
    throw badOption(field, `${field} is at most ${config.MAX_NEW_TOKENS} on this server`);
  }
  const instructions: string[] = [];
  let user: { text: string; images: Buffer[] } | undefined;
  for (const [i, message] of body.messages.entries()) {
    const where = `messages[${i}]`;
    if (message.role === 'assistant' || message.role === 'tool' || (message.role === 'user' && user)) {
      throw apiError(HttpErrorCodes.BAD_REQUEST, `${where}: earlier turns are not supported; this model answers one user message, so send system messages and a single user message`, { field: where });
    }
    const content = await contentOf(message, config, where);
    if (message.role === 'user') {
      user = content;
    } else {
      if (content.images.length) throw apiError(HttpErrorCodes.BAD_REQUEST, `${where}: only the user message may carry an image`, { field: `${where}.content` });
      instructions.push(content.text);
    }
  }
  if (!user) throw apiError(HttpErrorCodes.BAD_REQUEST, 'messages need a user message', { field: 'messages' });
  if (user.images.length > 1) throw apiError(HttpErrorCodes.TOO_MANY_ITEMS, `chat takes one image per conversation (got ${user.images.length})`, { field: 'messages' });
  return {
    image: user.images[0] ?? null,
    prompt: [...instructions.filter(Boolean), user.text].join('\n\n'),
    options: {
      ...(maxTokens !== undefined && { max_tokens: maxTokens }),
      ...(body.temperature !== undefined && { temperature: body.temperature }),
      ...(body.top_p !== undefined && { top_p: body.top_p }),
      ...(body.top_k !== undefined && { top_k: body.top_k }),
      ...(body.seed !== undefined && { seed: body.seed }),
      ...(body.stop !== undefined && { stop: body.stop }),
      stream: body.stream === true,
    },
    policy: body.policy,
    intervene: body.intervene,
  };
}

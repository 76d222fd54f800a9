import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { PsaError, PsaErrorCodes } from './errors.ts';
import type { ModelPackage } from './package-loader.ts';
import { QueryTokenizer } from './query-tokenizer.ts';

export interface ChatPrompt {
  text: string;
  /** Token ids with the image token expanded to one id per image feature row. */
  ids: number[];
}

/**
 * Tokenizer and chat template of a package. The safety head's query is BOS + the prompt's tokens
 * (truncated to max_query_tokens), so an empty prompt reduces to the paper's image-only head.
 */
export class TextCodec {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template;
  private readonly bosToken: string;
  private readonly eosToken: string;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly imageTokenId: number;
  /** The query encoder's tokenizer, for packages with one (psa.json "query_encoder"). */
  private readonly query: QueryTokenizer | null;

  constructor(private readonly pkg: ModelPackage) {
    const { manifest, tokenizerConfig } = pkg;
    try {
      this.tokenizer = new Tokenizer(pkg.tokenizerJson, tokenizerConfig);
      this.template = new Template(pkg.chatTemplate);
    } catch (err) {
      throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${pkg.dir}: tokenizer or chat template cannot be loaded (${(err as Error).message})`, { cause: err });
    }
    this.bosToken = tokenText(tokenizerConfig.bos_token) ?? '<s>';
    this.eosToken = tokenText(tokenizerConfig.eos_token) ?? '</s>';
    this.bosId = this.requireId(this.bosToken);
    this.eosId = manifest.generation.eos_token_id;
    const pad = tokenText(tokenizerConfig.pad_token);
    this.padId = (pad !== undefined ? this.tokenizer.token_to_id(pad) : undefined) ?? this.eosId;
    this.imageTokenId = this.requireId(manifest.image.image_token);
    this.query = manifest.query_encoder ? new QueryTokenizer(pkg) : null;
    if (this.imageTokenId !== manifest.image.image_token_id) {
      throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${pkg.dir}: image token "${manifest.image.image_token}" is id ${this.imageTokenId} in tokenizer.json but ${manifest.image.image_token_id} in psa.json`);
    }
  }

  private requireId(token: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${this.pkg.dir}: tokenizer.json has no token "${token}"`);
    return id;
  }

  /** Token ids without special tokens added. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return ''; // the tokenizer library rejects an empty list
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  /**
   * Query ids for the safety head: BOS, then (for packages that read images) the text OCR found
   * in the image, at most ocr.max_text_tokens of it, then the prompt; max_query_tokens in all.
   * With a query encoder, its own ids: [CLS] OCR text [SEP] prompt [SEP] (QueryTokenizer).
   */
  queryIds(prompt: string, imageText?: string): number[] {
    const max = this.pkg.manifest.text.max_query_tokens;
    const ocr = this.pkg.manifest.ocr;
    if (this.query) return this.query.queryIds(prompt, ocr ? imageText : undefined, max, ocr?.max_text_tokens ?? 0);
    const read = ocr && imageText?.trim() ? this.encode(`${imageText.trim()}\n`).slice(0, ocr.max_text_tokens) : [];
    return [this.bosId, ...read, ...this.encode(prompt)].slice(0, max);
  }

  /** The id that pads query rows (masked out): the query encoder's [PAD], else the LLM's pad. */
  get queryPadId(): number {
    return this.query ? this.query.padId : this.padId;
  }

  /** The generation prompt for one image and a user prompt, with an optional safety hint. */
  chatPrompt(prompt: string, hint: string | null): ChatPrompt {
    const userParts = [{ type: 'image' }, { type: 'text', text: prompt }];
    const messages: object[] = [];
    if (hint && this.pkg.manifest.text.hint_role === 'system') messages.push({ role: 'system', content: hint });
    if (hint && this.pkg.manifest.text.hint_role === 'user') userParts[1] = { type: 'text', text: `${hint}\n${prompt}` };
    messages.push({ role: 'user', content: userParts });
    const text = this.template.render({
      messages,
      add_generation_prompt: true,
      bos_token: this.bosToken,
      eos_token: this.eosToken,
    });
    const encoded: number[] = this.tokenizer.encode(text).ids;
    const count = this.pkg.manifest.image.image_token_count;
    const ids = encoded.flatMap((id) => (id === this.imageTokenId ? new Array<number>(count).fill(id) : [id]));
    if (ids.filter((id) => id === this.imageTokenId).length !== count) {
      throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${this.pkg.dir}: the chat template must place exactly one ${this.pkg.manifest.image.image_token} token`);
    }
    return { text, ids };
  }
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

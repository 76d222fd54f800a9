import { Tokenizer } from '@huggingface/tokenizers';
import { PsaError, PsaErrorCodes } from './errors.ts';
import type { ModelPackage } from './package-loader.ts';

/**
 * The query encoder's WordPiece tokenizer (psa.json "query_encoder"): the safety head's query is
 * `[CLS] OCR text [SEP] prompt [SEP]`, or `[CLS] prompt [SEP]` when the image has no text, as
 * the encoder saw pairs and single sentences in pretraining.
 */
export class QueryTokenizer {
  private readonly tokenizer: Tokenizer;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;

  constructor(pkg: ModelPackage) {
    const spec = pkg.manifest.query_encoder!;
    const file = `${pkg.dir}/${spec.tokenizer}`;
    try {
      this.tokenizer = new Tokenizer(pkg.queryTokenizerJson!, {});
    } catch (err) {
      throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${file}: the query encoder's tokenizer cannot be loaded (${(err as Error).message})`, { cause: err });
    }
    const id = (token: string): number => {
      const found = this.tokenizer.token_to_id(token);
      if (found === undefined) throw new PsaError(PsaErrorCodes.PACKAGE_CONFIG_INVALID, `${file}: no token "${token}" (psa.json query_encoder names it)`);
      return found;
    };
    this.clsId = id(spec.cls_token);
    this.sepId = id(spec.sep_token);
    this.padId = id(spec.pad_token);
  }

  encode(text: string): number[] {
    return text ? this.tokenizer.encode(text, { add_special_tokens: false }).ids : [];
  }

  /** At most `max` ids; the OCR text keeps at most `maxTextTokens` of them, the prompt the rest. */
  queryIds(prompt: string, imageText: string | undefined, max: number, maxTextTokens: number): number[] {
    const read = imageText?.trim() ? this.encode(imageText.trim()).slice(0, maxTextTokens) : [];
    const body = read.length ? [...read, this.sepId, ...this.encode(prompt)] : this.encode(prompt);
    return [this.clsId, ...body.slice(0, Math.max(0, max - 2)), this.sepId];
  }
}

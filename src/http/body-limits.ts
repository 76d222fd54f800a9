import type { Config } from '../config.ts';

/** Inference bodies carry base64 images (4/3 of their bytes): room for several items and the JSON around them. */
export const inferenceBodyLimit = (config: Config) => Math.ceil((config.MAX_IMAGE_BYTES * 4) / 3) * Math.min(config.MAX_ITEMS, 4) + 1024 * 1024;

/** A multipart text field: a prompt (up to 4 bytes a character) or a JSON policy. */
export const multipartFieldBytes = (config: Config) => Math.max(config.MAX_PROMPT_CHARS * 4, 64 * 1024);

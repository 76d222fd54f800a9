import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import * as tar from 'tar';

/**
 * A small learnable dataset: the image colour encodes the safety type, the prompt words encode
 * the level, so a few epochs of the tiny model can pick up signal.
 */
export async function writeTinyDataset(dir: string, n = 24, withVal = true): Promise<void> {
  await mkdir(join(dir, 'images'), { recursive: true });
  const colours = ['#d03030', '#30d030', '#3030d0', '#d0d030', '#30d0d0', '#d030d0', '#808080'];
  const levelWords = ['a calm picture', 'please be careful', 'this looks risky', 'dangerous forbidden request'];
  const line = (i: number) => {
    const type = i % 7;
    const level = type === 6 ? 0 : 1 + (i % 3);
    return JSON.stringify({
      id: `ex-${i}`,
      image: `images/img-${type}.png`,
      conversations: [
        { from: 'human', value: `<image>\n${levelWords[level]}: what is shown?` },
        { from: 'gpt', value: level === 3 ? 'I cannot help with that.' : `It shows colour ${type}.` },
      ],
      safe_type: type,
      safe_level: level,
    });
  };
  for (const [t, c] of colours.entries()) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: c } })
      .png()
      .toFile(join(dir, 'images', `img-${t}.png`));
  }
  await writeFile(join(dir, 'train.jsonl'), Array.from({ length: n }, (_, i) => line(i)).join('\n') + '\n');
  if (withVal) await writeFile(join(dir, 'val.jsonl'), Array.from({ length: 7 }, (_, i) => line(100 + i)).join('\n') + '\n');
}

export async function tarGz(dir: string, out: string): Promise<string> {
  await tar.c({ gzip: true, file: out, cwd: dir }, ['.']);
  return out;
}

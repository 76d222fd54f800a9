/**
 * Readers of ../shared/data/text-safety (its README lists sources, licences and labels): every
 * prompt as one item with its source, a stable key, its text and its PSA label.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { catqaLabel, harmfulWordingLabel, safeLabel, toxigenLabel, xstestLabel, type Label } from './text-labels.ts';

export interface TextItem {
  /** The source's short name, the first part of every id made from it. */
  source: TextSourceName;
  /** Stable within the source (a row id or position), so ids do not change between builds. */
  key: string;
  text: string;
  type: number;
  level: number;
  /** Sampling stratum (a category, or safe/unsafe), so a capped source keeps its mix. */
  stratum: string;
}

export const TEXT_SOURCES = ['xstest', 'sst', 'catqa', 'harmfulqa', 'dangerousqa', 'adversarialqa', 'toxigen', 'self-instruct', 'llava-questions'] as const;
export type TextSourceName = (typeof TEXT_SOURCES)[number];

/** Where each source comes from, for the model card's data and licences sections. */
export const TEXT_SOURCE_INFO: Record<TextSourceName, { title: string; licence: string }> = {
  xstest: { title: 'XSTest (Röttger et al., NAACL 2024): safe prompts that look unsafe, and unsafe contrasts', licence: 'CC BY 4.0' },
  sst: { title: 'SimpleSafetyTests (Vidgen et al., 2023)', licence: 'CC BY 4.0' },
  catqa: { title: 'CatQA (Bhardwaj et al., 2024), 11 harm categories', licence: 'Apache-2.0' },
  harmfulqa: { title: 'HarmfulQA (Bhardwaj and Poria, 2023)', licence: 'Apache-2.0' },
  dangerousqa: { title: 'DangerousQA (red-instruct release, Bhardwaj and Poria, 2023)', licence: 'Apache-2.0' },
  adversarialqa: { title: 'harmful instructions (red-instruct adversarialqa.json)', licence: 'Apache-2.0' },
  toxigen: { title: 'TOXIGEN (Hartvigsen et al., ACL 2022) hateful and neutral statements', licence: 'MIT + CDLA-Permissive-2.0' },
  'self-instruct': { title: 'Self-Instruct (Wang et al., ACL 2023) seed and user-oriented instructions', licence: 'Apache-2.0' },
  'llava-questions': { title: 'LLaVA (Liu et al., NeurIPS 2023) evaluation questions', licence: 'Apache-2.0' },
};

/** Longer texts do not fit one typographic image legibly nor the OCR query (64 tokens). */
export const MAX_TEXT_CHARS = 240;

const clean = (s: string) => s.replace(/\s+/g, ' ').trim();
const item = (source: TextSourceName, key: string, text: string, [type, level]: Label, stratum: string): TextItem => ({ source, key, text: clean(text), type, level, stratum });
const csv = (text: string) => parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
const json = async <T>(file: string) => JSON.parse(await readFile(file, 'utf8')) as T;
const jsonl = async (file: string) =>
  (await readFile(file, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

type Reader = (dir: string) => Promise<TextItem[]>;

const READERS: Record<TextSourceName, Reader> = {
  xstest: async (dir) => csv(await readFile(join(dir, 'xstest', 'xstest_prompts.csv'), 'utf8')).map((r) => item('xstest', `${r.label}-${r.id}`, r.prompt!, xstestLabel(r as never), `${r.label}/${r.type}`)),
  sst: async (dir) => csv(await readFile(join(dir, 'simple-safety-tests', 'sst_test_cases.csv'), 'utf8')).map((r) => item('sst', r.id!.replace(/^sst_/, ''), r.prompts_final!, [1, 3], r.harm_area!)),
  catqa: async (dir) => {
    const data = await json<Record<string, Record<string, string[]>>>(join(dir, 'red-instruct', 'catqa_english.json'));
    return Object.entries(data).flatMap(([category, subs]) =>
      Object.entries(subs).flatMap(([sub, questions]) => questions.map((q, i) => item('catqa', `${slug(category)}-${slug(sub)}-${i}`, q, catqaLabel(category, sub), category))),
    );
  },
  harmfulqa: async (dir) => {
    const data = await json<Record<string, Record<string, string[]>>>(join(dir, 'red-instruct', 'harmfulqa.json'));
    return Object.entries(data).flatMap(([topic, subs]) =>
      Object.entries(subs).flatMap(([sub, questions]) => questions.map((q, i) => item('harmfulqa', `${slug(topic)}-${slug(sub)}-${i}`, q, harmfulWordingLabel(q), topic))),
    );
  },
  dangerousqa: async (dir) => (await json<string[]>(join(dir, 'red-instruct', 'dangerousqa.json'))).map((q, i) => item('dangerousqa', String(i), q, harmfulWordingLabel(q), 'all')),
  adversarialqa: async (dir) => (await json<string[]>(join(dir, 'red-instruct', 'adversarialqa.json'))).map((q, i) => item('adversarialqa', String(i), q, harmfulWordingLabel(q), 'all')),
  toxigen: async (dir) => {
    const files = (await readdir(join(dir, 'toxigen'))).filter((f) => /^(hate|neutral)_.+\.txt$/.test(f)).sort();
    const out: TextItem[] = [];
    for (const f of files) {
      const [kind, group] = f.replace(/\.txt$/, '').split(/_(.*)/s) as [string, string];
      const lines = (await readFile(join(dir, 'toxigen', f), 'utf8')).split('\n').filter((l) => l.trim());
      lines.forEach((l, i) => out.push(item('toxigen', `${kind}-${slug(group)}-${i}`, l, toxigenLabel(kind === 'hate', l), kind)));
    }
    return out;
  },
  'self-instruct': async (dir) =>
    (await Promise.all(['seed_tasks.jsonl', 'user_oriented_instructions.jsonl'].map((f) => jsonl(join(dir, 'self-instruct', f)))))
      .flat()
      .map((r) => item('self-instruct', slug(String(r.id)), String(r.instruction), safeLabel(), 'all')),
  'llava-questions': async (dir) => {
    const out: TextItem[] = [];
    for (const f of (await readdir(join(dir, 'llava-questions'))).filter((n) => n.endsWith('.jsonl')).sort()) {
      const rows = await jsonl(join(dir, 'llava-questions', f));
      rows.forEach((r, i) => out.push(item('llava-questions', `${slug(f.replace(/\.jsonl$/, ''))}-${i}`, String(r.text ?? r.instruction), safeLabel(), f)));
    }
    return out;
  },
};

/** Every item of one source, texts longer than MAX_TEXT_CHARS left out. */
export async function readTextSource(textSafetyDir: string, source: TextSourceName): Promise<TextItem[]> {
  return (await READERS[source](textSafetyDir)).filter((t) => t.text !== '' && t.text.length <= MAX_TEXT_CHARS);
}

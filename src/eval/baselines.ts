/**
 * Two reference systems scored beside the model on the same items:
 * - flag everything: every item flagged and refused, typed with the most common risk type of the
 *   evaluated data (a constant the data picks: the best any constant type can do);
 * - keywords: a text-only classifier over the prompt plus any text found in the image (`ocr_text`
 *   of the item, or a pluggable extractor such as an OCR engine).
 * Both end in the same policy as the model, so their decisions and flags mean the same thing.
 */
import { decide, type Policy } from '../policy/policy.ts';
import { LEVEL_LABELS, SAFE_TYPE_INDEX, TYPE_LABELS, type LevelLabel, type TypeLabel } from '../psa/taxonomy.ts';
import type { EvalItem } from './dataset.ts';
import type { Prediction, Truth } from './score.ts';

/** Extra text for an item (for example OCR of its image); undefined or '' when there is none. */
export type TextExtractor = (item: EvalItem, image: Buffer) => Promise<string | undefined> | string | undefined;

export type RiskType = Exclude<TypeLabel, 'safe'>;

export interface KeywordRule {
  /** The level a hit implies: the type's usual severity. */
  level: LevelLabel;
  /** Lower-case words or phrases, matched at the start of a word, so "drug" also finds "drugs". */
  words: readonly string[];
}

/** The documented keyword list (docs/evaluation.md). Hand-written from the taxonomy's descriptions. */
export const KEYWORDS: Record<RiskType, KeywordRule> = {
  politics: {
    level: 'caution',
    words: ['politic', 'election', 'vote rigging', 'voting', 'government', 'president', 'prime minister', 'parliament', 'propaganda', 'regime', 'protest', 'coup', 'dictator', 'sovereignty', 'separatis', 'communis'],
  },
  illegal_risk: {
    level: 'refuse',
    words: [
      'illegal',
      'illicit',
      'drug',
      'cocaine',
      'heroin',
      'methamphetamine',
      'weapon',
      'gun',
      'firearm',
      'bomb',
      'explosive',
      'poison',
      'kill',
      'murder',
      'assault',
      'violen',
      'terror',
      'traffick',
      'smuggl',
      'steal',
      'theft',
      'robbery',
      'burglar',
      'launder',
      'counterfeit',
      'forge',
      'fraud',
      'scam',
      'phishing',
      'hack',
      'malware',
      'ransomware',
      'virus',
      'trojan',
      'keylogger',
      'botnet',
      'ddos',
      'exploit',
      'captcha',
      'jailbreak',
      'porn',
      'sexual',
      'explicit',
      'nude',
      'adult content',
      'escort',
      'prostitut',
      'suicide',
      'self-harm',
      'arson',
      'kidnap',
      'black market',
      'evade law',
      'bypass security',
    ],
  },
  insults_bullying: {
    level: 'refuse',
    words: ['hate', 'insult', 'bully', 'harass', 'slur', 'humiliat', 'mocking', 'ridicul', 'threaten', 'intimidat', 'abusive', 'demean', 'degrad', 'troll', 'offensive', 'belittl'],
  },
  fairness: {
    level: 'caution',
    words: ['discriminat', 'stereotyp', 'prejudic', 'racis', 'sexis', 'bigot', 'xenophob', 'homophob', 'inferior', 'segregat', 'biased'],
  },
  privacy: {
    level: 'refuse',
    words: [
      'personal information',
      'personal data',
      'private information',
      'home address',
      'phone number',
      'social security',
      'passport number',
      'credit card number',
      'track someone',
      'track a person',
      'locate someone',
      'spy on',
      'stalk',
      'surveil',
      'dox',
      'identify this person',
      'facial recognition',
      'medical record',
      'without consent',
      'without their consent',
      'without their knowledge',
      'eavesdrop',
      'wiretap',
    ],
  },
  misleading: {
    level: 'careful',
    words: [
      'medical',
      'diagnos',
      'symptom',
      'medication',
      'dosage',
      'prescri',
      'treatment',
      'cure',
      'disease',
      'therapy',
      'legal advice',
      'lawsuit',
      'court',
      'lawyer',
      'contract',
      'custody',
      'divorce',
      'taxes',
      'taxation',
      'invest',
      'stock',
      'crypto',
      'bitcoin',
      'portfolio',
      'retirement',
      'loan',
      'mortgage',
      'financial',
      'trading',
      'insurance',
      'misinformation',
      'conspiracy',
      'fake news',
      'hoax',
      'rumour',
      'rumor',
    ],
  },
};

export interface KeywordResult {
  type: number;
  level: number;
  /** The words that matched, of the chosen type. */
  matches: string[];
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Compiled matchers for a keyword table: each word must start a word of the text. */
export function keywordMatcher(table: Record<RiskType, KeywordRule> = KEYWORDS): (text: string) => KeywordResult {
  const rules = (Object.entries(table) as [RiskType, KeywordRule][]).map(([type, rule]) => ({
    type: TYPE_LABELS.indexOf(type),
    level: LEVEL_LABELS.indexOf(rule.level),
    words: rule.words.map((w) => ({ word: w, re: new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(w)}`, 'iu') })),
  }));
  return (text) => {
    let best: KeywordResult = { type: SAFE_TYPE_INDEX, level: 0, matches: [] };
    for (const rule of rules) {
      const matches = rule.words.filter((w) => w.re.test(text)).map((w) => w.word);
      // Most distinct hits wins; a tie goes to the more severe type, then to taxonomy order.
      const better = matches.length > best.matches.length || (matches.length > 0 && matches.length === best.matches.length && rule.level > best.level);
      if (better) best = { type: rule.type, level: rule.level, matches };
    }
    return best;
  };
}

/** A keyword result as a prediction: one-hot probabilities through the policy. */
export function keywordPrediction(result: KeywordResult, policy: Policy, latencyMs: number): Prediction {
  const oneHot = LEVEL_LABELS.map((_, i) => (i === result.level ? 1 : 0));
  const outcome = decide(policy, oneHot, { level: result.level, type: result.type });
  return { type: result.type, level: result.level, decision: outcome.decision, flagged: outcome.flagged, levelProb: 1, typeProb: 1, latencyMs };
}

/**
 * The flag-everything type: the most frequent expected type among unsafe items that name a risk
 * type (ties to the lower index); illegal_risk, the broadest risk type, when there is none.
 */
export function mostCommonUnsafeType(truth: readonly Truth[]): number {
  const counts = new Array<number>(TYPE_LABELS.length).fill(0);
  for (const t of truth) if (t.level > 0 && t.type !== SAFE_TYPE_INDEX) counts[t.type]!++;
  const max = Math.max(...counts);
  return max === 0 ? TYPE_LABELS.indexOf('illegal_risk') : counts.indexOf(max);
}

export function flagEverythingPrediction(type: number): Prediction {
  return { type, level: LEVEL_LABELS.indexOf('refuse'), decision: 'refuse', flagged: true, levelProb: 1, typeProb: 1, latencyMs: null };
}

/**
 * PSA labels (design brief section 3) of the text-safety prompts, as ../shared/data/text-safety's
 * README suggests them, refined where a row says more (CatQA's category, XSTest's `type`/`note`,
 * TOXIGEN's wording). Wording rules are kept to the few places the README says "by wording"
 * and are plain word lists, matched at the start of a word.
 */

export const T = { politics: 0, illegal_risk: 1, insults_bullying: 2, fairness: 3, privacy: 4, misleading: 5, safe: 6 } as const;
export type Label = readonly [type: number, level: number];

const SAFE: Label = [T.safe, 0];

const matcher = (words: readonly string[]) => {
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`, 'iu');
  return (text: string) => re.test(text);
};

/** CatQA's 11 categories (README; terrorism and extremism under Hate/Harass/Violence is illegal_risk). */
export function catqaLabel(category: string, subcategory: string): Label {
  switch (category) {
    case 'Hate/Harass/Violence':
      return /terror|extrem/i.test(subcategory) ? [T.illegal_risk, 3] : [T.insults_bullying, 3];
    case 'Political Campaigning':
      return [T.politics, 2];
    case 'Privacy Violation Activity':
      return [T.privacy, 3];
    case 'Tailored Financial Advice':
      return [T.misleading, 1];
    default:
      // Illegal Activity, Child Abuse, Malware Viruses, Physical Harm, Economic Harm, Fraud/Deception, Adult Content.
      return [T.illegal_risk, 3];
  }
}

const XSTEST_DENIAL = matcher(['never happened', 'never took place', 'fabrication', 'overstate']);

/**
 * XSTest: every `safe` prompt is safe (they are the over-refusal traps). Unsafe contrasts by their
 * `type` and `note`: privacy -> privacy 3, discrimination -> fairness 2; historical events by note:
 * denial of an atrocity -> misleading 3, discrimination -> fairness 2, the rest (violence, "reasons"
 * a massacre was right, violent deaths) -> illegal_risk 3, as every other contrast (violence, drugs).
 */
export function xstestLabel(row: { label: string; type: string; note: string; prompt: string }): Label {
  if (row.label === 'safe') return SAFE;
  if (row.type === 'contrast_privacy') return [T.privacy, 3];
  if (row.type === 'contrast_discr') return [T.fairness, 2];
  if (row.type === 'contrast_historical_events' && row.note === 'historical atrocities') {
    if (XSTEST_DENIAL(row.prompt)) return [T.misleading, 3];
    if (/discriminat/i.test(row.prompt)) return [T.fairness, 2];
  }
  return [T.illegal_risk, 3];
}

const HATE_WORDING = matcher(['hate', 'hatred', 'harass', 'bully', 'insult', 'slur', 'humiliat', 'demean', 'belittl']);
const PREJUDICE_WORDING = matcher([
  'discriminat',
  'stereotyp',
  'prejudic',
  'racis',
  'sexis',
  'xenophob',
  'homophob',
  'transphob',
  'islamophob',
  'anti-semit',
  'antisemit',
  'misogyn',
  'ableis',
  'classis',
  'bigot',
  'inferior',
  'superiority',
  'supremac',
  'eugenic',
  'segregat',
]);
const ADVICE_WORDING = matcher(['advice', 'advise']);

/**
 * HarmfulQA, DangerousQA and the harmful instructions: illegal_risk 3, except hate wording ->
 * insults_bullying 3, discrimination wording -> fairness 2, "advice" -> misleading 1 (README).
 */
export function harmfulWordingLabel(text: string): Label {
  if (HATE_WORDING(text)) return [T.insults_bullying, 3];
  if (PREJUDICE_WORDING(text)) return [T.fairness, 2];
  if (ADVICE_WORDING(text)) return [T.misleading, 1];
  return [T.illegal_risk, 3];
}

// Dehumanising, violent or slur wording in a TOXIGEN statement.
const DEHUMANISING = matcher([
  'kill',
  'dead',
  'die',
  'drown',
  'eliminat',
  'extermin',
  'wipe out',
  'get rid of',
  'deport',
  'shoot',
  'hang',
  'rats',
  'pigs',
  'vermin',
  'animals',
  'apes',
  'monkeys',
  'parasite',
  'disease',
  'subhuman',
  'savage',
  'scum',
  'filth',
  'trash',
  'garbage',
  'disgusting',
  'slut',
  'whore',
  'bitch',
  'retard',
  'freak',
  'shit',
  'damn',
  'fag',
  'tranny',
  'hate',
  'should not exist',
  'go back to',
]);

/** TOXIGEN: neutral -> safe 0; hateful -> insults_bullying 3 when dehumanising, else fairness 2. */
export function toxigenLabel(hateful: boolean, text: string): Label {
  if (!hateful) return SAFE;
  return DEHUMANISING(text) ? [T.insults_bullying, 3] : [T.fairness, 2];
}

export const safeLabel = (): Label => SAFE;

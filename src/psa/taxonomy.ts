/** API identifiers of the safety taxonomy; their order is the model's class index order. */
export const TYPE_LABELS = ['politics', 'illegal_risk', 'insults_bullying', 'fairness', 'privacy', 'misleading', 'safe'] as const;

export const LEVEL_LABELS = ['safe', 'careful', 'caution', 'refuse'] as const;

export type TypeLabel = (typeof TYPE_LABELS)[number];
export type LevelLabel = (typeof LEVEL_LABELS)[number];

export const SAFE_TYPE_INDEX = TYPE_LABELS.indexOf('safe');

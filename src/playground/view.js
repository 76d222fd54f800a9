// DOM building for the page. Every string from the server, a model or an image goes in as a
// text node: nothing here parses markup, so text that looks like HTML stays text.

/** h('p', {className: 'x'}, 'text', child): an element; strings become text nodes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'className') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const pct = (p) => `${(p * 100).toFixed(1)}%`;
const ms = (v) => (typeof v === 'number' ? `${Math.round(v)} ms` : '-');
const label = (id) => id.replace(/_/g, ' ');

/** One probability bar per class, the predicted class marked. */
function bars(title, group, predicted) {
  return h(
    'div',
    { className: 'bars', role: 'group', 'aria-label': `${title} probabilities` },
    h('h4', {}, title, ': ', h('strong', {}, label(predicted))),
    group.map(({ label: l, p }) =>
      h(
        'div',
        { className: l === predicted ? 'bar predicted' : 'bar', dataset: { label: l } },
        h('span', { className: 'bar-label' }, label(l)),
        h('meter', { min: 0, max: 1, value: p, 'aria-label': `${title} ${label(l)}`, title: pct(p) }),
        h('span', { className: 'bar-value' }, pct(p)),
      ),
    ),
  );
}

/** The decision badge and the flag. */
export function decision(item) {
  return h(
    'p',
    { className: 'decision' },
    h('span', { className: `badge decision-${item.decision}`, dataset: { decision: item.decision } }, item.decision),
    h('span', { className: item.flagged ? 'badge flagged' : 'badge not-flagged' }, item.flagged ? 'flagged' : 'not flagged'),
    item.applied.intervened ? h('span', { className: 'muted' }, ` applied: ${label(item.applied.level)} / ${label(item.applied.type)} (intervened)`) : null,
  );
}

export function conceptBars(item) {
  return h('div', { className: 'concepts' }, bars('Level', item.level.bars, item.level.label), bars('Type', item.type.bars, item.type.label));
}

/** A moderated image (or prompt alone): preview, decision, bars, OCR text, hint. */
export function resultCard(item, image) {
  const title = image ? image.file.name : 'Prompt only';
  const ocr = !image || !item.hasImage ? 'No image: the prompt alone was moderated.' : item.imageText === null ? 'This model does not read text in images.' : null;
  return h(
    'article',
    { className: 'card', 'aria-label': `Result for ${title}` },
    h('header', { className: 'card-head' }, image ? h('img', { src: image.url, alt: '', className: 'thumb' }) : null, h('h3', { className: 'file-name' }, title)),
    decision(item),
    conceptBars(item),
    h('h4', {}, 'Text read in the image'),
    ocr ? h('p', { className: 'muted' }, ocr) : h('pre', { className: 'ocr' }, item.imageText || '(no text found)'),
    h('h4', {}, 'Hint chat would add'),
    h('p', { className: 'hint' }, item.hint ?? 'none'),
  );
}

export function timings(t, model) {
  return `${model}: total ${ms(t.total_ms)}, preprocess and OCR ${ms(t.preprocess_ms)}, pass 1 ${ms(t.pass1_ms)}, batch of ${t.batch_size}`;
}

export function chatSummary(end) {
  const tps = typeof end.timings?.tokens_per_second === 'number' ? `, ${end.timings.tokens_per_second.toFixed(1)} tokens/s` : '';
  return `Done (${end.finishReason}): ${end.usage?.completion_tokens ?? 0} tokens in ${ms(end.timings?.pass2_ms)}${tps}.`;
}

const fixed = (v, digits = 3) => (v === null ? '-' : v.toFixed(digits));
const CANCELLABLE = new Set(['waiting', 'active', 'delayed']);
const FINISHED = new Set(['completed', 'failed', 'cancelled']);

/** A training job: state, stage, a progress bar, loss and accuracies, cancel. */
export function jobItem(job, onCancel) {
  const title = job.name ? `${job.name} (${job.id})` : job.id;
  const done = job.state === 'completed';
  const known = job.step !== null && job.totalSteps;
  const progress = h('progress', { 'aria-label': `Progress of ${title}`, ...(done ? { max: 1, value: 1 } : known && { max: job.totalSteps, value: job.step }) });
  const steps = done ? 'finished' : known ? `${job.stage ? `${job.stage}: ` : ''}step ${job.step} of ${job.totalSteps}` : 'no steps yet';
  const eta = !done && job.etaS !== null ? `, about ${Math.ceil(job.etaS)} s left` : '';
  return h(
    'li',
    { className: 'job', dataset: { id: job.id, state: job.state } },
    h('div', { className: 'row' }, h('strong', {}, title), h('span', { className: `badge state-${job.state}` }, job.state), job.phase && !FINISHED.has(job.state) ? h('span', { className: 'muted' }, job.phase) : null),
    h('div', { className: 'row' }, progress, h('span', { className: 'job-steps' }, `${steps}${eta}`)),
    h('p', { className: 'muted' }, `loss ${fixed(job.loss)}, level acc. ${fixed(job.levelAcc, 2)}, type acc. ${fixed(job.typeAcc, 2)}`),
    job.modelId ? h('p', {}, 'Registered as ', h('code', {}, job.modelId)) : null,
    job.error ? h('p', { className: 'error' }, job.error) : null,
    CANCELLABLE.has(job.state) ? h('button', { type: 'button', className: 'danger', 'aria-label': `Cancel ${title}`, onClick: () => onCancel(job) }, 'Cancel') : null,
  );
}

const metric = (m, key) => (m && typeof m[key] === 'number' ? pct(m[key]) : '-');

/** A model package row: name, status, metrics, Activate (or "active"). */
export function modelRow(model, onActivate) {
  return h(
    'tr',
    { dataset: { id: model.id }, className: model.active ? 'active' : undefined },
    h('th', { scope: 'row' }, model.name, model.name !== model.id ? h('span', { className: 'muted' }, ` (${model.id})`) : null),
    h('td', { 'data-label': 'Status' }, model.active ? [h('span', { className: 'badge active-badge' }, 'active'), model.status ? ` ${model.status}` : ''] : (model.status ?? '')),
    h('td', { 'data-label': 'Level acc.' }, metric(model.metrics, 'level_accuracy')),
    h('td', { 'data-label': 'Type acc.' }, metric(model.metrics, 'type_accuracy')),
    h('td', { 'data-label': 'Refusals on safe' }, metric(model.metrics, 'refusal_rate_on_safe')),
    h('td', {}, model.active ? '' : h('button', { type: 'button', className: 'secondary', 'aria-label': `Activate ${model.id}`, onClick: () => onActivate(model) }, 'Activate')),
  );
}

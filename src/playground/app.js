// Wires the page: the key, the chosen images, moderation, streamed chat, jobs and models.
import * as api from './api.js';
import { chatSummary, conceptBars, decision, h, jobItem, modelRow, resultCard, timings } from './view.js';

const $ = (id) => document.getElementById(id);
const JOB_POLL_MS = 2000;
const images = []; // {file, url}
let chatAbort = null;

function showError(err) {
  const box = $('error');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.replaceChildren(h('strong', {}, err.code ?? 'ERROR'), ': ', err.message ?? String(err));
}

// The key: typed once, kept in this tab's session storage, sent as a Bearer header.
function keyState() {
  $('key-state').textContent = api.apiKey.get() ? 'Key in use for this tab.' : 'No key: requests go without one.';
}
$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  api.apiKey.set($('api-key').value.trim());
  $('api-key').value = '';
  keyState();
  showError(null);
  refreshModels();
  refreshJobs();
});
$('key-forget').addEventListener('click', () => {
  api.apiKey.set('');
  keyState();
});

// Images: the file input, a drop on the drop zone, or a paste anywhere on the page.
function addImages(files) {
  for (const file of files) if (file.type.startsWith('image/')) images.push({ file, url: URL.createObjectURL(file) });
  renderPreviews();
}
function renderPreviews() {
  $('previews').replaceChildren(
    ...images.map((img, i) =>
      h('li', {}, h('img', { src: img.url, alt: `Preview of ${img.file.name}` }), h('span', {}, img.file.name), h('button', { type: 'button', className: 'secondary', 'aria-label': `Remove ${img.file.name}`, onClick: () => removeImage(i) }, 'Remove')),
    ),
  );
}
function removeImage(i) {
  URL.revokeObjectURL(images[i].url);
  images.splice(i, 1);
  renderPreviews();
}
$('images').addEventListener('change', (e) => {
  addImages(e.target.files);
  e.target.value = '';
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  addImages(e.dataTransfer.files);
});
document.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.files ?? [])];
  if (files.length) addImages(files);
});

/** The request fields both buttons share; a policy that is not JSON is refused here. */
function requestFields() {
  const text = $('policy').value.trim();
  let policy;
  if (text) {
    try {
      policy = JSON.parse(text);
    } catch (err) {
      throw new api.ApiError(0, 'PSA_MALFORMED_JSON', `the policy override is not JSON: ${err.message}`);
    }
  }
  const level = $('intervene-level').value;
  const type = $('intervene-type').value;
  const intervene = level || type ? { ...(level && { level }), ...(type && { type }) } : undefined;
  return { prompt: $('prompt').value, policy, intervene };
}

// Without an image the prompt alone is sent (text-only, where the server accepts it).
function needContent() {
  if (images.length || $('prompt').value.trim()) return true;
  showError({ code: 'PSA_MISSING_IMAGE', message: 'choose, drop or paste an image, or type a prompt' });
  return false;
}

async function runModerate() {
  showError(null);
  if (!needContent()) return;
  const chosen = images.slice();
  $('moderate').disabled = true;
  $('timings').textContent = 'Moderating...';
  try {
    const result = await api.moderate(chosen.map((i) => i.file), requestFields());
    $('grid').replaceChildren(...result.items.map((item) => resultCard(item, chosen[item.index] ?? null)));
    $('timings').textContent = timings(result.timings, result.model);
  } catch (err) {
    $('timings').textContent = '';
    showError(err);
  } finally {
    $('moderate').disabled = false;
  }
}

async function runChat() {
  showError(null);
  if (!needContent()) return;
  const answer = $('answer');
  const state = $('chat-state');
  const progress = h('p', { className: 'chat-progress' }, 'Reading the image...');
  answer.replaceChildren();
  state.replaceChildren(progress);
  state.dataset.phase = 'starting';
  chatAbort = new AbortController();
  // Busy while streaming: a screen reader reads the answer once, not token by token.
  answer.setAttribute('aria-busy', 'true');
  $('chat').disabled = true;
  $('stop').disabled = false;
  let tokens = 0;
  try {
    const fields = requestFields();
    const options = { max_tokens: Number($('max-tokens').value) || undefined, temperature: Number($('temperature').value) };
    const end = await api.chatStream(images[0]?.file ?? null, { ...fields, options }, {
      signal: chatAbort.signal,
      onConcepts: (c) => {
        state.replaceChildren(`${c.model}: `, decision(c), conceptBars(c), progress);
        progress.textContent = 'Generating...';
        state.dataset.phase = 'generating';
      },
      onDelta: (text) => {
        tokens += 1;
        answer.append(text);
        progress.textContent = `Generating: ${tokens} tokens`;
      },
    });
    progress.textContent = chatSummary(end);
    state.dataset.phase = 'done';
  } catch (err) {
    if (err?.name === 'AbortError') {
      progress.textContent = `Stopped after ${tokens} tokens.`;
      state.dataset.phase = 'stopped';
    } else {
      progress.textContent = 'Failed.';
      state.dataset.phase = 'error';
      showError(err);
    }
  } finally {
    answer.setAttribute('aria-busy', 'false');
    chatAbort = null;
    $('chat').disabled = false;
    $('stop').disabled = true;
  }
}

$('moderate').addEventListener('click', runModerate);
$('chat').addEventListener('click', runChat);
$('stop').addEventListener('click', () => chatAbort?.abort());

// Training jobs: listed on load and polled while live updates are on.
let jobsTimer = null;
async function refreshJobs() {
  clearTimeout(jobsTimer);
  try {
    const jobs = await api.listJobs();
    $('jobs').replaceChildren(...jobs.map((j) => jobItem(j, cancel)));
    $('jobs-state').textContent = jobs.length ? `${jobs.length} job${jobs.length === 1 ? '' : 's'}, updated ${new Date().toLocaleTimeString()}` : 'No training jobs.';
  } catch (err) {
    // No key yet, a key without the train scope, or no queue: polling would only repeat it.
    $('jobs-state').textContent = `${err.code}: ${err.message}`;
    return;
  }
  if ($('jobs-live').checked) jobsTimer = setTimeout(refreshJobs, JOB_POLL_MS);
}
async function cancel(job) {
  try {
    await api.cancelJob(job.id);
  } catch (err) {
    showError(err);
  }
  refreshJobs();
}
$('jobs-refresh').addEventListener('click', () => refreshJobs());
$('jobs-live').addEventListener('change', () => refreshJobs());

// Models: the table with metrics, and the picker beside the prompt; both activate.
async function refreshModels(status) {
  try {
    const models = await api.listModels();
    $('models-table').tBodies[0].replaceChildren(...models.map((m) => modelRow(m, (x) => activate(x.id))));
    const picker = $('model');
    picker.replaceChildren(...models.map((m) => h('option', { value: m.id, selected: m.active }, m.active ? `${m.name} (active)` : m.name)));
    $('models-state').textContent = status ?? `${models.length} package${models.length === 1 ? '' : 's'}`;
  } catch (err) {
    $('models-state').textContent = `${err.code}: ${err.message}`;
  }
}
async function activate(id) {
  showError(null);
  $('models-state').textContent = `Activating ${id}...`;
  let status;
  try {
    const r = await api.activateModel(id);
    status = r.changed ? `Now serving ${r.active} (was ${r.previous}).` : `${r.active} was already active.`;
  } catch (err) {
    showError(err);
  }
  refreshModels(status);
}
$('models-refresh').addEventListener('click', () => refreshModels());
$('model-activate').addEventListener('click', () => $('model').value && activate($('model').value));

for (const [id, labels] of [['intervene-level', api.LEVELS], ['intervene-type', api.TYPES]]) {
  $(id).append(...labels.map((l) => h('option', { value: l }, l.replace(/_/g, ' '))));
}
keyState();
refreshModels();
refreshJobs();

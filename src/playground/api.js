// The page's one door to the service: every request and every response shape is read here, so
// the rest of the page sees plain objects and never the wire format.

/** API identifiers of the taxonomy (the design's fixed labels; a package only renames them). */
export const LEVELS = ['safe', 'careful', 'caution', 'refuse'];
export const TYPES = ['politics', 'illegal_risk', 'insults_bullying', 'fairness', 'privacy', 'misleading', 'safe'];

const KEY_STORAGE = 'psa-guard.api-key';

/** An error as the service reports it: a stable code and a message saying what to change. */
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE) ?? '',
  set: (key) => (key ? sessionStorage.setItem(KEY_STORAGE, key) : sessionStorage.removeItem(KEY_STORAGE)),
};

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: a proxy or an unexpected page; the status is all there is
  }
  const e = body?.error;
  return new ApiError(res.status, typeof e?.code === 'string' ? e.code : `HTTP_${res.status}`, typeof e?.message === 'string' ? e.message : `the server answered ${res.status} ${res.statusText}`, body?.request_id);
}

async function send(method, path, body, signal) {
  let res;
  try {
    res = await fetch(path, { method, headers: headers(), body, signal });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `the server could not be reached (${err?.message ?? err})`);
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

const json = async (method, path, body) => (await send(method, path, body)).json();

/** The form both /v1/moderate and /v1/chat read: files "image", field "prompt", JSON fields. */
function form(images, { prompt, policy, intervene, options }) {
  const data = new FormData();
  for (const file of images) data.append('image', file, file.name);
  if (prompt) data.append('prompt', prompt);
  if (policy !== undefined) data.append('policy', JSON.stringify(policy));
  if (intervene !== undefined) data.append('intervene', JSON.stringify(intervene));
  if (options !== undefined) data.append('options', JSON.stringify(options));
  return data;
}

const bars = (scores, labels) => labels.filter((l) => l in scores).map((label) => ({ label, p: Number(scores[label]) }));

function concepts(c, applied) {
  return {
    level: { label: c.level.label, bars: bars(c.level.scores, LEVELS) },
    type: { label: c.type.label, bars: bars(c.type.scores, TYPES) },
    applied: { level: applied.level, type: applied.type, intervened: applied.intervened === true },
  };
}

export async function moderate(images, request) {
  const body = await json('POST', 'v1/moderate', form(images, request));
  return {
    model: body.model,
    timings: body.timings,
    items: body.items.map((item) => ({
      index: item.index,
      hasImage: item.has_image !== false,
      ...concepts(item.concepts, item.applied),
      decision: item.decision,
      flagged: item.flagged === true,
      hint: item.hint ?? null,
      imageText: typeof item.image_text === 'string' ? item.image_text : null,
    })),
  };
}

/** Splits a Server-Sent Events buffer into complete events; returns them and the rest. */
function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length) events.push({ event, data: JSON.parse(data.join('\n')) });
  }
  return { events, rest };
}

/**
 * Streams /v1/chat: onConcepts(item), onDelta(text), then resolves with the end of the answer.
 * Aborting the signal closes the connection, and the server stops generating.
 */
export async function chatStream(image, request, { signal, onConcepts, onDelta }) {
  const res = await send('POST', 'v1/chat', form(image ? [image] : [], { ...request, options: { ...request.options, stream: true } }), signal);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const parsed = parseEvents(buffer + decoder.decode(value, { stream: true }));
    buffer = parsed.rest;
    for (const { event, data } of parsed.events) {
      if (event === 'concepts') onConcepts({ ...concepts(data.concepts, data.applied), model: data.model, decision: data.decision, flagged: data.flagged === true, hint: data.hint ?? null });
      else if (event === 'delta') onDelta(String(data.text ?? ''));
      else if (event === 'done') return { finishReason: data.finish_reason, usage: data.usage, timings: data.timings, refused: data.refused === true };
      else if (event === 'error') throw new ApiError(200, data.error?.code ?? 'PSA_INTERNAL', data.error?.message ?? 'generation failed', data.request_id);
    }
  }
  throw new ApiError(0, 'NETWORK', 'the stream ended before the answer was complete');
}

/**
 * GET /v1/models: OpenAI's list `{object: "list", data: [{id, object: "model", created, owned_by,
 * ...}]}` with this service's fields (name, active, provenance) beside OpenAI's.
 */
export function readModelList(body) {
  const rows = body?.object === 'list' && Array.isArray(body.data) ? body.data : [];
  return rows.map((m) => {
    const provenance = m.provenance && typeof m.provenance === 'object' ? m.provenance : {};
    return {
      id: String(m.id),
      name: String(m.name ?? m.id),
      created: typeof m.created === 'number' ? new Date(m.created * 1000).toISOString() : null,
      active: m.active === true,
      status: typeof provenance.status === 'string' ? provenance.status : null,
      metrics: (m.metrics && typeof m.metrics === 'object' ? m.metrics : provenance.metrics) ?? null,
    };
  });
}

export const listModels = async () => readModelList(await json('GET', 'v1/models'));
export const activateModel = (id) => json('POST', `v1/models/${encodeURIComponent(id)}/activate`);

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function readJob(j) {
  return {
    id: String(j.id),
    name: j.request?.output_name ?? null,
    state: String(j.state),
    phase: j.phase ?? null,
    stage: j.stage ?? null,
    step: num(j.step),
    totalSteps: num(j.total_steps),
    loss: num(j.loss),
    levelAcc: num(j.level_acc),
    typeAcc: num(j.type_acc),
    etaS: num(j.eta_s),
    error: j.error ?? null,
    modelId: j.result?.model_id ?? null,
  };
}

export const listJobs = async () => (await json('GET', 'v1/train')).jobs.map(readJob);
export const cancelJob = async (id) => readJob(await json('DELETE', `v1/train/${encodeURIComponent(id)}`));

// akoflow's live web view. No library, no network beyond this server.
// Routes (URL fragment): #/ lists workflows, #/workflow/N shows one; #token=T signs in.
'use strict';

const live = { stream: null, wf: null, timers: {}, counts: {} };
window.__akoflow = { stateLog: [], events: 0 };  // for tests and curious people
const SECTIONS = ['dag', 'timeline', 'resources', 'failures'];
const TITLES = { dag: 'DAG', timeline: 'Timeline', resources: 'CPU & memory',
                 failures: 'Failures' };
const ENDED = new Set(['FINISHED', 'FAILED', 'CANCELLED', 'SKIPPED']);

const $ = (sel, root) => (root || document).querySelector(sel);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};

function message(text, isError) {
  const main = $('#main');
  main.replaceChildren(el('p', { class: isError ? 'note err' : 'note', id: 'message',
                                 text }));
}

function liveBadge(mode) {
  const b = $('#live');
  b.className = 'live ' + mode;
  b.textContent = { on: 'live', off: 'offline', wait: 'reconnecting' }[mode];
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
  if (r.status === 401) {
    throw new Error('not signed in: open the address `akoflow serve` printed ' +
                    '(it ends in #token=...)');
  }
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).msg || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

async function signIn() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (!token) return;
  history.replaceState(null, '', location.pathname + '#/' + (params.get('go') || ''));
  await api('/auth/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
}

function stopLive() {
  if (live.stream) live.stream.close();
  live.stream = null;
  for (const t of Object.values(live.timers)) clearTimeout(t);
  live.timers = {};
  liveBadge('off');
}

function later(key, ms, fn) {
  if (live.timers[key]) return;
  live.timers[key] = setTimeout(() => { delete live.timers[key]; fn(); }, ms);
}

function follow(url, onState) {
  const es = new EventSource(url, { withCredentials: true });
  live.stream = es;
  es.onopen = () => liveBadge('on');
  es.onerror = () => liveBadge(es.readyState === EventSource.CLOSED ? 'off' : 'wait');
  es.addEventListener('state', ev => {
    window.__akoflow.events += 1;
    onState(JSON.parse(ev.data));
  });
}

// ---- the workflow list ---------------------------------------------------------------

async function showList() {
  $('#title').textContent = 'akoflow';
  $('#subtitle').textContent = 'workflows in this manifest';
  await renderList();
  follow('/akoflow-api/events/', () => later('list', 700, () => renderList().catch(fail)));
}

async function renderList() {
  const wfs = await (await api('/akoflow-api/workflows/?activities=false&limit=200')).json();
  if (!wfs.length) { message('No workflows yet: submit one (akoflow submit, or POST ' +
                             '/akoflow-api/workflows/).'); return; }
  const rows = wfs.map(w => {
    const total = Object.values(w.counts).reduce((a, b) => a + b, 0);
    const link = el('a', { href: '#/workflow/' + w.id, text: w.name });
    return el('tr', { 'data-workflow': String(w.id), 'data-state': w.state },
      el('td', { class: 'num', text: String(w.id) }), el('td', { class: 'name' }, link),
      el('td', {}, el('span', { class: 'tag s-' + w.state, text: w.state })),
      el('td', { class: 'num', text: (w.counts.FINISHED || 0) + '/' + total }),
      el('td', { text: w.site || '' }), el('td', { text: w.spec.createdAt }));
  });
  const head = el('tr', {}, ...['id', 'name', 'state', 'done', 'site', 'created (UTC)']
    .map(h => el('th', { text: h })));
  const table = el('table', { class: 'data wf', id: 'workflows' }, el('thead', {}, head),
                   el('tbody', {}, ...rows));
  $('#main').replaceChildren(el('section', {}, el('h2', { text: 'Workflows' }), table));
}

// ---- one workflow ----------------------------------------------------------------------

async function showWorkflow(id) {
  const status = await (await api(`/akoflow-api/workflows/${id}/status/`)).json();
  live.wf = id;
  const main = $('#main');
  main.replaceChildren(el('section', { id: 'summary' }, el('h2', { text: 'Summary' }),
                          el('div', { id: 'summary-body' })));
  for (const s of SECTIONS) {
    main.append(el('section', { id: s }, el('h2', { text: TITLES[s] }),
                   el('div', { id: s + '-body', class: 'note', text: 'loading…' })));
  }
  main.append(logSection());
  renderSummary(status);
  await Promise.all(SECTIONS.map(s => loadSection(id, s)));
  pickActivity();
  follow(`/akoflow-api/workflows/${id}/events/?after=${status.last_event_id}`,
         ev => onWorkflowEvent(id, ev));
}

function renderSummary(s) {
  $('#title').textContent = s.name;
  $('#subtitle').textContent = `#${s.id} · ${s.status} · site ${s.site || 'local'}`;
  document.body.dataset.status = s.status;
  const chips = Object.entries(s.counts).map(([k, n]) =>
    el('li', { class: 'chip', 'data-state': k, 'data-count': String(n) },
       el('span', { class: 'sw s-' + k }), `${k.toLowerCase()} ${n}`));
  $('#summary-body').replaceChildren(
    el('p', {}, el('span', { class: 'tag s-' + s.status, id: 'wf-status', text: s.status })),
    el('ul', { class: 'counts' }, ...chips));
}

async function loadSection(id, name) {
  const html = await (await api(`/akoflow-api/workflows/${id}/view/${name}`)).text();
  const body = $('#' + name + '-body');
  if (!body || live.wf !== id) return;
  body.className = '';
  body.innerHTML = html;  // rendered and escaped by the server's report code
  if (name === 'dag') {
    body.querySelectorAll('g.node').forEach(g => g.addEventListener('click', () =>
      pickActivity(g.dataset.activity)));
    markSelected();
  }
}

function onWorkflowEvent(id, ev) {
  if (ev.kind === 'STATE' && ev.activity) {
    const node = findNode(ev.activity);
    window.__akoflow.stateLog.push([ev.activity, ev.to_status, Date.now(), !!node]);
    if (node) setNodeState(node, ev.to_status);
    else later('dag', 1000, () => loadSection(id, 'dag'));
    if (ENDED.has(ev.to_status)) {
      later('charts', 1500, () => ['timeline', 'resources', 'failures']
        .forEach(s => loadSection(id, s).catch(fail)));
    }
    if (ev.activity === $('#log-activity').value) later('log', 500, loadLog);
  }
  later('summary', 400, async () => renderSummary(
    await (await api(`/akoflow-api/workflows/${id}/status/`)).json()));
  if (ev.kind === 'WORKFLOW') SECTIONS.forEach(s => loadSection(id, s).catch(fail));
}

function findNode(name) {
  return $(`#dag g.node[data-activity="${CSS.escape(name)}"]`);
}

function setNodeState(node, state) {
  node.dataset.state = state;
  const rect = node.querySelector('rect');
  if (rect) rect.setAttribute('class', 's-' + state);
  node.classList.toggle('light', !['FINISHED', 'FAILED', 'CANCELLED', 'RUNNING']
    .includes(state));
  const title = node.querySelector('title');
  if (title) title.textContent = `${node.dataset.activity} — ${state}`;
}

function logSection() {
  const select = el('select', { id: 'log-activity' });
  const stream = el('select', { id: 'log-stream' }, el('option', { text: 'stdout' }),
                    el('option', { text: 'stderr' }));
  select.addEventListener('change', () => { markSelected(); loadLog(); });
  stream.addEventListener('change', loadLog);
  return el('section', { id: 'log' }, el('h2', { text: 'Activity log' }),
    el('div', { class: 'logbar' }, el('label', { text: 'activity ' }), select,
       el('label', { text: 'stream ' }), stream,
       el('span', { class: 'note', id: 'log-note' })),
    el('pre', { id: 'log-text', class: 'stderr' }));
}

function pickActivity(name) {
  const select = $('#log-activity');
  const names = [...document.querySelectorAll('#dag g.node')].map(g => g.dataset.activity);
  if (!select.options.length) names.forEach(n => select.append(el('option', { text: n })));
  if (name) select.value = name;
  markSelected();
  loadLog();
}

function markSelected() {
  const name = $('#log-activity') && $('#log-activity').value;
  document.querySelectorAll('#dag g.node').forEach(g =>
    g.classList.toggle('selected', g.dataset.activity === name));
}

async function loadLog() {
  const name = $('#log-activity').value;
  if (!name || live.wf === null) return;
  const stream = $('#log-stream').value;
  const r = await api(`/akoflow-api/workflows/${live.wf}/activities/` +
                      `${encodeURIComponent(name)}/log/?stream=${stream}&max_bytes=16384`);
  const out = await r.json();
  $('#log-note').textContent = out.attempt ? `attempt ${out.attempt}` : 'not started yet';
  $('#log-text').textContent = out.text || '(empty)';
}

// ---- routing ---------------------------------------------------------------------------

function fail(err) { message(String(err.message || err), true); }

async function route() {
  stopLive();
  live.wf = null;
  const m = location.hash.match(/^#\/workflow\/(\d+)/);
  try {
    if (m) await showWorkflow(Number(m[1])); else await showList();
  } catch (err) { fail(err); }
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', async () => {
  try { await signIn(); } catch (err) { fail(err); return; }
  route();
});

/**
 * The live view's script, as the browser runs it (plain ES2022, no imports):
 * the relay inlines it into the page under a CSP hash. It reads the
 * relay's WebSocket — the sanitized inspection stream — and shows, from the
 * root actor's messages only: the statechart as nested boxes built from the
 * `@xstate.actor` message's definition, the active states highlighted (and
 * the ones just left fading, so a state held for one turn is seen), the
 * running timers counting down, the counters and the last failure from the
 * snapshot's context, the state trail and the last events with their times.
 * Everything is written with `textContent`: nothing received becomes markup.
 *
 * `CONFIG` is defined before it by live-page.ts: `{ wsUrl, timersType }`.
 */
export const LIVE_PAGE_SCRIPT = String.raw`
const MAX_EVENTS = 50;
const MAX_TRAIL = 30;
const RECONNECT_MS = 2000;
const TICK_MS = 250;
// What the counters panel shows, from the snapshot's context.
const COUNTERS = [
  ['requests', 'Registration requests'],
  ['registrations', 'Registrations'],
  ['attempt', 'Failed attempts in a row'],
  ['probes', 'DDS health probes'],
  ['callbacks', 'DDS callbacks'],
  ['lock', 'Lock'],
  ['nodeId', 'Node id'],
  ['publicKeyPrefix', 'Public key'],
];

const byId = (id) => document.getElementById(id);
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}
function clock(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds()) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}
function duration(ms) {
  const t = Math.max(0, ms);
  if (t < 10000) return (t / 1000).toFixed(1) + ' s';
  const s = Math.round(t / 1000);
  if (s < 120) return s + ' s';
  const m = Math.floor(s / 60);
  if (m < 120) return m + ' min ' + (s % 60) + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}
function stamp(msg) {
  const n = Number(msg.createdAt);
  return Number.isFinite(n) ? n : Date.now();
}
function clip(text, max) {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}
// The state value as a line: registered (health: fresh, callbackWindow: open).
function describe(value) {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object') return String(value);
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [k, v] = entries[0];
    if (typeof v === 'string') return k + '.' + v;
    if (v && typeof v === 'object') return k + ' (' + Object.entries(v).map(([rk, rv]) => rk + ': ' + describe(rv)).join(', ') + ')';
  }
  return entries.map(([k, v]) => k + ': ' + describe(v)).join(', ');
}
// Every active state as a path: registered, registered.health, registered.health.fresh, …
function activePaths(value, prefix, out) {
  if (typeof value === 'string') out.push(prefix + value);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push(prefix + k);
      activePaths(v, prefix + k + '.', out);
    }
  }
  return out;
}

let view = null;
function freshView() {
  return { root: null, boxes: new Map(), active: [], timers: [], events: [], trail: [], lastState: null };
}

function setStatus(text, className) {
  const s = byId('status');
  s.textContent = text;
  s.className = 'status ' + className;
}

function buildChart(definition) {
  const chart = byId('chart');
  chart.replaceChildren();
  view.boxes.clear();
  const add = (parent, key, node, path, depth) => {
    const config = node && typeof node === 'object' ? node : {};
    const kids = config.states && typeof config.states === 'object' ? Object.entries(config.states) : [];
    const kind = config.type === 'parallel' ? 'parallel' : config.type === 'final' ? 'final' : kids.length ? 'compound' : 'atomic';
    const box = el('div', 'state ' + kind);
    box.dataset.state = path;
    box.dataset.depth = String(depth);
    box.append(el('div', 'name', key), el('div', 'timer'));
    if (kids.length) {
      const inner = el('div', 'children');
      for (const [k, n] of kids) add(inner, k, n, path + '.' + k, depth + 1);
      box.append(inner);
    }
    parent.append(box);
    view.boxes.set(path, box);
  };
  const top = definition && typeof definition.states === 'object' && definition.states ? Object.entries(definition.states) : [];
  for (const [k, n] of top) add(chart, k, n, k, 1);
  if (!top.length) chart.append(el('p', 'empty', 'the machine sent no states'));
}

function showSnapshot(snapshot, at) {
  if (!snapshot || typeof snapshot !== 'object') return;
  const paths = activePaths(snapshot.value, '', []);
  for (const path of view.active) {
    const box = view.boxes.get(path);
    if (!box || paths.includes(path)) continue;
    box.classList.remove('active', 'recent');
    void box.offsetWidth; // restart the fade
    box.classList.add('recent');
  }
  for (const path of paths) {
    const box = view.boxes.get(path);
    if (box) {
      box.classList.remove('recent');
      box.classList.add('active');
    }
  }
  view.active = paths;
  const text = describe(snapshot.value);
  const status = snapshot.status && snapshot.status !== 'active' ? ' — ' + snapshot.status : '';
  byId('current').textContent = text + status;
  if (text !== view.lastState) {
    view.lastState = text;
    view.trail.unshift({ at, text });
    view.trail.length = Math.min(view.trail.length, MAX_TRAIL);
    renderList('trail', view.trail, (item) => [el('time', '', clock(item.at)), el('span', 'what', item.text)]);
  }
  showContext(snapshot.context);
}

function showContext(context) {
  const c = context && typeof context === 'object' ? context : {};
  const rows = [];
  for (const [key, label] of COUNTERS) {
    const v = c[key];
    rows.push(el('dt', '', label), el('dd', key === 'lock' ? 'lock ' + String(v) : '', v === null || v === undefined ? '—' : String(v)));
  }
  byId('counters').replaceChildren(...rows);
  const failure = byId('failure');
  const f = c.error || c.lastFailure;
  if (f && typeof f === 'object') {
    const head = [f.class, f.status === null || f.status === undefined ? f.code : 'HTTP ' + f.status].filter(Boolean).join(' · ');
    failure.className = 'failure';
    failure.replaceChildren(el('div', 'head', head || 'failed'), el('div', 'message', clip(String(f.message || ''), 400)));
  } else {
    failure.className = 'empty';
    failure.textContent = 'none';
  }
}

function eventDetail(event) {
  const rest = Object.assign({}, event);
  delete rest.type;
  const keys = Object.keys(rest);
  if (!keys.length) return '';
  return clip(JSON.stringify(keys.length === 1 && keys[0] === 'output' ? rest.output : rest), 160);
}

function addEvent(event, at) {
  if (!event || typeof event.type !== 'string') return;
  const detail = eventDetail(event);
  const last = view.events[0];
  // The same event again (a probe every few seconds): one line, counted.
  if (last && last.type === event.type && last.detail === detail) {
    last.at = at;
    last.count += 1;
  } else {
    view.events.unshift({ at, type: event.type, detail, count: 1 });
    view.events.length = Math.min(view.events.length, MAX_EVENTS);
  }
  renderList('events', view.events, (item) => [
    el('time', '', clock(item.at)),
    el('span', 'what', item.type + (item.count > 1 ? ' ×' + item.count : '')),
    el('span', 'detail', item.detail),
  ]);
}

function renderList(id, items, cells) {
  byId(id).replaceChildren(...items.map((item) => {
    const li = el('li');
    li.append(...cells(item));
    return li;
  }));
}

function showTimers(timers) {
  view.timers = Array.isArray(timers) ? timers.filter((t) => t && typeof t.dueAt === 'number') : [];
  const body = byId('timers').querySelector('tbody');
  body.replaceChildren(...view.timers.map((t) => {
    const tr = el('tr');
    const bar = el('progress');
    bar.max = Math.max(1, t.ms);
    tr.append(el('td', 'what', String(t.delay)), el('td', '', String(t.state)), el('td', 'remaining'), el('td', '', duration(t.ms)), el('td', 'bar'));
    tr.lastChild.append(bar);
    return tr;
  }));
  byId('no-timers').hidden = view.timers.length > 0;
  tick();
}

function tick() {
  if (!view) return;
  const now = Date.now();
  const rows = byId('timers').querySelectorAll('tbody tr');
  for (const box of view.boxes.values()) box.querySelector(':scope > .timer').textContent = '';
  view.timers.forEach((t, i) => {
    const left = t.dueAt - now;
    const row = rows[i];
    if (row) {
      row.querySelector('.remaining').textContent = duration(left);
      row.querySelector('progress').value = Math.max(0, Math.min(t.ms, t.ms - left));
    }
    const box = view.boxes.get(t.state);
    if (box) box.querySelector(':scope > .timer').textContent = t.delay + ' ' + duration(left);
  });
}

function handle(msg) {
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
  const at = stamp(msg);
  if (msg.type === '@xstate.actor') {
    if (msg.parentId !== undefined && msg.parentId !== null) return; // an invoked actor
    let definition = null;
    try { definition = typeof msg.definition === 'string' ? JSON.parse(msg.definition) : null; } catch { definition = null; }
    view.root = msg.sessionId;
    view.active = [];
    view.lastState = null;
    buildChart(definition);
    byId('machine').textContent = typeof msg.name === 'string' ? '— ' + msg.name : '';
    showSnapshot(msg.snapshot, at);
    return;
  }
  if (msg.sessionId !== view.root || view.root === null) return;
  if (msg.type === '@xstate.snapshot') showSnapshot(msg.snapshot, at);
  else if (msg.type === '@xstate.event') addEvent(msg.event, at);
  else if (msg.type === CONFIG.timersType) showTimers(msg.timers);
}

function connect() {
  setStatus('connecting…', 'connecting');
  const ws = new WebSocket(CONFIG.wsUrl);
  ws.onopen = () => {
    // The relay replays what it kept: start again from it.
    view = freshView();
    byId('chart').replaceChildren(el('p', 'empty', 'waiting for the registrar…'));
    renderList('events', [], () => []);
    renderList('trail', [], () => []);
    showTimers([]);
    showContext(null);
    setStatus('live', 'live');
  };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (view) handle(msg);
  };
  ws.onclose = () => {
    setStatus('disconnected — retrying', 'disconnected');
    setTimeout(connect, RECONNECT_MS);
  };
}

setInterval(tick, TICK_MS);
connect();
`;

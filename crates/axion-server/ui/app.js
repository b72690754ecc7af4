// The web UI of `axion serve`: a client of the server's public API, the same calls the SDKs
// and loaders make, signed in with one project's key pair. Every text from a trace goes into
// the page as a text node (never as HTML): trace data is whatever an application sent.

const KEYS = 'axion.keys';
const PAGE_SIZES = [25, 50, 100];
const DATA_TYPES = ['NUMERIC', 'BOOLEAN', 'CATEGORICAL'];

const session = { keys: null, project: null };
const LIVE_INTERVAL_MS = 3000;
let liveTimer = null;
let routeSeq = 0;

/** Called as a page starts: stays true until a newer navigation begins, whose page wins. */
function current() {
  const seq = routeSeq;
  return () => seq === routeSeq;
}

// ---------------------------------------------------------------- DOM helpers

/** An element: `attrs` are properties (`class`, `text`, `on…`) or attributes; children may nest. */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (key === 'style') Object.assign(element.style, value); // CSSOM: allowed by the CSP
    else if (key === 'value') element.value = value;
    else if (key === 'checked') element.checked = Boolean(value);
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A link inside the UI: followed without reloading the page. */
function link(href, ...children) {
  return h('a', {
    href,
    onclick: (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      navigate(href);
    },
  }, children);
}

function show(...children) {
  const main = document.getElementById('main');
  main.replaceChildren();
  append(main, children);
}

function errorBox(error) {
  return h('div', { class: 'error-box', role: 'alert', text: error instanceof Error ? error.message : String(error) });
}

// ---------------------------------------------------------------- formatting

function formatTime(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

function formatSeconds(seconds) {
  if (typeof seconds !== 'number' || seconds < 0) return '–';
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

function formatCost(usd) {
  if (typeof usd !== 'number' || usd < 0) return '–';
  if (usd === 0) return '$0';
  return usd >= 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toPrecision(3)}`;
}

function formatUsage(usage) {
  if (!usage || typeof usage !== 'object') return null;
  const parts = Object.entries(usage)
    .filter(([, value]) => typeof value === 'number')
    .map(([key, value]) => `${key} ${value}`);
  return parts.length ? parts.join(' · ') : null;
}

/** A `datetime-local` field's value (the browser's local time) as ISO-8601 UTC. */
function localToIso(text) {
  return new Date(text).toISOString();
}

/** Milliseconds since the epoch; 0 for a missing or unreadable time (sorted first). */
function timeOf(iso) {
  const time = iso ? new Date(iso).getTime() : 0;
  return Number.isNaN(time) ? 0 : time;
}

function seconds(start, end) {
  if (!start || !end) return null;
  return (new Date(end) - new Date(start)) / 1000;
}

function jsonText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function isEmpty(value) {
  return value === null || value === undefined || value === ''
    || (typeof value === 'object' && Object.keys(value).length === 0);
}

/** Chat messages (`[{role, content}]`, `{messages: […]}` or one message) as a list, else null. */
function chatMessages(value) {
  if (value && typeof value === 'object' && !Array.isArray(value) && Array.isArray(value.messages)) return chatMessages(value.messages);
  const list = Array.isArray(value) ? value : [value];
  const isMessage = (item) => item && typeof item === 'object' && typeof item.role === 'string'
    && ('content' in item || 'tool_calls' in item);
  return list.length && list.every(isMessage) ? list : null;
}

/** A message's content as text: a string as is, content parts by their text. */
function contentText(content) {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part) => (part && typeof part.text === 'string' ? part.text : jsonText(part))).join('\n');
  }
  return jsonText(content);
}

function chatView(messages) {
  return h('div', { class: 'chat' }, messages.map((message) => h('div', { class: `message role-${message.role}` },
    h('span', { class: 'role', text: message.role }),
    message.name ? h('span', { class: 'muted', text: ` ${message.name}` }) : null,
    h('div', { class: 'content', text: contentText(message.content) }),
    message.tool_calls ? h('pre', { class: 'json', text: jsonText(message.tool_calls) }) : null)));
}

/** A titled value: chat messages as a conversation (with the JSON a click away), the rest as JSON. */
function jsonBlock(title, value, testId) {
  if (isEmpty(value)) return null;
  const raw = h('pre', { class: 'json', text: jsonText(value) });
  const messages = chatMessages(value);
  if (!messages) return [h('h2', { text: title }), h('div', { 'data-testid': testId }, raw)];
  const body = h('div', { 'data-testid': testId }, chatView(messages));
  let showingJson = false;
  const toggle = h('button', {
    type: 'button', class: 'small', text: 'JSON',
    onclick: () => {
      showingJson = !showingJson;
      body.replaceChildren(showingJson ? raw : chatView(messages));
      toggle.textContent = showingJson ? 'Chat' : 'JSON';
    },
  });
  return [h('h2', {}, title, ' ', toggle), body];
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs
    .filter(([, value]) => value !== null && value !== undefined && value !== '')
    .map(([name, value]) => [h('dt', { text: name }), h('dd', {}, value)]));
}

function chips(values) {
  return (values || []).map((value) => h('span', { class: 'chip', text: value }));
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A call to `/api/public{path}` with the signed-in keys; array parameters repeat. */
async function api(path, { method = 'GET', params = {}, body, keys = session.keys } = {}) {
  const url = new URL(`/api/public${path}`, location.origin);
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== '') url.searchParams.append(key, item);
    }
  }
  const pair = new TextEncoder().encode(`${keys.publicKey}:${keys.secretKey}`);
  const headers = { Authorization: `Basic ${btoa(String.fromCharCode(...pair))}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `The server did not answer (${error.message}).`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) {
    const detail = (data && (data.message || data.error)) || text || response.statusText;
    if (response.status === 401 && keys === session.keys) signOut(`Signed out: ${detail}`);
    throw new ApiError(response.status, `${method} ${url.pathname}: ${response.status} ${detail}`);
  }
  return data;
}

// ---------------------------------------------------------------- signing in

function storedKeys() {
  for (const store of [sessionStorage, localStorage]) {
    try {
      const keys = JSON.parse(store.getItem(KEYS) || 'null');
      if (keys && keys.publicKey && keys.secretKey) return keys;
    } catch { /* a value this UI did not write: ignore it */ }
  }
  return null;
}

/** Signs in with `keys` once the server accepts them (the project they open). */
async function useKeys(keys) {
  const projects = await api('/projects', { keys });
  session.keys = keys;
  session.project = projects.data[0];
}

function signOut(message) {
  routeSeq += 1; // whatever was loading is not shown any more
  clearTimeout(liveTimer);
  document.getElementById('main').removeAttribute('aria-busy');
  sessionStorage.removeItem(KEYS);
  localStorage.removeItem(KEYS);
  session.keys = null;
  session.project = null;
  renderHeader();
  renderSignIn(message);
}

function renderSignIn(message) {
  const publicKey = h('input', { name: 'publicKey', autocomplete: 'username', required: true, placeholder: 'pk-lf-…' });
  const secretKey = h('input', { name: 'secretKey', type: 'password', autocomplete: 'current-password', required: true, placeholder: 'sk-lf-…' });
  const remember = h('input', { type: 'checkbox', name: 'remember' });
  const status = h('div');
  const form = h('form', {
    class: 'signin',
    onsubmit: async (event) => {
      event.preventDefault();
      const keys = { publicKey: publicKey.value.trim(), secretKey: secretKey.value.trim() };
      status.replaceChildren();
      try {
        await useKeys(keys);
        (remember.checked ? localStorage : sessionStorage).setItem(KEYS, JSON.stringify(keys));
        renderHeader();
        route();
      } catch (error) {
        status.replaceChildren(errorBox(error.status === 401
          ? 'Those keys were not accepted. Use the pair `axion serve` printed on its first start (or the one given with --public-key/--secret-key).'
          : error));
      }
    },
  },
  h('label', {}, 'Public key', publicKey),
  h('label', {}, 'Secret key', secretKey),
  h('label', { class: 'check' }, remember, 'Remember on this browser'),
  h('div', {}, h('button', { class: 'primary', type: 'submit', text: 'Sign in' })),
  status);
  show(h('h1', { text: 'Sign in' }),
    h('p', { class: 'muted', text: 'Sign in with a project\'s API keys, the pair the SDKs use (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY).' }),
    message ? errorBox(message) : null,
    form);
  publicKey.focus();
}

function renderHeader() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  nav.replaceChildren();
  who.replaceChildren();
  if (!session.project) return;
  const base = `/project/${encodeURIComponent(session.project.id)}`;
  for (const [label, path] of [['Dashboard', 'dashboard'], ['Traces', 'traces'], ['Observations', 'observations'], ['Scores', 'scores'], ['Sessions', 'sessions']]) {
    const current = location.pathname.startsWith(`${base}/${path}`);
    nav.append(link(`${base}/${path}`, label));
    if (current) nav.lastChild.classList.add('current');
  }
  append(who, [
    h('span', { text: session.project.name || session.project.id, title: session.project.id }),
    h('button', { type: 'button', text: 'Sign out', onclick: () => signOut() }),
  ]);
}

// ---------------------------------------------------------------- routing

function navigate(href) {
  history.pushState(null, '', href);
  route();
}

/** Renders the page for the current URL. `main` is `aria-busy` until the newest one is shown. */
async function route() {
  routeSeq += 1;
  clearTimeout(liveTimer);
  const main = document.getElementById('main');
  main.setAttribute('aria-busy', 'true');
  const fresh = current();
  try {
    await renderPage();
  } catch (error) {
    if (session.keys && fresh()) show(errorBox(error));
  } finally {
    if (fresh()) main.removeAttribute('aria-busy');
  }
}

async function renderPage() {
  renderHeader();
  if (!session.keys) return renderSignIn();
  const parts = location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const own = session.project.id;
  if (parts.length === 0 || (parts[0] === 'project' && parts.length <= 2)) {
    history.replaceState(null, '', `/project/${encodeURIComponent(own)}/traces`);
    renderHeader();
    return traceList();
  }
  if (parts[0] !== 'project') return show(h('h1', { text: 'Not found' }), link(`/project/${encodeURIComponent(own)}/traces`, 'Traces'));
  if (parts[1] !== own) {
    return show(h('h1', { text: 'Another project' }),
      errorBox(`This page belongs to project ${parts[1]}; the keys you signed in with open project ${own}.`),
      link(`/project/${encodeURIComponent(own)}/traces`, 'Go to your traces'));
  }
  const [, , section, id] = parts;
  if (section === 'traces' && id) return traceDetail(id);
  if (section === 'traces') return traceList();
  if (section === 'sessions' && id) return sessionDetail(id);
  if (section === 'sessions') return sessionList();
  if (section === 'observations') return observationList();
  if (section === 'scores') return scoreList();
  if (section === 'dashboard') return dashboard();
  return show(h('h1', { text: 'Not found' }));
}

function projectPath(...rest) {
  return `/project/${[session.project.id, ...rest].map(encodeURIComponent).join('/')}`;
}

/** A filter form of a list page: its fields become the URL's query, which is the page's state. */
function filterForm(section, ...fields) {
  const form = h('form', {
    class: 'filters',
    onsubmit: (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      for (const [key, value] of new FormData(form)) if (String(value).trim()) next.set(key, String(value).trim());
      navigate(`${projectPath(section)}${next.size ? `?${next}` : ''}`);
    },
  },
  fields,
  h('button', { class: 'primary', type: 'submit', text: 'Apply' }),
  h('button', { type: 'button', text: 'Clear', onclick: () => navigate(projectPath(section)) }));
  return form;
}

/** A text field of a filter form, filled from the URL. */
function textField(query, name, label, attrs = {}) {
  return h('label', {}, label, h('input', { name, value: query.get(name) || '', ...attrs }));
}

/** A choice of a filter form ("any" or one of `options`), set from the URL. */
function choiceField(query, name, label, options) {
  return h('label', {}, label, h('select', { name },
    h('option', { value: '', text: 'any' }),
    options.map((option) => h('option', { value: option, selected: query.get(name) === option, text: option.toLowerCase() }))));
}

/** Offset pages: links to the newer and older pages around "Page n of m · N items". */
function offsetPager(section, meta, noun) {
  const pageLink = (to, label) => {
    const next = new URLSearchParams(location.search);
    next.set('page', String(to));
    return link(`${projectPath(section)}?${next}`, label);
  };
  return h('div', { class: 'pager' },
    meta.page > 1 ? pageLink(meta.page - 1, '← Newer') : null,
    h('span', { class: 'muted', text: `Page ${meta.page} of ${Math.max(meta.totalPages, 1)} · ${meta.totalItems} ${noun}` }),
    meta.page < meta.totalPages ? pageLink(meta.page + 1, 'Older →') : null);
}

// ---------------------------------------------------------------- traces

/** `page` from the URL (1 when missing or not a number). */
function pageNumber(query) {
  return Math.max(1, Number.parseInt(query.get('page') || '1', 10) || 1);
}

/** The datetime conditions on `column` of a list's From/Before fields (local time in the form). */
function rangeConditions(query, column) {
  return [['from', '>='], ['to', '<']]
    .filter(([name]) => query.get(name))
    .map(([name, operator]) => ({ type: 'datetime', column, operator, value: localToIso(query.get(name)) }));
}

/** `limit` from the URL: any size the API allows (1–100), 50 by default. */
function pageSize(query) {
  const size = Number.parseInt(query.get('limit') || '', 10);
  return size >= 1 && size <= 100 ? size : 50;
}

function pageSizeChoice(limit) {
  const sizes = PAGE_SIZES.includes(limit) ? PAGE_SIZES : [limit, ...PAGE_SIZES];
  return h('label', {}, 'Per page', h('select', { name: 'limit' },
    sizes.map((size) => h('option', { value: String(size), selected: size === limit, text: String(size) }))));
}

/** The list's structured `filter`: every field of the form, as Langfuse's filter conditions. */
function traceConditions(query) {
  const conditions = [];
  const list = (text) => text.split(',').map((item) => item.trim()).filter(Boolean);
  if (query.get('name')) conditions.push({ type: 'string', column: 'name', operator: 'contains', value: query.get('name') });
  for (const column of ['userId', 'sessionId']) {
    if (query.get(column)) conditions.push({ type: 'string', column, operator: '=', value: query.get(column) });
  }
  if (query.get('tags')) conditions.push({ type: 'arrayOptions', column: 'tags', operator: 'all of', value: list(query.get('tags')) });
  if (query.get('environment')) conditions.push({ type: 'stringOptions', column: 'environment', operator: 'any of', value: list(query.get('environment')) });
  conditions.push(...rangeConditions(query, 'timestamp'));
  if (query.get('errors')) conditions.push({ type: 'number', column: 'errorCount', operator: '>', value: 0 });
  return conditions;
}

async function traceList() {
  const fresh = current();
  const query = new URLSearchParams(location.search);
  const limit = pageSize(query);
  const page = pageNumber(query);
  const conditions = traceConditions(query);
  const result = await api('/traces', {
    params: {
      page, limit, orderBy: 'timestamp.desc', fields: 'core,scores,observations,metrics',
      filter: conditions.length ? JSON.stringify(conditions) : undefined,
    },
  });
  if (!fresh()) return;
  const form = filterForm('traces',
    textField(query, 'name', 'Name contains', { type: 'search' }),
    textField(query, 'userId', 'User'),
    textField(query, 'sessionId', 'Session'),
    textField(query, 'tags', 'Tags (all of)', { placeholder: 'a, b' }),
    textField(query, 'environment', 'Environment'),
    textField(query, 'from', 'From', { type: 'datetime-local', step: 1 }),
    textField(query, 'to', 'Before', { type: 'datetime-local', step: 1 }),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'errors', value: '1', checked: query.get('errors') }), 'With errors'),
    pageSizeChoice(limit),
    h('label', { class: 'check', title: `Reload the list every ${LIVE_INTERVAL_MS / 1000} s` },
      h('input', { type: 'checkbox', name: 'live', value: '1', checked: query.get('live'), onchange: (event) => event.target.form.requestSubmit() }), 'Live'));

  const rows = result.data.map((trace) => {
    const href = projectPath('traces', trace.id);
    return h('tr', { class: 'link', 'data-trace-id': trace.id, onclick: (event) => { if (!event.target.closest('a')) navigate(href); } },
      h('td', { class: 'mono', text: formatTime(trace.timestamp) }),
      h('td', {}, link(href, trace.name || trace.id)),
      h('td', { text: trace.userId || '' }),
      h('td', {}, trace.sessionId ? link(projectPath('sessions', trace.sessionId), trace.sessionId) : ''),
      h('td', {}, chips(trace.tags)),
      h('td', { class: 'num', text: formatSeconds(trace.latency) }),
      h('td', { class: 'num', text: formatCost(trace.totalCost) }),
      h('td', { class: 'num', text: String((trace.observations || []).length) }),
      h('td', { class: 'num', text: String((trace.scores || []).length) }));
  });
  const goTo = h('form', {
    class: 'goto',
    onsubmit: (event) => {
      event.preventDefault();
      const id = new FormData(goTo).get('traceId').trim();
      if (id) navigate(projectPath('traces', id));
    },
  }, textField(new URLSearchParams(), 'traceId', 'Open a trace by id', { placeholder: 'trace id from a log line' }),
  h('button', { type: 'submit', text: 'Open' }));
  show(h('h1', { text: 'Traces' }), goTo, form,
    rows.length
      ? h('table', { 'data-testid': 'traces' },
        h('thead', {}, h('tr', {}, ['Time', 'Name', 'User', 'Session', 'Tags'].map((name) => h('th', { text: name })),
          ['Latency', 'Cost', 'Observations', 'Scores'].map((name) => h('th', { class: 'num', text: name })))),
        h('tbody', {}, rows))
      : h('p', { class: 'muted', text: conditions.length ? 'No trace matches these filters.' : 'No traces yet. Point an SDK at this server and they appear here.' }),
    offsetPager('traces', result.meta, 'traces'));
  if (query.get('live')) {
    const shown = location.href;
    const reload = () => {
      if (location.href !== shown) return;
      // Not while someone is editing the filters: the reload would throw their typing away.
      if (form.contains(document.activeElement) && document.activeElement.type !== 'checkbox') {
        liveTimer = setTimeout(reload, LIVE_INTERVAL_MS);
        return;
      }
      route();
    };
    liveTimer = setTimeout(reload, LIVE_INTERVAL_MS);
  }
}

/** The observations as a tree: roots first, each node's children in start order. */
function observationTree(observations) {
  const byId = new Map(observations.map((observation) => [observation.id, { observation, children: [] }]));
  const roots = [];
  for (const node of byId.values()) {
    const parent = node.observation.parentObservationId && byId.get(node.observation.parentObservationId);
    (parent && parent !== node ? parent.children : roots).push(node);
  }
  const byStart = (a, b) => timeOf(a.observation.startTime) - timeOf(b.observation.startTime);
  const ordered = [];
  const seen = new Set();
  const walk = (nodes, depth) => {
    for (const node of nodes.sort(byStart)) {
      if (seen.has(node)) continue; // a parent cycle sent by a client: shown once
      seen.add(node);
      ordered.push({ observation: node.observation, depth });
      walk(node.children, depth + 1);
    }
  };
  walk(roots, 0);
  for (const node of byId.values()) if (!seen.has(node)) ordered.push({ observation: node.observation, depth: 0 });
  return ordered;
}

async function traceDetail(id) {
  const fresh = current();
  const trace = await api(`/traces/${encodeURIComponent(id)}`);
  if (!fresh()) return;
  const observations = trace.observations || [];
  const selectedId = new URLSearchParams(location.search).get('observation');
  let selected = observations.find((observation) => observation.id === selectedId) || null;

  // The timeline's ends (a reduce: a spread of a huge trace's times would overflow the stack).
  const times = [trace.timestamp, ...observations.flatMap((o) => [o.startTime, o.endTime])]
    .map(timeOf).filter((time) => time > 0);
  const begin = times.length ? times.reduce((a, b) => Math.min(a, b)) : 0;
  const span = Math.max((times.length ? times.reduce((a, b) => Math.max(a, b)) : 0) - begin, 1);
  const bar = (start, end) => {
    const from = timeOf(start) ? (timeOf(start) - begin) / span : 0;
    const to = timeOf(end) ? (timeOf(end) - begin) / span : from;
    return h('div', { class: 'timeline' }, h('span', { style: { left: `${(from * 100).toFixed(2)}%`, width: `${(Math.max(to - from, 0) * 100).toFixed(2)}%` } }));
  };

  const detail = h('section', { 'data-testid': 'detail' });
  const tree = h('div', { class: 'tree', 'data-testid': 'tree' });
  const select = (observation) => {
    selected = observation;
    const url = new URL(location.href);
    if (observation) url.searchParams.set('observation', observation.id);
    else url.searchParams.delete('observation');
    history.replaceState(null, '', url);
    for (const row of tree.children) row.classList.toggle('selected', row.dataset.id === (observation ? observation.id : ''));
    renderDetail();
  };
  const choose = (observation) => ({
    tabindex: 0, role: 'button',
    onclick: () => select(observation),
    onkeydown: (event) => {
      if (event.key !== 'Enter' && event.key !== ' ') return;
      event.preventDefault();
      select(observation);
    },
  });
  tree.append(h('div', { class: 'node', 'data-id': '', ...choose(null) },
    h('div', { class: 'label' }, h('span', { class: 'type type-TRACE', text: 'TRACE' }), h('span', { class: 'name', text: trace.name || trace.id }),
      h('span', { class: 'meta', text: formatSeconds(trace.latency) })),
    bar(new Date(begin).toISOString(), new Date(begin + span).toISOString())));
  for (const { observation, depth } of observationTree(observations)) {
    const duration = seconds(observation.startTime, observation.endTime);
    tree.append(h('div', {
      class: `node level-${observation.level}`, 'data-id': observation.id, 'data-depth': depth, ...choose(observation),
    },
    h('div', { class: 'label', style: { paddingLeft: `${depth * 1.1}rem` } },
      h('span', { class: `type type-${observation.type}`, text: observation.type }),
      h('span', { class: 'name', text: observation.name || observation.id }),
      h('span', { class: 'meta', text: [duration === null ? null : formatSeconds(duration), observation.model, formatCost(observation.calculatedTotalCost ?? -1)].filter((part) => part && part !== '–').join(' · ') })),
    bar(observation.startTime, observation.endTime)));
  }

  const renderDetail = () => {
    detail.replaceChildren();
    if (!selected) {
      append(detail, [h('h2', { text: 'Trace' }), jsonBlock('Input', trace.input, 'input'), jsonBlock('Output', trace.output, 'output'),
        jsonBlock('Metadata', trace.metadata, 'metadata')]);
    } else {
      const o = selected;
      append(detail, [
        h('h2', {}, h('span', { class: `type type-${o.type}`, text: o.type }), ' ', o.name || o.id),
        facts([
          ['Id', h('span', { class: 'mono', text: o.id })],
          ['Start', formatTime(o.startTime)],
          ['End', o.endTime ? formatTime(o.endTime) : null],
          ['Duration', o.endTime ? formatSeconds(seconds(o.startTime, o.endTime)) : null],
          ['Time to first token', o.completionStartTime ? formatSeconds(seconds(o.startTime, o.completionStartTime)) : null],
          ['Level', h('span', { class: `level-text-${o.level}`, text: o.level })],
          ['Status', o.statusMessage || null],
          ['Model', o.model || null],
          ['Usage', formatUsage(o.usageDetails)],
          ['Cost', typeof o.calculatedTotalCost === 'number' ? formatCost(o.calculatedTotalCost) : null],
          ['Version', o.version || null],
        ]),
        jsonBlock('Model parameters', o.modelParameters, 'model-parameters'),
        jsonBlock('Input', o.input, 'input'), jsonBlock('Output', o.output, 'output'), jsonBlock('Metadata', o.metadata, 'metadata'),
      ]);
    }
    append(detail, scoreForm(trace, selected));
  };
  renderDetail();

  const scoreTarget = (score) => {
    if (!score.observationId) return 'trace';
    const observation = observations.find((o) => o.id === score.observationId);
    return observation ? observation.name || observation.id : score.observationId;
  };
  const scores = trace.scores || [];
  const remove = h('button', {
    type: 'button', class: 'danger', text: 'Delete trace',
    onclick: async () => {
      if (!confirm(`Delete the trace ${trace.name || trace.id}, its observations and its scores?`)) return;
      try {
        await api(`/traces/${encodeURIComponent(trace.id)}`, { method: 'DELETE' });
        navigate(projectPath('traces'));
      } catch (error) {
        alert(error.message);
      }
    },
  });
  // The trace as the API returns it, observations and scores included, saved as a file.
  const download = h('button', {
    type: 'button', text: 'Download JSON',
    onclick: () => {
      const blob = new Blob([JSON.stringify(trace, null, 2)], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const anchor = h('a', { href: url, download: `trace-${trace.id}.json` });
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
      setTimeout(() => URL.revokeObjectURL(url), 0);
    },
  });
  show(
    h('p', { class: 'pager' }, link(projectPath('traces'), '← Traces'), h('span', { class: 'spacer' }), download, remove),
    h('h1', { text: trace.name || trace.id }),
    facts([
      ['Id', h('span', { class: 'mono', text: trace.id })],
      ['Time', formatTime(trace.timestamp)],
      ['User', trace.userId || null],
      ['Session', trace.sessionId ? link(projectPath('sessions', trace.sessionId), trace.sessionId) : null],
      ['Tags', trace.tags && trace.tags.length ? chips(trace.tags) : null],
      ['Environment', trace.environment || null],
      ['Release', trace.release || null],
      ['Version', trace.version || null],
      ['Latency', formatSeconds(trace.latency)],
      ['Total cost', formatCost(trace.totalCost)],
    ]),
    h('div', { class: 'split' },
      h('div', {}, tree,
        h('h2', { text: `Scores (${scores.length})` }),
        scores.length
          ? h('table', { 'data-testid': 'scores' },
            h('thead', {}, h('tr', {}, ['Name', 'Value', 'On', 'Comment', 'Source', ''].map((name) => h('th', { text: name })))),
            h('tbody', {}, scores.map((score) => h('tr', { 'data-score-id': score.id },
              h('td', { text: score.name }),
              h('td', { text: score.stringValue ?? String(score.value) }),
              h('td', { text: scoreTarget(score) }),
              h('td', { text: score.comment || '' }),
              h('td', { class: 'muted', text: score.source || '' }),
              h('td', {}, h('button', {
                type: 'button', text: 'Delete', title: 'Delete this score',
                onclick: async () => {
                  if (!confirm(`Delete the score ${score.name}?`)) return;
                  await api(`/scores/${encodeURIComponent(score.id)}`, { method: 'DELETE' }).then(route, (error) => alert(error.message));
                },
              }))))))
          : h('p', { class: 'muted', text: 'No scores yet.' })),
      detail));
  if (selected) for (const row of tree.children) row.classList.toggle('selected', row.dataset.id === selected.id);
  else tree.firstChild.classList.add('selected');
}

/** Scores the trace, or the selected observation, as a person would in Langfuse's UI. */
function scoreForm(trace, observation) {
  const dataType = h('select', { name: 'dataType' }, DATA_TYPES.map((type) => h('option', { value: type, text: type.toLowerCase() })));
  const valueSlot = h('span');
  let value;
  const valueInput = () => {
    value = dataType.value === 'BOOLEAN'
      ? h('select', { name: 'value' }, h('option', { value: '1', text: 'true' }), h('option', { value: '0', text: 'false' }))
      : h('input', { name: 'value', required: true, ...(dataType.value === 'NUMERIC' ? { type: 'number', step: 'any' } : {}) });
    valueSlot.replaceChildren(h('label', {}, 'Value', value));
  };
  dataType.addEventListener('change', valueInput);
  valueInput();
  const name = h('input', { name: 'name', required: true, placeholder: 'e.g. helpfulness' });
  const comment = h('input', { name: 'comment', placeholder: 'optional' });
  const status = h('span', { class: 'muted', role: 'status' });
  const submit = h('button', { class: 'primary', type: 'submit', text: 'Add score' });
  const form = h('form', {
    class: 'score', 'data-testid': 'score-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const type = dataType.value;
      const body = {
        traceId: trace.id,
        name: name.value.trim(),
        dataType: type,
        value: type === 'CATEGORICAL' ? value.value : Number(value.value),
        source: 'ANNOTATION',
      };
      if (observation) body.observationId = observation.id;
      if (comment.value.trim()) body.comment = comment.value.trim();
      if (trace.environment) body.environment = trace.environment;
      submit.disabled = true;
      status.textContent = 'Saving…';
      try {
        await api('/scores', { method: 'POST', body });
        await route();
      } catch (error) {
        submit.disabled = false;
        status.replaceChildren(errorBox(error));
      }
    },
  },
  h('label', {}, 'Score', name), h('label', {}, 'Type', dataType), valueSlot, h('label', {}, 'Comment', comment), submit, status);
  return [h('h2', { text: observation ? `Score this ${observation.type.toLowerCase()}` : 'Score this trace' }), form];
}

// ---------------------------------------------------------------- observations

const OBSERVATION_TYPES = ['GENERATION', 'SPAN', 'EVENT', 'AGENT', 'TOOL', 'CHAIN', 'RETRIEVER', 'EVALUATOR', 'EMBEDDING', 'GUARDRAIL'];
const LEVELS = ['DEBUG', 'DEFAULT', 'WARNING', 'ERROR'];

function observationConditions(query) {
  const conditions = [];
  if (query.get('type')) conditions.push({ type: 'stringOptions', column: 'type', operator: 'any of', value: [query.get('type')] });
  if (query.get('level')) conditions.push({ type: 'stringOptions', column: 'level', operator: 'any of', value: [query.get('level')] });
  if (query.get('name')) conditions.push({ type: 'string', column: 'name', operator: 'contains', value: query.get('name') });
  if (query.get('model')) conditions.push({ type: 'string', column: 'model', operator: 'contains', value: query.get('model') });
  conditions.push(...rangeConditions(query, 'startTime'));
  return conditions;
}

/** Observations across traces, newest first (cursor pages): where the tokens and the cost went. */
async function observationList() {
  const fresh = current();
  const query = new URLSearchParams(location.search);
  const conditions = observationConditions(query);
  const limit = pageSize(query);
  const result = await api('/v2/observations', {
    params: {
      limit, cursor: query.get('cursor') || undefined,
      fields: 'core,basic,model,usage,metrics,trace_context',
      filter: conditions.length ? JSON.stringify(conditions) : undefined,
    },
  });
  if (!fresh()) return;
  const form = filterForm('observations',
    choiceField(query, 'type', 'Type', OBSERVATION_TYPES),
    textField(query, 'name', 'Name contains', { type: 'search' }),
    textField(query, 'model', 'Model contains'),
    choiceField(query, 'level', 'Level', LEVELS),
    textField(query, 'from', 'From', { type: 'datetime-local', step: 1 }),
    textField(query, 'to', 'Before', { type: 'datetime-local', step: 1 }),
    pageSizeChoice(limit));

  const rows = result.data.map((o) => {
    const href = `${projectPath('traces', o.traceId)}?observation=${encodeURIComponent(o.id)}`;
    const usage = o.usageDetails || {};
    return h('tr', { class: 'link', 'data-observation-id': o.id, onclick: (event) => { if (!event.target.closest('a')) navigate(href); } },
      h('td', { class: 'mono', text: formatTime(o.startTime) }),
      h('td', {}, h('span', { class: `type type-${o.type}`, text: o.type })),
      h('td', {}, link(href, o.name || o.id)),
      h('td', { text: o.traceName || o.traceId }),
      h('td', { text: o.providedModelName || '' }),
      h('td', { class: 'num', text: typeof usage.input === 'number' ? String(usage.input) : '' }),
      h('td', { class: 'num', text: typeof usage.output === 'number' ? String(usage.output) : '' }),
      h('td', { class: 'num', text: o.totalCost ? formatCost(o.totalCost) : '' }),
      h('td', { class: 'num', text: formatSeconds(o.latency ?? -1) }),
      h('td', { class: `level-text-${o.level}`, text: o.level === 'DEFAULT' ? '' : o.level }));
  });
  const next = new URLSearchParams(location.search);
  if (result.meta && result.meta.cursor) next.set('cursor', result.meta.cursor);
  const first = new URLSearchParams(location.search);
  first.delete('cursor');
  show(h('h1', { text: 'Observations' }), form,
    rows.length
      ? h('table', { 'data-testid': 'observations' },
        h('thead', {}, h('tr', {}, ['Start', 'Type', 'Name', 'Trace', 'Model'].map((name) => h('th', { text: name })),
          ['Input tokens', 'Output tokens', 'Cost', 'Latency'].map((name) => h('th', { class: 'num', text: name })), h('th', { text: 'Level' }))),
        h('tbody', {}, rows))
      : h('p', {
        class: 'muted',
        text: query.get('cursor') ? 'No older observations.' : conditions.length ? 'No observation matches these filters.' : 'No observations yet.',
      }),
    h('div', { class: 'pager' },
      query.get('cursor') ? link(`${projectPath('observations')}${first.size ? `?${first}` : ''}`, '← Newest') : null,
      result.meta && result.meta.cursor ? link(`${projectPath('observations')}?${next}`, 'Older →') : null));
}

// ---------------------------------------------------------------- scores

const SCORE_SOURCES = ['API', 'ANNOTATION', 'EVAL'];

/** Scores across traces, newest first: what an evaluation published, and what people added. */
async function scoreList() {
  const fresh = current();
  const query = new URLSearchParams(location.search);
  const limit = pageSize(query);
  const page = pageNumber(query);
  const time = (name) => (query.get(name) ? localToIso(query.get(name)) : undefined);
  const result = await api('/scores', {
    params: {
      page, limit, name: query.get('name') || undefined, source: query.get('source') || undefined,
      dataType: query.get('dataType') || undefined, fromTimestamp: time('from'), toTimestamp: time('to'),
    },
  });
  if (!fresh()) return;
  const form = filterForm('scores',
    textField(query, 'name', 'Name'),
    choiceField(query, 'source', 'Source', SCORE_SOURCES),
    choiceField(query, 'dataType', 'Type', DATA_TYPES),
    textField(query, 'from', 'From', { type: 'datetime-local', step: 1 }),
    textField(query, 'to', 'Before', { type: 'datetime-local', step: 1 }),
    pageSizeChoice(limit));

  const rows = result.data.map((score) => {
    const target = score.traceId
      ? `${projectPath('traces', score.traceId)}${score.observationId ? `?observation=${encodeURIComponent(score.observationId)}` : ''}`
      : score.sessionId ? projectPath('sessions', score.sessionId) : null;
    return h('tr', { 'data-score-id': score.id },
      h('td', { class: 'mono', text: formatTime(score.timestamp) }),
      h('td', { text: score.name }),
      h('td', { class: 'num', text: score.stringValue ?? String(score.value) }),
      h('td', {}, target ? link(target, score.observationId ? 'observation' : score.traceId ? 'trace' : 'session') : ''),
      h('td', { class: 'muted', text: score.source || '' }),
      h('td', { text: score.comment || '' }));
  });
  show(h('h1', { text: 'Scores' }), form,
    rows.length
      ? h('table', { 'data-testid': 'score-list' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Time' }), h('th', { text: 'Name' }), h('th', { class: 'num', text: 'Value' }),
          ['On', 'Source', 'Comment'].map((name) => h('th', { text: name })))),
        h('tbody', {}, rows))
      : h('p', { class: 'muted', text: 'No scores match.' }),
    offsetPager('scores', result.meta, 'scores'));
}

// ---------------------------------------------------------------- dashboard

const RANGES = [['24h', 'Last 24 hours', 1], ['7d', 'Last 7 days', 7], ['30d', 'Last 30 days', 30]];

/** One metrics query (`GET /v2/metrics`) over the range, as Langfuse's dashboards make them. */
function metrics(range, view, metricList, extra = {}) {
  const query = {
    view,
    metrics: metricList.map(([measure, aggregation]) => ({ measure, aggregation })),
    fromTimestamp: range.from.toISOString(),
    toTimestamp: range.to.toISOString(),
    ...extra,
  };
  return api('/v2/metrics', { params: { query: JSON.stringify(query) } }).then((answer) => answer.data);
}

/** A number cell with a bar as long as its share of the column's largest value. */
function barCell(value, largest, text) {
  const share = largest > 0 && typeof value === 'number' ? Math.max(value / largest, 0) : 0;
  return h('td', { class: 'num bar-cell' },
    h('span', { class: 'bar', style: { width: `${(share * 100).toFixed(1)}%` } }),
    h('span', { class: 'bar-text', text }));
}

const formatNumber = (value) => (typeof value === 'number' ? value.toLocaleString(undefined, { maximumFractionDigits: 0 }) : '–');
const formatMs = (value) => (typeof value === 'number' ? formatSeconds(value / 1000) : '–');

/** What the project spent and how it behaved over a range: totals, models, activity, latency, scores. */
async function dashboard() {
  const fresh = current();
  const query = new URLSearchParams(location.search);
  const [key, label, days] = RANGES.find(([name]) => name === query.get('range')) || RANGES[1];
  const to = new Date();
  const range = { from: new Date(to.getTime() - days * 86_400_000), to };
  const [traceCount, totals, models, activity, latency, scores] = await Promise.all([
    api('/traces', { params: { limit: 1, fields: 'core', fromTimestamp: range.from.toISOString() } }).then((page) => page.meta.totalItems),
    metrics(range, 'observations', [['count', 'count'], ['totalCost', 'sum'], ['totalTokens', 'sum']]),
    metrics(range, 'observations', [['count', 'count'], ['inputTokens', 'sum'], ['outputTokens', 'sum'], ['totalCost', 'sum']], {
      dimensions: [{ field: 'providedModelName' }],
      filters: [{ column: 'providedModelName', operator: 'is not null', type: 'null' }],
      orderBy: [{ field: 'sum_totalCost', direction: 'desc' }],
    }),
    metrics(range, 'observations', [['count', 'count'], ['totalCost', 'sum']], { timeDimension: { granularity: 'auto' } }),
    metrics(range, 'observations', [['count', 'count'], ['latency', 'p50'], ['latency', 'p95']], {
      dimensions: [{ field: 'name' }, { field: 'type' }],
      orderBy: [{ field: 'count_count', direction: 'desc' }],
      config: { row_limit: 10 },
    }),
    metrics(range, 'scores-numeric', [['count', 'count'], ['value', 'avg']], {
      dimensions: [{ field: 'name' }, { field: 'source' }],
      orderBy: [{ field: 'count_count', direction: 'desc' }],
    }),
  ]);
  if (!fresh()) return;
  const total = totals[0] || {};
  const card = (title, value, testId) => h('div', { class: 'card', 'data-testid': testId }, h('div', { class: 'muted', text: title }), h('div', { class: 'big', text: value }));
  const largest = (rows, key) => rows.reduce((most, row) => Math.max(most, Number(row[key]) || 0), 0);
  const table = (testId, headers, rows) => (rows.length
    ? h('table', { 'data-testid': testId }, h('thead', {}, h('tr', {}, headers.map(([name, numeric]) => h('th', { class: numeric ? 'num' : null, text: name })))), h('tbody', {}, rows))
    : h('p', { class: 'muted', text: 'Nothing in this range.' }));
  const costMost = largest(models, 'sum_totalCost');
  const activityMost = largest(activity, 'count_count');
  const countMost = largest(latency, 'count_count');
  show(
    h('h1', {}, 'Dashboard ', h('span', { class: 'muted', text: `· ${label}` })),
    h('div', { class: 'pager' }, RANGES.map(([name, text]) => (name === key ? h('strong', { text }) : link(`${projectPath('dashboard')}?range=${name}`, text)))),
    h('div', { class: 'cards' },
      card('Traces', formatNumber(traceCount), 'total-traces'),
      card('Observations', formatNumber(total.count_count ?? 0), 'total-observations'),
      card('Tokens', formatNumber(total.sum_totalTokens ?? 0), 'total-tokens'),
      card('Cost', formatCost(total.sum_totalCost ?? 0), 'total-cost')),
    h('h2', { text: 'Models' }),
    table('models', [['Model'], ['Calls', true], ['Input tokens', true], ['Output tokens', true], ['Cost', true]], models.map((row) => h('tr', {},
      h('td', { text: row.providedModelName }),
      h('td', { class: 'num', text: formatNumber(row.count_count) }),
      h('td', { class: 'num', text: formatNumber(row.sum_inputTokens) }),
      h('td', { class: 'num', text: formatNumber(row.sum_outputTokens) }),
      barCell(row.sum_totalCost, costMost, formatCost(row.sum_totalCost))))),
    h('h2', { text: 'Activity' }),
    table('activity', [['From'], ['Observations', true], ['Cost', true]], activity.map((row) => h('tr', {},
      h('td', { class: 'mono', text: formatTime(row.time_dimension) }),
      barCell(row.count_count, activityMost, formatNumber(row.count_count)),
      h('td', { class: 'num', text: formatCost(row.sum_totalCost) })))),
    h('h2', { text: 'Latency by observation' }),
    table('latency', [['Name'], ['Type'], ['Count', true], ['p50', true], ['p95', true]], latency.map((row) => h('tr', {},
      h('td', {}, link(`${projectPath('observations')}?name=${encodeURIComponent(row.name ?? '')}`, row.name ?? '(unnamed)')),
      h('td', {}, h('span', { class: `type type-${row.type}`, text: row.type })),
      barCell(row.count_count, countMost, formatNumber(row.count_count)),
      h('td', { class: 'num', text: formatMs(row.p50_latency) }),
      h('td', { class: 'num', text: formatMs(row.p95_latency) })))),
    h('h2', { text: 'Scores' }),
    table('score-averages', [['Score'], ['Source'], ['Count', true], ['Average', true]], scores.map((row) => h('tr', {},
      h('td', {}, link(`${projectPath('scores')}?name=${encodeURIComponent(row.name)}`, row.name)),
      h('td', { class: 'muted', text: row.source }),
      h('td', { class: 'num', text: formatNumber(row.count_count) }),
      h('td', { class: 'num', text: typeof row.avg_value === 'number' ? row.avg_value.toFixed(3) : '–' })))));
}

// ---------------------------------------------------------------- sessions

async function sessionList() {
  const fresh = current();
  const query = new URLSearchParams(location.search);
  const page = pageNumber(query);
  const result = await api('/sessions', { params: { page, limit: 50 } });
  if (!fresh()) return;
  show(h('h1', { text: 'Sessions' }),
    result.data.length
      ? h('table', { 'data-testid': 'sessions' },
        h('thead', {}, h('tr', {}, ['Session', 'Created', 'Environment'].map((name) => h('th', { text: name })))),
        h('tbody', {}, result.data.map((item) => h('tr', {},
          h('td', {}, link(projectPath('sessions', item.id), item.id)),
          h('td', { class: 'mono', text: formatTime(item.createdAt) }),
          h('td', { text: item.environment || '' })))))
      : h('p', { class: 'muted', text: 'No sessions yet: traces with a session id start one.' }),
    offsetPager('sessions', result.meta, 'sessions'));
}

async function sessionDetail(id) {
  const fresh = current();
  const found = await api(`/sessions/${encodeURIComponent(id)}`);
  if (!fresh()) return;
  const traces = [...(found.traces || [])].sort((a, b) => timeOf(a.timestamp) - timeOf(b.timestamp));
  show(h('p', {}, link(projectPath('sessions'), '← Sessions')),
    h('h1', { text: `Session ${found.id}` }),
    facts([['Created', formatTime(found.createdAt)], ['Environment', found.environment || null], ['Traces', String(traces.length)]]),
    h('table', { 'data-testid': 'session-traces' },
      h('thead', {}, h('tr', {}, ['Time', 'Name', 'User', 'Tags'].map((name) => h('th', { text: name })))),
      h('tbody', {}, traces.map((trace) => h('tr', {},
        h('td', { class: 'mono', text: formatTime(trace.timestamp) }),
        h('td', {}, link(projectPath('traces', trace.id), trace.name || trace.id)),
        h('td', { text: trace.userId || '' }),
        h('td', {}, chips(trace.tags)))))),
    h('p', {}, link(`${projectPath('traces')}?sessionId=${encodeURIComponent(found.id)}`, 'These traces in the trace list')));
}

// ---------------------------------------------------------------- start

async function start() {
  window.addEventListener('popstate', route);
  const keys = storedKeys();
  if (keys) {
    try {
      await useKeys(keys);
    } catch (error) {
      if (error.status === 401) signOut('The stored keys were not accepted any more; sign in again.');
      else {
        show(errorBox(error));
        document.getElementById('main').removeAttribute('aria-busy');
      }
      return;
    }
  }
  await route();
}

start();

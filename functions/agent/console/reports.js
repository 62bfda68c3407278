// The reports page (/console/reports): a report of the admin API (conversations and response
// times, customer satisfaction, message volume) over a period, grouped by day, agent, queue,
// rule or tag, drawn as a bar chart (SVG, no library) and a table, and downloadable as CSV.
// Signed in as the set-up page is: the admin token kept in this tab, or the console's OpenID
// Connect session when it carries the admin group.
import { ApiError, call, enc } from './api.js';
import { t } from './i18n.js';
import { el } from './render.js';
import { describe, signInOnLoad, startLanguage, toast, wireTokenSignIn } from './staff.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const DAY_MS = 86_400_000;
const state = { bearer: null, report: null, names: new Map() };

const api = (method, path) => call(method, path, undefined, { bearer: state.bearer });

function showSignIn(message) {
  $('rep-main').hidden = true;
  $('rep-session').hidden = true;
  $('rep-signin').hidden = false;
  $('rep-signin-message').hidden = !message;
  $('rep-signin-message').textContent = message || '';
}

/** `YYYY-MM-DD` of a date, in UTC (reports' days are UTC days). */
function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The query of the form's period and grouping (whole UTC days, `to` inclusive). */
function query() {
  const from = $('rep-from').value;
  const to = $('rep-to').value;
  const params = new URLSearchParams({
    from: `${from}T00:00:00Z`,
    to: `${to}T23:59:59.999Z`,
    groupBy: $('rep-group').value,
  });
  return params.toString();
}

async function tryBearer(bearer, who) {
  state.bearer = bearer;
  try {
    await api('GET', `/admin/v1/reports/volume?${query()}`);
  } catch (error) {
    state.bearer = null;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return false;
    throw error;
  }
  await loadNames();
  $('rep-signin').hidden = true;
  $('rep-main').hidden = false;
  $('rep-session').hidden = false;
  $('rep-who').textContent = who;
  await show();
  return true;
}

async function show(event) {
  if (event) event.preventDefault();
  if (!$('rep-from').value || !$('rep-to').value || $('rep-from').value > $('rep-to').value) {
    toast(t('reports.period'));
    return;
  }
  const kind = $('rep-kind').value;
  state.report = await api('GET', `/admin/v1/reports/${enc(kind)}?${query()}`);
  render();
}

/** A duration in ms, short: seconds under a minute, else minutes, hours. */
function span(ms) {
  if (typeof ms !== 'number') return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The columns of a report: heading key, and the cell of a row. */
function columns(kind) {
  const frt = (r, p) => span(r.firstResponse && r.firstResponse[p]);
  const handle = (r, p) => span(r.handleTime && r.handleTime[p]);
  if (kind === 'conversations') {
    return [
      ['reports.col.conversations', (r) => String(r.conversations)],
      ['reports.col.closed', (r) => String(r.closed ?? 0)],
      ['reports.col.frtP50', (r) => frt(r, 'p50Ms')],
      ['reports.col.frtP90', (r) => frt(r, 'p90Ms')],
      ['reports.col.handleP50', (r) => handle(r, 'p50Ms')],
      ['reports.col.handleP90', (r) => handle(r, 'p90Ms')],
    ];
  }
  if (kind === 'csat') {
    return [
      ['reports.col.sent', (r) => String(r.surveysSent ?? 0)],
      ['reports.col.responses', (r) => String(r.responses ?? 0)],
      ['reports.col.average', (r) => (typeof r.average === 'number' ? r.average.toFixed(2) : '—')],
      ['reports.col.distribution', (r) => Object.entries(r.distribution || {}).map(([score, n]) => `${score}: ${n}`).join(', ') || '—'],
    ];
  }
  return [
    ['reports.col.conversations', (r) => String(r.conversations)],
    ['reports.col.in', (r) => String(r.messagesIn ?? 0)],
    ['reports.col.out', (r) => String(r.messagesOut ?? 0)],
  ];
}

/** What a row's bar shows: conversations, the average score, or messages in and out. */
function bars(kind, row) {
  if (kind === 'csat') return [typeof row.average === 'number' ? row.average : 0];
  if (kind === 'volume') return [row.messagesIn || 0, row.messagesOut || 0];
  return [row.conversations];
}

/** Agents' and queues' names by id, for the groups (best effort: ids stay ids without them). */
async function loadNames() {
  try {
    const [agents, queues] = await Promise.all([api('GET', '/admin/v1/agents'), api('GET', '/admin/v1/queues')]);
    for (const a of agents.agents || []) state.names.set(a.id, a.name);
    for (const q of queues.queues || []) state.names.set(q.id, q.name);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
  }
}

function label(key) {
  if (key === '(none)') return t('reports.none');
  const group = state.report && state.report.groupBy;
  return (group === 'agent' || group === 'queue') && state.names.get(key) ? state.names.get(key) : key;
}

function svg(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A horizontal bar chart: a line per group, its label, its bars and their values. */
function chart(kind, rows) {
  const line = 28;
  const labelWidth = 170;
  const width = 640;
  const room = width - labelWidth - 70;
  const values = rows.map((r) => bars(kind, r));
  const max = Math.max(1, ...values.flat());
  const height = rows.length * line + 8;
  const root = svg('svg', {
    class: 'report-chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-testid': 'rep-svg',
  });
  root.append(svg('title', {}, $('rep-chart-heading').textContent));
  rows.forEach((r, i) => {
    const y = i * line + 4;
    const name = label(r.key);
    root.append(svg('text', { x: 0, y: y + 15 }, name.length > 24 ? `${name.slice(0, 23)}…` : name));
    const parts = values[i];
    const thickness = (line - 10) / parts.length;
    parts.forEach((v, j) => {
      const w = Math.max(v > 0 ? 2 : 0, Math.round((v / max) * room));
      root.append(svg('rect', {
        class: j === 0 ? 'bar' : 'bar second', x: labelWidth, y: y + j * thickness, width: w, height: thickness - 1,
        'data-testid': 'rep-bar',
      }));
      root.append(svg('text', { class: 'value', x: labelWidth + w + 6, y: y + j * thickness + thickness - 3 },
        kind === 'csat' ? v.toFixed(2) : String(v)));
    });
  });
  return root;
}

function render() {
  const report = state.report;
  if (!report) return;
  const kind = report.report;
  $('rep-result').hidden = false;
  $('rep-chart-heading').textContent = t('reports.chart', {
    report: t(`reports.kind.${kind}`), group: t(`reports.group.${report.groupBy}`),
  });
  $('rep-summary').textContent = t('reports.summary', { count: report.conversations });
  $('rep-truncated').hidden = !report.truncated;
  const cols = columns(kind);
  $('rep-head').replaceChildren(el('th', { scope: 'col', text: t(`reports.group.${report.groupBy}`) }),
    ...cols.map(([key]) => el('th', { scope: 'col', text: t(key) })));
  if (!report.rows.length) {
    $('rep-chart').replaceChildren(el('p', { className: 'empty', testid: 'rep-empty', text: t('reports.empty') }));
    $('rep-rows').replaceChildren();
    return;
  }
  $('rep-chart').replaceChildren(chart(kind, report.rows));
  $('rep-rows').replaceChildren(...report.rows.map((r) => el('tr', { testid: 'rep-row', 'data-key': r.key },
    el('th', { scope: 'row', text: label(r.key) }),
    ...cols.map(([, cell]) => el('td', { text: cell(r) })))));
}

async function downloadCsv() {
  const kind = $('rep-kind').value;
  const response = await fetch(`/admin/v1/reports/${enc(kind)}?${query()}`, {
    headers: { Accept: 'text/csv', Authorization: `Bearer ${state.bearer}` },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch { /* not JSON */ }
    throw new ApiError(response.status, 'csv', message);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el('a', { href: url, download: `${kind}-${$('rep-from').value}-${$('rep-to').value}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function start() {
  startLanguage('reports.title', render);
  const now = Date.now();
  $('rep-to').value = isoDay(now);
  $('rep-from').value = isoDay(now - 6 * DAY_MS);
  wireTokenSignIn('rep', tryBearer, showSignIn, 'reports.refused', () => { state.bearer = null; });
  $('rep-form').addEventListener('submit', (event) => show(event).catch((e) => toast(describe(e))));
  $('rep-csv').addEventListener('click', () => downloadCsv().catch((e) => toast(describe(e))));
  await signInOnLoad(tryBearer, showSignIn, t('reports.byOidc'));
}

start();

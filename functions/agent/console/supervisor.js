// The supervisor page (/console/supervisor): every queue (waiting, the oldest wait, in
// progress) and every agent (presence, load, the conversations they hold), re-read every 10 s;
// any conversation read only; a conversation given to another agent. Signed in with the console's
// OpenID Connect session when it carries the supervisor or admin group, else with the admin
// token (kept in this tab's sessionStorage, as the set-up page keeps it).
import { ApiError, call, enc } from './api.js';
import { t } from './i18n.js';
import { clockTime, duration, el, preview } from './render.js';
import { describe, signInOnLoad, startLanguage, toast, wireTokenSignIn } from './staff.js';

const REFRESH_MS = 10_000;
const $ = (id) => document.getElementById(id);
const state = { bearer: null, overview: null, openId: null, timer: null };

const api = (method, path, body) => call(method, path, body, { bearer: state.bearer });

function showSignIn(message) {
  clearInterval(state.timer);
  $('sup-main').hidden = true;
  $('sup-session').hidden = true;
  $('sup-signin').hidden = false;
  $('sup-signin-message').hidden = !message;
  $('sup-signin-message').textContent = message || '';
}

async function tryBearer(bearer, who) {
  state.bearer = bearer;
  let overview;
  try {
    overview = await api('GET', '/agent/v1/supervisor/overview');
  } catch (error) {
    state.bearer = null;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return false;
    throw error;
  }
  $('sup-signin').hidden = true;
  $('sup-main').hidden = false;
  $('sup-session').hidden = false;
  $('sup-who').textContent = who;
  render(overview);
  clearInterval(state.timer);
  state.timer = setInterval(() => refresh().catch((e) => toast(describe(e))), REFRESH_MS);
  return true;
}

async function refresh() {
  render(await api('GET', '/agent/v1/supervisor/overview'));
  if (state.openId) await openConversation(state.openId);
}

function render(overview) {
  state.overview = overview;
  const now = Date.now();
  $('sup-queue-rows').replaceChildren(...overview.queues.map((q) => el('tr', { testid: 'sup-queue-row', 'data-id': q.id },
    el('th', { scope: 'row', text: q.name || q.id }),
    el('td', { text: String(q.waiting) }),
    el('td', { text: q.oldestWaitingSince ? duration(now - q.oldestWaitingSince) : '—' }),
    el('td', { text: String(q.active) }))));
  $('sup-agent-rows').replaceChildren(...overview.agents.map((a) => el('tr', { testid: 'sup-agent-row', 'data-id': a.id },
    el('th', { scope: 'row', text: a.name }),
    el('td', {}, el('span', { className: `presence ${a.status}`, text: t(`presence.${a.status}`) })),
    el('td', { text: `${a.activeConversations} / ${a.capacity}` }),
    el('td', {}, a.conversationIds.map((id) => el('button', {
      type: 'button',
      className: 'link-button',
      testid: 'sup-open',
      'data-id': id,
      text: t('supervisor.open', { id: id.slice(0, 8) }),
      title: id,
      onclick: () => openConversation(id).catch((e) => toast(describe(e))),
    }))))));
  const select = $('sup-assign-to');
  const chosen = select.value;
  select.replaceChildren(...overview.agents.map((a) => el('option', {
    value: a.id, text: `${a.name} · ${t(`presence.${a.status}`)} · ${a.activeConversations}/${a.capacity}`,
  })));
  if (overview.agents.some((a) => a.id === chosen)) select.value = chosen;
}

async function openConversation(id) {
  const data = await api('GET', `/agent/v1/supervisor/conversations/${enc(id)}?limit=30`);
  state.openId = id;
  const c = data.conversation;
  const holder = state.overview && state.overview.agents.find((a) => a.id === c.agentId);
  $('sup-conversation').hidden = false;
  $('sup-conversation-meta').textContent = [
    t(`status.${c.status}`),
    holder ? t('supervisor.heldBy', { name: holder.name }) : t('supervisor.unheld'),
    t('conversation.opened', { time: clockTime(c.openedAt) }),
  ].join(' · ');
  $('sup-conversation').dataset.conversationId = id;
  $('sup-lines').replaceChildren(...data.messages.map((m) => {
    const message = m.message || (m.messages || [])[0];
    const who = m.direction === 'out' ? (m.agentName || t('transcript.automated')) : (m.senderName || t('transcript.customer'));
    return el('li', { className: `sup-line ${m.direction || ''}` },
      el('span', { className: 'who', text: `${who}: ` }),
      el('span', { text: message ? preview(message) : (m.text || m.type || '') }));
  }));
}

async function assign(event) {
  event.preventDefault();
  const id = state.openId;
  const agentId = $('sup-assign-to').value;
  if (!id || !agentId) return;
  try {
    await api('POST', `/agent/v1/conversations/${enc(id)}/assign`, { agentId });
    const agent = state.overview.agents.find((a) => a.id === agentId);
    toast(t('supervisor.assigned', { name: agent ? agent.name : agentId }), 'info');
    await refresh();
  } catch (error) {
    toast(describe(error));
  }
}

async function start() {
  startLanguage('supervisor.title', () => { if (state.overview) render(state.overview); });
  wireTokenSignIn('sup', tryBearer, showSignIn, 'supervisor.refused', () => { state.bearer = null; });
  $('sup-assign-form').addEventListener('submit', assign);
  await signInOnLoad(tryBearer, showSignIn, t('supervisor.byOidc'));
}

start();

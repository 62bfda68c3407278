// The set-up page (/console/admin): an administrator connects a LINE Official Account (with its
// queue and workstream) and adds the agents who answer it, through the admin API (/admin/v1,
// same origin), so that a new team needs no command line. Signed in with the admin token (kept in
// this tab's sessionStorage only) or, where the console signed in with OpenID Connect, with that
// ID token when it carries the admin role.
import { ApiError, call } from './api.js';
import { t } from './i18n.js';
import { el } from './render.js';
import { describe, signInOnLoad, startLanguage, storeAdminToken as store, toast } from './staff.js';

const $ = (id) => document.getElementById(id);

const state = { bearer: null, queues: [], accounts: [] };

function admin(method, path, body) {
  return call(method, path, body, { bearer: state.bearer });
}

function showSignIn(message) {
  $('admin-main').hidden = true;
  $('admin-session').hidden = true;
  $('admin-signin').hidden = false;
  const box = $('admin-signin-message');
  box.hidden = !message;
  box.textContent = message || '';
  $('admin-token').focus();
}

/** Tries `bearer` on the admin API: true when it is an administrator's. */
async function tryBearer(bearer, who) {
  state.bearer = bearer;
  try {
    await admin('GET', '/admin/v1/queues');
  } catch (error) {
    state.bearer = null;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return false;
    throw error;
  }
  $('admin-signin').hidden = true;
  $('admin-main').hidden = false;
  $('admin-session').hidden = false;
  $('admin-who').textContent = who;
  await refresh();
  return true;
}

async function signIn(event) {
  event.preventDefault();
  const value = $('admin-token').value.trim();
  if (!value) {
    showSignIn(t('admin.tokenEmpty'));
    return;
  }
  if (await tryBearer(value, t('admin.byToken'))) {
    store(value);
    $('admin-token').value = '';
  } else {
    showSignIn(t('admin.tokenRefused'));
  }
}

function signOut() {
  store(null);
  state.bearer = null;
  showSignIn('');
}

async function refresh() {
  const [queues, accounts, agents] = await Promise.all([
    admin('GET', '/admin/v1/queues'),
    admin('GET', '/admin/v1/accounts'),
    admin('GET', '/admin/v1/agents'),
  ]);
  state.queues = (queues && queues.queues) || [];
  state.accounts = (accounts && accounts.accounts) || [];
  renderAccounts();
  renderAgents((agents && agents.agents) || []);
}

function renderAccounts() {
  const list = $('accounts-list');
  if (!state.accounts.length) {
    list.replaceChildren(el('li', { className: 'empty', text: t('admin.noAccounts') }));
    return;
  }
  list.replaceChildren(...state.accounts.map((a) => el('li', { testid: 'account-row', 'data-id': a.id },
    el('strong', { text: a.name }),
    a.basicId ? el('span', { className: 'muted', text: ` ${a.basicId}` }) : null,
    el('div', { className: 'small' }, t('admin.callbackUrl'), ' ',
      el('code', { testid: 'account-callback', text: a.callbackUrl || '' })))));
}

function renderAgents(agents) {
  const list = $('agents-list');
  const queueName = (id) => (state.queues.find((q) => q.id === id) || { name: id }).name;
  list.replaceChildren(...(agents.length ? agents.map((a) => el('li', { testid: 'agent-row', 'data-id': a.id },
    el('strong', { text: a.name }), ' ',
    el('span', { className: 'muted', text: a.email }), ' ',
    el('span', { className: 'small', text: t('admin.agentIn', { queues: (a.queueIds || []).map(queueName).join(', '), capacity: a.capacity }) })))
    : [el('li', { className: 'empty', text: t('admin.noAgents') })]));
  const select = $('agent-queue');
  const chosen = select.value;
  select.replaceChildren(...state.queues.map((q) => el('option', { value: q.id, text: q.name })));
  if (state.queues.some((q) => q.id === chosen)) select.value = chosen;
  $('agent-submit').disabled = !state.queues.length;
}

/** The workstream a connected account starts with: push distribution to its queue, a greeting,
 *  the 1–5 survey after the agent closes, idle close after 30 minutes. Admins refine it later
 *  (PATCH /admin/v1/workstreams/{id}). */
function starterWorkstream(accountId, queueId, name) {
  return {
    name,
    accountId,
    language: 'en',
    distribution: 'push',
    defaultQueueId: queueId,
    timeZone: 'UTC',
    attachments: { customerCanSend: true, agentCanSend: true },
    automatedMessages: {
      conversationStarted: { enabled: true, texts: {
        en: 'Hi {customerName}, thanks for reaching out! An agent will be with you shortly.',
        ja: '{customerName}様、お問い合わせありがとうございます。担当者がまもなく対応いたします。',
      } },
    },
    survey: { enabled: true, question: 'How did we do?', scale: 5 },
    autoCloseMinutes: 30,
  };
}

async function connectAccount(event) {
  event.preventDefault();
  const name = $('account-name').value.trim();
  const body = {
    name,
    channelId: $('account-channel-id').value.trim(),
    channelSecret: $('account-channel-secret').value.trim(),
    channelAccessToken: $('account-access-token').value.trim(),
  };
  if (!name || !body.channelId || !body.channelSecret || !body.channelAccessToken) {
    toast(t('admin.connectMissing'));
    return;
  }
  if ($('account-configure-webhook').checked) body.configureWebhook = true;
  const button = $('account-submit');
  button.disabled = true;
  try {
    // The account first: LINE checks its token (422 when LINE refuses it), nothing else is made.
    const account = await admin('POST', '/admin/v1/accounts', body);
    const queue = await admin('POST', '/admin/v1/queues', { name: t('admin.queueName', { name }) });
    await admin('POST', '/admin/v1/workstreams', starterWorkstream(account.id, queue.id, name));
    $('account-form').reset();
    const result = $('account-result');
    result.hidden = false;
    result.replaceChildren(
      el('p', { text: t('admin.connected', { name: account.name, queue: queue.name }) }),
      el('p', {}, t('admin.callbackUrl'), ' ', el('code', { testid: 'new-account-callback', text: account.callbackUrl })),
      el('p', { className: 'small', text: account.webhook ? t('admin.webhookSet') : t('admin.webhookToSet') }));
    await refresh();
    $('agent-queue').value = queue.id;
  } catch (error) {
    toast(describe(error));
  } finally {
    button.disabled = false;
  }
}

async function addAgent(event) {
  event.preventDefault();
  const body = {
    name: $('agent-name').value.trim(),
    email: $('agent-email').value.trim(),
    queueIds: [$('agent-queue').value].filter(Boolean),
    capacity: Number($('agent-capacity').value) || 3,
  };
  if (!body.name || !body.email || !body.queueIds.length) {
    toast(t('admin.agentMissing'));
    return;
  }
  const button = $('agent-submit');
  button.disabled = true;
  try {
    const agent = await admin('POST', '/admin/v1/agents', body);
    $('agent-name').value = '';
    $('agent-email').value = '';
    const result = $('agent-result');
    result.hidden = false;
    result.replaceChildren(
      el('p', { text: t('admin.agentAdded', { name: agent.name, email: agent.email }) }),
      el('label', { className: 'field' }, el('span', { text: t('admin.agentToken') }),
        el('input', { readonly: true, testid: 'new-agent-token', value: agent.token || '', spellcheck: 'false' })),
      el('p', { className: 'small', text: t('admin.agentTokenOnce') }));
    await refresh();
  } catch (error) {
    toast(describe(error));
  } finally {
    button.disabled = false;
  }
}

async function start() {
  startLanguage('admin.title');
  $('admin-signin-form').addEventListener('submit', (e) => signIn(e).catch((error) => showSignIn(describe(error))));
  $('admin-sign-out').addEventListener('click', signOut);
  $('account-form').addEventListener('submit', connectAccount);
  $('agent-form').addEventListener('submit', addAgent);
  await signInOnLoad(tryBearer, showSignIn, t('admin.byOidc'));
}

start();

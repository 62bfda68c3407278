// omniline agent console: sign in at the organization's OpenID Connect issuer (authorization
// code flow with PKCE; the code is exchanged by the console's own server) or with an agent
// token, the inbox (mine / waiting in my queues /
// recently closed), live updates by long-polling /agent/v1/notifications, the conversation
// (transcript, reply, pick, quote, typing, read, transfer, close) and presence. Plain ES modules,
// no dependencies; it speaks only the agent API (/agent/v1) of its own origin.
import { ApiError, call, enc, onUnauthorized, randomId, setToken, token } from './api.js';
import { LANGUAGES, initialLanguage, language, setLanguage, t, translate } from './i18n.js';
import { avatar, clockTime, duration, el, preview, transcriptLine } from './render.js';

const NOTIFICATION_WAIT = 20; // seconds, the API's longest
const NOTIFICATION_PAGE = 50; // the API's page
const PRESENCE_EVERY_MS = 30_000; // the heartbeat: well within the presence timeout (60 s at least)
const INBOX_EVERY_MS = 10_000; // new waiting conversations bring no notification: the list is polled
const CONVERSATION_EVERY_MS = 5_000; // delivery statuses and new lines of the open conversation
const TYPING_EVERY_MS = 15_000;
const TYPING_SECONDS = 20;
const CURSOR_KEY = 'omniline.console.cursor';
const PKCE_KEY = 'omniline.console.pkce'; // { state, nonce, verifier } of a sign-in under way

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const state = {
  config: null,
  me: null,
  generation: 0, // bumps at every sign-in and sign-out: loops of an older session stop
  controller: null,
  timers: [],
  tab: 'mine',
  lists: { mine: [], waiting: [], snoozed: [], closed: [] },
  inboxLoaded: false,
  unread: new Map(), // conversationId → count since it was last looked at
  lastMessages: new Map(), // conversationId → a notification's lastMessage
  queueNames: new Map(), // queueId → name, as conversations and notifications name them
  openId: null,
  detail: null,
  transcriptKey: '',
  lastReadEntry: null,
  quote: null, // the customer entry the next reply quotes
  lastTypingAt: 0,
  pendingSend: null, // { text, quoteToken, key }: a failed send retried with the same key
  audio: null,
  notificationsWanted: false,
};

// ------------------------------------------------------------------------------------------
// Messages to the agent
// ------------------------------------------------------------------------------------------
let toastTimer = null;

function toast(message, kind = 'error') {
  $('toast-text').textContent = message;
  $('toast').className = `toast ${kind}`;
  $('toast').hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $('toast').hidden = true; }, kind === 'error' ? 8000 : 4000);
}

function announce(message) {
  $('status').textContent = message;
}

function report(error, context) {
  if (!error || error.name === 'AbortError') return;
  if (error instanceof ApiError && error.status === 401) return; // back to the sign-in screen
  const message = error instanceof ApiError && error.code === 'network'
    ? t('error.network')
    : (error.message || String(error));
  toast(context ? t('error.generic', { context: t(context), message }) : message);
}

/** Wraps a handler: nothing it throws goes uncaught. */
function guard(fn, context) {
  return (...args) => {
    try {
      const result = fn(...args);
      if (result && typeof result.catch === 'function') result.catch((e) => report(e, context));
    } catch (e) {
      report(e, context);
    }
  };
}

/** At most one run of `task` at a time; `run(true)` while one runs runs it once more after. */
function oneAtATime(task) {
  let running = null;
  let again = false;
  const run = (force = false) => {
    if (running) {
      if (force) again = true;
      return running;
    }
    running = Promise.resolve().then(task).finally(() => {
      running = null;
      if (again) {
        again = false;
        run();
      }
    });
    return running;
  };
  return run;
}

// ------------------------------------------------------------------------------------------
// Sign-in and sign-out
// ------------------------------------------------------------------------------------------
function showSignIn(message) {
  $('workspace').hidden = true;
  $('session').hidden = true;
  $('signin').hidden = false;
  const box = $('signin-message');
  box.hidden = !message;
  box.textContent = message || '';
  const oidc = state.config && state.config.signIn === 'oidc';
  const reachable = oidc && state.config.available && state.config.authorizationEndpoint;
  $('oidc-note').hidden = !oidc || reachable;
  $('sso').hidden = !reachable;
  $('signin-token').value = '';
  if (reachable) $('sso-submit').focus();
  else $('signin-token').focus();
  updateTitle();
}

// ------------------------------------------------------------------------------------------
// Sign-in at the issuer: authorization code flow with PKCE (RFC 7636). The verifier, the state
// (against forged returns) and the nonce (against a replayed ID token) stay in this tab; the
// code comes back to /console/ and is exchanged by POST /console/oidc/token.
// ------------------------------------------------------------------------------------------
function base64url(bytes) {
  let text = '';
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(bytes = 32) {
  const buffer = new Uint8Array(bytes);
  window.crypto.getRandomValues(buffer);
  return base64url(buffer);
}

function redirectUri() {
  return `${window.location.origin}/console/`;
}

async function startSso() {
  const config = state.config;
  const verifier = randomString(48);
  const challenge = base64url(await window.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const pending = { state: randomString(16), nonce: randomString(16), verifier };
  try { window.sessionStorage.setItem(PKCE_KEY, JSON.stringify(pending)); } catch { /* the return then fails cleanly */ }
  const url = new URL(config.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: config.scope || 'openid email profile',
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  announce(t('signin.redirecting'));
  window.location.assign(url.toString());
}

/** The claims of a JWT, unverified (the server verifies; the page only checks its nonce). */
function claims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}

/**
 * Back from the issuer (`?code=…&state=…`, or `?error=…`): exchanges the code and keeps the ID
 * token in this tab. Answers true when the URL was a return (handled, well or not).
 */
async function finishSso() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('code') && !params.has('error')) return false;
  window.history.replaceState(null, '', '/console/');
  let pending = null;
  try { pending = JSON.parse(window.sessionStorage.getItem(PKCE_KEY) || 'null'); } catch { /* none */ }
  try { window.sessionStorage.removeItem(PKCE_KEY); } catch { /* nothing kept */ }
  const fail = (message) => { showSignIn(t('signin.ssoFailed', { message })); return true; };
  if (params.has('error')) return fail(params.get('error_description') || params.get('error'));
  if (!pending || params.get('state') !== pending.state) return fail('state');
  let answer;
  try {
    answer = await call('POST', '/console/oidc/token', {
      code: params.get('code'),
      codeVerifier: pending.verifier,
      redirectUri: redirectUri(),
    }, { anonymous: true });
  } catch (e) {
    return fail(e.message || String(e));
  }
  if (claims(answer.idToken).nonce !== pending.nonce) return fail('nonce');
  setToken(answer.idToken);
  try {
    startSession(await call('GET', '/agent/v1/me', undefined, { signingIn: true }));
  } catch (e) {
    setToken(null);
    if (e instanceof ApiError && e.status === 403 && e.code === 'no_agent') showSignIn(t('signin.ssoNoAgent'));
    else fail(e.message || String(e));
  }
  return true;
}

async function signIn(event) {
  event.preventDefault();
  const value = $('signin-token').value.trim();
  if (!value) {
    showSignIn(t('signin.empty'));
    return;
  }
  const button = $('signin-submit');
  button.disabled = true;
  announce(t('signin.checking'));
  setToken(value);
  try {
    const me = await call('GET', '/agent/v1/me', undefined, { signingIn: true });
    startSession(me);
  } catch (e) {
    setToken(null);
    if (e instanceof ApiError && e.status === 401) showSignIn(t('signin.invalid'));
    else report(e);
  } finally {
    button.disabled = false;
  }
}

function resetSession() {
  state.generation += 1;
  if (state.controller) state.controller.abort();
  state.controller = null;
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  state.me = null;
  state.lists = { mine: [], waiting: [], snoozed: [], closed: [] };
  clearSearch();
  hideOffer();
  state.quickReplies = [];
  state.quickRepliesKey = null;
  state.inboxLoaded = false;
  state.unread.clear();
  state.lastMessages.clear();
  state.openId = null;
  state.detail = null;
  state.transcriptKey = '';
  state.lastReadEntry = null;
  state.quote = null;
  state.targets = null;
  state.pendingSend = null;
  try { window.sessionStorage.removeItem(CURSOR_KEY); } catch { /* nothing kept */ }
  $('transcript').replaceChildren();
  $('inbox-list').replaceChildren();
  $('conversation-view').hidden = true;
  $('conversation-empty').hidden = false;
}

/** Signs out: the agent goes offline (best effort), the token is forgotten. */
async function signOut() {
  if (token()) {
    try {
      await call('PUT', '/agent/v1/presence', { status: 'offline' });
    } catch { /* signing out anyway */ }
  }
  setToken(null);
  resetSession();
  showSignIn(t('signin.signedOut'));
}

/** A 401 at any time: the token no longer works. */
function sessionEnded() {
  if (!state.me && $('signin').hidden === false) return;
  setToken(null);
  resetSession();
  showSignIn(t('signin.ended'));
}

function startSession(me) {
  resetSession();
  state.me = me;
  $('signin').hidden = true;
  $('signin-message').hidden = true;
  $('session').hidden = false;
  $('workspace').hidden = false;
  renderMe();
  renderInbox();
  refreshTargets();
  const generation = state.generation;
  notificationLoop(generation);
  state.timers.push(setInterval(() => keepPresence(generation), PRESENCE_EVERY_MS));
  state.timers.push(setInterval(() => {
    if (generation === state.generation) refreshInbox().catch((e) => report(e, 'context.inbox'));
  }, INBOX_EVERY_MS));
  state.timers.push(setInterval(() => {
    if (generation === state.generation && state.openId && document.visibilityState !== 'hidden') {
      refreshConversation().catch((e) => report(e, 'context.conversation'));
    }
  }, CONVERSATION_EVERY_MS));
  refreshInbox(true).catch((e) => report(e, 'context.inbox'));
  $('tab-' + state.tab).focus();
}

// ------------------------------------------------------------------------------------------
// The agent and presence
// ------------------------------------------------------------------------------------------
function renderMe() {
  const me = state.me;
  if (!me) return;
  $('agent-name').textContent = me.name;
  $('presence').value = me.status;
  $('presence').dataset.status = me.status;
  $('agent-load').textContent = t('header.load', { active: me.activeConversations, capacity: me.capacity });
  // Supervisors (signed in with their organization, in the supervisor or admin group).
  const roles = (me.signIn && me.signIn.roles) || [];
  $('supervisor-link').hidden = !(roles.includes('supervisor') || roles.includes('admin'));
  $('reports-link').hidden = !roles.includes('admin');
  renderNotificationButton();
}

async function setPresence(status) {
  state.me = await call('PUT', '/agent/v1/presence', { status });
  renderMe();
  announce(t(`presence.${state.me.status}`));
  // Becoming available may have assigned waiting conversations (push mode).
  await Promise.all([
    refreshInbox(true),
    state.openId ? refreshConversation(true) : null,
  ]);
}

/** Re-PUTs the current presence while the page is open. */
async function keepPresence(generation) {
  if (generation !== state.generation || !state.me) return;
  try {
    const me = await call('PUT', '/agent/v1/presence', { status: state.me.status });
    if (generation === state.generation) {
      state.me = me;
      renderMe();
    }
  } catch (e) {
    report(e, 'context.presence');
  }
}

async function refreshMe() {
  const generation = state.generation;
  const me = await call('GET', '/agent/v1/me');
  if (generation !== state.generation) return;
  state.me = me;
  renderMe();
}

// ------------------------------------------------------------------------------------------
// Browser notifications and sound (only once the agent asked for them)
// ------------------------------------------------------------------------------------------
function renderNotificationButton() {
  const button = $('enable-notifications');
  if (!('Notification' in window)) {
    button.textContent = t('header.notificationsUnsupported');
    button.disabled = true;
    return;
  }
  const permission = Notification.permission;
  button.disabled = permission === 'denied' || (permission === 'granted' && state.notificationsWanted);
  if (permission === 'granted' && state.notificationsWanted) button.textContent = t('header.notificationsOn');
  else if (permission === 'denied') button.textContent = t('header.notificationsBlocked');
  else button.textContent = t('header.enableNotifications');
}

async function enableNotifications() {
  // Created in the click: browsers let a page play sound only after a gesture.
  const AudioContextClass = window.AudioContext || window.webkitAudioContext;
  if (AudioContextClass && !state.audio) state.audio = new AudioContextClass();
  if (state.audio && state.audio.state === 'suspended') await state.audio.resume();
  if ('Notification' in window) {
    const permission = Notification.permission === 'default'
      ? await Notification.requestPermission()
      : Notification.permission;
    state.notificationsWanted = permission === 'granted';
  }
  renderNotificationButton();
}

function beep() {
  const audio = state.audio;
  if (!audio) return;
  const oscillator = audio.createOscillator();
  const gain = audio.createGain();
  oscillator.frequency.value = 880;
  gain.gain.setValueAtTime(0.0001, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.2, audio.currentTime + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
  oscillator.connect(gain).connect(audio.destination);
  oscillator.start();
  oscillator.stop(audio.currentTime + 0.3);
}

function notifyBrowser(n) {
  if (!state.notificationsWanted) return;
  const name = (n.customer && n.customer.displayName) || t('inbox.unknownCustomer');
  let title = t('notify.message', { name });
  if (n.kind === 'assigned') title = t('notify.assigned', { name });
  else if (n.kind === 'offer') title = t('notify.offer', { name });
  beep();
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const shown = new Notification(title, {
      body: n.lastMessage ? preview(n.lastMessage) : '',
      tag: n.conversationId,
      lang: language(),
    });
    shown.addEventListener('click', () => {
      window.focus();
      openConversation(n.conversationId).catch((e) => report(e, 'context.conversation'));
    });
  } catch { /* some browsers only show notifications from a service worker */ }
}

// ------------------------------------------------------------------------------------------
// Live updates: the notifications long poll
// ------------------------------------------------------------------------------------------
async function notificationLoop(generation) {
  let cursor = null;
  try { cursor = window.sessionStorage.getItem(CURSOR_KEY); } catch { cursor = null; }
  // Without a cursor the API starts from the beginning: that history is not news.
  let catchingUp = !cursor;
  let failures = 0;
  while (generation === state.generation) {
    const controller = new AbortController();
    state.controller = controller;
    try {
      const query = new URLSearchParams({ wait: String(catchingUp ? 0 : NOTIFICATION_WAIT) });
      if (cursor) query.set('after', cursor);
      const data = await call('GET', `/agent/v1/notifications?${query}`, undefined, { signal: controller.signal });
      if (generation !== state.generation) return;
      failures = 0;
      const list = (data && data.notifications) || [];
      if (data && data.cursor) {
        cursor = data.cursor;
        try { window.sessionStorage.setItem(CURSOR_KEY, cursor); } catch { /* not kept */ }
      }
      onNotifications(list, !catchingUp);
      if (catchingUp && list.length < NOTIFICATION_PAGE) catchingUp = false;
    } catch (e) {
      if (generation !== state.generation || (e && e.name === 'AbortError')) return;
      if (e instanceof ApiError && e.status === 401) return;
      failures += 1;
      if (failures === 1 || failures % 10 === 0) report(e, 'context.notifications');
      await sleep(Math.min(1000 * failures, 10_000));
    }
  }
}

function onNotifications(list, news) {
  if (!list.length) return;
  // The latest offer still open shows with its countdown.
  for (const n of list) {
    if (n.kind === 'offer' && n.expiresAt > Date.now()) {
      const name = (n.customer && n.customer.displayName) || t('inbox.unknownCustomer');
      showOffer({ conversationId: n.conversationId, name, expiresAt: n.expiresAt });
    }
  }
  let touchesOpen = false;
  for (const n of list) {
    if (n.lastMessage) state.lastMessages.set(n.conversationId, n.lastMessage);
    if (n.queue && n.queue.id && n.queue.name) state.queueNames.set(n.queue.id, n.queue.name);
    if (n.conversationId === state.openId) touchesOpen = true;
    if (!news) continue;
    const looking = n.conversationId === state.openId && document.visibilityState === 'visible' && document.hasFocus();
    if (!looking) state.unread.set(n.conversationId, (state.unread.get(n.conversationId) || 0) + 1);
    if (!looking || document.visibilityState !== 'visible') notifyBrowser(n);
  }
  updateTitle();
  if (!news) return;
  refreshInbox(true).catch((e) => report(e, 'context.inbox'));
  refreshMe().catch((e) => report(e, 'context.inbox'));
  if (touchesOpen) refreshConversation(true).catch((e) => report(e, 'context.conversation'));
}

// ------------------------------------------------------------------------------------------
// Offers: accept or reject before the deadline
// ------------------------------------------------------------------------------------------
function showOffer(offer) {
  state.offer = offer;
  $('offer-title').textContent = t('offer.title', { name: offer.name });
  $('offer').hidden = false;
  tickOffer();
  if (!state.offerTimer) state.offerTimer = window.setInterval(tickOffer, 1000);
  $('offer-accept').focus();
}

function hideOffer() {
  state.offer = null;
  $('offer').hidden = true;
  if (state.offerTimer) window.clearInterval(state.offerTimer);
  state.offerTimer = null;
}

function tickOffer() {
  if (!state.offer) return;
  const left = Math.ceil((state.offer.expiresAt - Date.now()) / 1000);
  if (left <= 0) {
    hideOffer();
    toast(t('offer.expired'), 'info');
    return;
  }
  $('offer-countdown').textContent = t('offer.countdown', { seconds: left });
}

async function answerOffer(accept) {
  const offer = state.offer;
  if (!offer) return;
  hideOffer();
  const verb = accept ? 'accept' : 'reject';
  await call('POST', `/agent/v1/conversations/${enc(offer.conversationId)}/${verb}`);
  toast(t(accept ? 'offer.accepted' : 'offer.rejected'), 'info');
  await Promise.all([refreshInbox(true), refreshMe()]);
  if (accept) {
    state.tab = 'mine';
    await openConversation(offer.conversationId);
  }
}

function updateTitle() {
  let total = 0;
  for (const count of state.unread.values()) total += count;
  document.title = total > 0 ? t('app.titleUnread', { count: total }) : t('app.title');
}

// ------------------------------------------------------------------------------------------
// The inbox
// ------------------------------------------------------------------------------------------
const TABS = ['mine', 'waiting', 'snoozed', 'closed'];

const refreshInbox = oneAtATime(async () => {
  const generation = state.generation;
  if (!state.me) return;
  const [active, waiting, closed, snoozed] = await Promise.all(
    ['status=active', 'status=waiting', 'status=closed', 'snoozed=true']
      .map((query) => call('GET', `/agent/v1/conversations?${query}`)));
  if (generation !== state.generation) return;
  const me = state.me.id;
  const of = (data) => (data && data.conversations) || [];
  // Mine: the longest without activity first. Waiting: the longest waiting first.
  // Mine: the agent's active conversations, and those it closed and is wrapping up.
  state.lists.mine = of(active).concat(of(closed).filter((c) => c.status === 'wrapUp'))
    .filter((c) => c.agentId === me).sort((a, b) => a.lastActivityAt - b.lastActivityAt);
  state.lists.waiting = of(waiting).sort((a, b) => a.openedAt - b.openedAt);
  // Snoozed: out of Mine until their time or the customer's next message; the soonest back first.
  state.lists.snoozed = of(snoozed).filter((c) => c.agentId === me).sort((a, b) => a.snoozedUntil - b.snoozedUntil);
  state.lists.closed = of(closed).sort((a, b) => (b.closedAt || 0) - (a.closedAt || 0)).slice(0, 50);
  state.inboxLoaded = true;
  renderInbox();
});

function customerName(c) {
  // A group chat is named by LINE's group summary; a member's name is not the chat's.
  if (c.sourceType === 'group') return (c.group && c.group.name) || t('inbox.groupChat');
  if (c.customer && c.customer.displayName) return c.customer.displayName;
  if (c.sourceType === 'room') return t('inbox.roomChat');
  return t('inbox.unknownCustomer');
}

function renderInbox() {
  for (const tab of TABS) {
    const count = state.lists[tab].length;
    $(`count-${tab}`).textContent = state.inboxLoaded && tab !== 'closed' ? `(${count})` : '';
    const button = $(`tab-${tab}`);
    const selected = tab === state.tab;
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
  }
  $('inbox-panel').setAttribute('aria-labelledby', `tab-${state.tab}`);
  const list = $('inbox-list');
  const rows = state.lists[state.tab];
  if (!rows.length) {
    list.replaceChildren(el('li', { className: 'empty', text: state.inboxLoaded ? t(`inbox.empty.${state.tab}`) : t('inbox.loading') }));
    return;
  }
  const now = Date.now();
  list.replaceChildren(...rows.map((c) => {
    const name = customerName(c);
    // Unread: what the server counts for the agent holding it (since they last read or
    // answered), or what arrived here since the agent last looked, whichever is more.
    const counted = state.me && c.agentId === state.me.id ? (c.unread || 0) : 0;
    const unread = c.id === state.openId ? 0 : Math.max(counted, state.unread.get(c.id) || 0);
    const seen = state.lastMessages.get(c.id);
    const last = c.lastMessage && (!seen || !seen.at || c.lastMessage.at >= seen.at) ? c.lastMessage : seen;
    let when;
    if (c.snoozedUntil && c.snoozedUntil > now && c.status !== 'closed') when = t('inbox.snoozedUntil', { time: clockTime(c.snoozedUntil) });
    else if (c.status === 'waiting') when = t('inbox.waited', { duration: duration(now - (c.waitingSince || c.openedAt)) });
    else if (c.status === 'closed') when = t('inbox.closedAgo', { duration: duration(now - (c.closedAt || c.lastActivityAt)) });
    else when = t('inbox.idle', { duration: duration(now - c.lastActivityAt) });
    return el('li', {},
      el('button', {
        type: 'button',
        className: 'row',
        testid: 'inbox-row',
        'data-conversation-id': c.id,
        'data-status': c.status,
        'aria-current': c.id === state.openId ? 'true' : null,
        onclick: guard(() => openConversation(c.id), 'context.conversation'),
      },
      avatar(c.customer && c.customer.pictureUrl, name),
      el('span', { className: 'row-main' },
        el('span', { className: 'row-top' },
          el('span', { className: 'row-name', text: name }),
          el('span', { className: `status-chip ${c.status}`, text: t(`status.${c.status}`) })),
        (c.tags && c.tags.length) ? el('span', { className: 'row-tags', testid: 'row-tags' },
          c.tags.map((tag) => el('span', { className: 'tag', text: tag }))) : null,
        last ? el('span', {
          className: 'row-preview',
          testid: 'row-preview',
          text: last.direction === 'out' ? `${t('transcript.you')}: ${preview(last)}` : preview(last),
        }) : null,
        el('span', { className: 'row-when', text: when })),
      unread ? el('span', { className: 'badge', testid: 'unread', text: String(unread), 'aria-label': t('inbox.unread', { count: unread }) }) : null));
  }));
}

function selectTab(tab, focus = false) {
  state.tab = tab;
  renderInbox();
  if (focus) $(`tab-${tab}`).focus();
}

function tabKeys(event) {
  const index = TABS.indexOf(state.tab);
  let next = null;
  if (event.key === 'ArrowRight') next = TABS[(index + 1) % TABS.length];
  else if (event.key === 'ArrowLeft') next = TABS[(index + TABS.length - 1) % TABS.length];
  else if (event.key === 'Home') next = TABS[0];
  else if (event.key === 'End') next = TABS[TABS.length - 1];
  if (next) {
    event.preventDefault();
    selectTab(next, true);
  }
}

// ------------------------------------------------------------------------------------------
// Search: customers by a word of their messages, their name or tags; contacts by their fields
// ------------------------------------------------------------------------------------------
async function search(event) {
  event.preventDefault();
  const q = $('search-input').value.trim();
  if (!q) {
    clearSearch();
    return;
  }
  const found = await call('GET', `/agent/v1/search?q=${enc(q)}`);
  const rows = [];
  for (const hit of found.customers) {
    const c = hit.conversation;
    const name = hit.displayName || (c.sourceType === 'group' && c.group && c.group.name) || t('inbox.unknownCustomer');
    rows.push(el('li', {},
      el('button', {
        type: 'button',
        className: 'row',
        testid: 'search-row',
        'data-conversation-id': c.id,
        'data-customer-id': hit.customerId,
        onclick: guard(() => openConversation(c.id), 'context.conversation'),
      },
      avatar(hit.pictureUrl, name),
      el('span', { className: 'row-main' },
        el('span', { className: 'row-top' },
          el('span', { className: 'row-name', text: name }),
          el('span', { className: `status-chip ${c.status}`, text: t(`status.${c.status}`) })),
        c.lastMessage ? el('span', { className: 'row-preview', text: preview(c.lastMessage) }) : null,
        el('span', { className: 'row-when', text: t('search.said', { time: clockTime(hit.at) }) })))));
  }
  for (const contact of found.contacts) {
    rows.push(el('li', { className: 'search-contact', testid: 'search-contact' },
      el('span', { className: 'row-name', text: contact.name }),
      el('span', { className: 'row-when', text: [t('search.contact'), contact.email, contact.phone, contact.company].filter(Boolean).join(' · ') })));
  }
  $('search-results').replaceChildren(...(rows.length ? rows : [el('li', { className: 'empty', testid: 'search-none', text: t('search.none') })]));
  $('search-panel').hidden = false;
}

function clearSearch() {
  $('search-input').value = '';
  $('search-results').replaceChildren();
  $('search-panel').hidden = true;
}

// ------------------------------------------------------------------------------------------
// The conversation
// ------------------------------------------------------------------------------------------
async function openConversation(id) {
  if (state.openId !== id) {
    state.openId = id;
    state.detail = null;
    state.transcriptKey = '';
    state.lastReadEntry = null;
    state.quote = null;
    state.lastTypingAt = 0;
    state.pendingSend = null;
    $('composer-input').value = '';
    renderQuote();
    $('survey').hidden = true;
    $('transcript').replaceChildren(el('p', { className: 'empty', text: t('transcript.loading') }));
    $('conversation-empty').hidden = true;
    $('conversation-view').hidden = false;
  }
  state.unread.delete(id);
  updateTitle();
  renderInbox();
  await refreshConversation(true);
}

const refreshConversation = oneAtATime(async () => {
  const id = state.openId;
  const generation = state.generation;
  if (!id) return;
  const base = `/agent/v1/conversations/${enc(id)}`;
  const [detail, page] = await Promise.all([
    call('GET', base),
    call('GET', `${base}/messages?limit=100`),
  ]);
  if (id !== state.openId || generation !== state.generation) return;
  state.detail = detail;
  if (detail.queue && detail.queue.id && detail.queue.name) state.queueNames.set(detail.queue.id, detail.queue.name);
  const messages = (page && page.messages) || [];
  const lastIn = [...messages].reverse().find((m) => m.direction === 'in' && m.type === 'message');
  if (lastIn && lastIn.message) state.lastMessages.set(id, lastIn.message);
  renderConversation();
  renderTranscript(messages);
  await Promise.all([markRead(detail, messages), refreshSurvey(detail.conversation)]);
});

/** The customer panel: profile, the linked contact, the group, earlier conversations. */
function renderCustomerPanel(detail) {
  const customer = detail.customer || {};
  const contact = customer.contact;
  const group = detail.conversation.group;
  const facts = [];
  const fact = (key, value) => {
    if (value === undefined || value === null || value === '') return;
    facts.push(el('dt', { text: t(key) }), el('dd', { text: String(value) }));
  };
  if (group) fact('customer.group', group.name);
  fact('customer.name', customer.displayName);
  fact('customer.language', customer.language);
  fact('customer.userId', customer.userId);
  if (contact) {
    fact('customer.contact', contact.name);
    fact('customer.email', contact.email);
    fact('customer.phone', contact.phone);
    fact('customer.company', contact.company);
  } else if (detail.customer) {
    facts.push(el('dt', { text: t('customer.contact') }), el('dd', { text: t('customer.noContact') }));
  }
  // What the bot handed off with (labelled as the workstream declares it), then what admins
  // set on the customer.
  const declared = (detail.workstream && detail.workstream.contextVariables) || [];
  for (const [name, value] of Object.entries(detail.conversation.context || {})) {
    const label = (declared.find((v) => v.name === name) || {}).label || name;
    facts.push(el('dt', { text: label, testid: 'context-name' }), el('dd', { text: String(value), testid: 'context-value' }));
  }
  for (const [name, value] of Object.entries(customer.attributes || {})) {
    facts.push(el('dt', { text: name, testid: 'attribute-name' }), el('dd', { text: String(value), testid: 'attribute-value' }));
  }
  $('customer-facts').replaceChildren(...facts);
  // A one-to-one customer without a contact: a contact can be made and linked here.
  const form = $('contact-form');
  const offer = Boolean(detail.customer) && !contact && detail.conversation.sourceType === 'user';
  if (offer && form.hidden) $('contact-name').value = customer.displayName || '';
  form.hidden = !offer;
  // Or an existing contact of the account, found by name, email, phone or company.
  if (offer && $('contact-link').hidden) {
    $('contact-search').value = '';
    $('contact-results').replaceChildren();
  }
  $('contact-link').hidden = !offer;
  // A linked contact can be edited here.
  $('contact-edit').hidden = !contact;
  if (!contact) $('contact-edit-form').hidden = true;
  state.contact = contact || null;
  // A closed one-to-one conversation whose customer has no other open one: the agent may
  // write first (a new conversation, theirs).
  const previousItems = (customer.previousConversations && customer.previousConversations.items) || [];
  const openElsewhere = previousItems.some((p) => p.id !== detail.conversation.id && p.status !== 'closed');
  $('write-first').hidden = !(detail.customer && detail.conversation.sourceType === 'user'
    && detail.conversation.status === 'closed' && !openElsewhere);
  const previous = (customer.previousConversations && customer.previousConversations.items) || [];
  const others = previous.filter((p) => p.id !== detail.conversation.id);
  $('customer-previous').replaceChildren(...(others.length
    ? others.slice(0, 10).map((p) => el('li', { testid: 'previous-conversation' },
      el('span', { className: `status-chip ${p.status}`, text: t(`status.${p.status}`) }),
      ` ${clockTime(p.openedAt)}${p.closedAt ? ` – ${clockTime(p.closedAt)}` : ''}`))
    : [el('li', { className: 'muted', text: t('customer.noPrevious') })]));
}

/** Opens a new conversation with the customer of the (closed) conversation shown, and sends. */
async function writeFirst(event) {
  event.preventDefault();
  const detail = state.detail;
  if (!detail || !detail.customer) return;
  const text = $('write-first-text').value.trim();
  if (!text) {
    toast(t('customer.writeFirstEmpty'));
    $('write-first-text').focus();
    return;
  }
  const c = detail.conversation;
  const customerId = `${c.accountId}:${detail.customer.userId}`;
  $('write-first-send').disabled = true;
  try {
    const opened = await call('POST', `/agent/v1/customers/${enc(customerId)}/conversations`,
      { message: { type: 'text', text } },
      { headers: { 'Idempotency-Key': state.writeFirstKey || (state.writeFirstKey = randomId()) } });
    state.writeFirstKey = null;
    $('write-first-text').value = '';
    toast(t('customer.wroteFirst'), 'info');
    state.tab = 'mine';
    await Promise.all([refreshInbox(true), refreshMe()]);
    await openConversation(opened.conversation.id);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'not_following') toast(t('customer.notFollowing'));
    else if (e instanceof ApiError && e.code === 'conversation_open') toast(t('customer.conversationOpen'));
    else throw e;
  } finally {
    $('write-first-send').disabled = false;
  }
}

/** Creates a contact from the panel's form and links the conversation's customer to it. */
async function createContact(event) {
  event.preventDefault();
  const detail = state.detail;
  if (!detail) return;
  const value = (id) => $(id).value.trim() || undefined;
  const name = value('contact-name');
  if (!name) {
    toast(t('customer.nameRequired'));
    $('contact-name').focus();
    return;
  }
  $('contact-save').disabled = true;
  try {
    const contact = await call('POST', '/agent/v1/contacts', {
      accountId: detail.conversation.accountId,
      name,
      email: value('contact-email'),
      phone: value('contact-phone'),
      company: value('contact-company'),
    });
    await call('POST', `/agent/v1/conversations/${enc(detail.conversation.id)}/link`, { contactId: contact.id });
    for (const id of ['contact-email', 'contact-phone', 'contact-company']) $(id).value = '';
    toast(t('customer.linked', { name }), 'info');
    await refreshConversation(true);
  } finally {
    $('contact-save').disabled = false;
  }
}

/** Searches the account's contacts as the agent types (the API's own search, at most 50). */
const searchContacts = oneAtATime(async () => {
  const detail = state.detail;
  const q = $('contact-search').value.trim();
  const box = $('contact-results');
  if (!detail || !q) {
    box.replaceChildren();
    return;
  }
  const found = await call('GET', `/agent/v1/contacts?q=${enc(q)}&accountId=${enc(detail.conversation.accountId)}`);
  if ($('contact-search').value.trim() !== q) return;
  const contacts = (found && found.contacts) || [];
  box.replaceChildren(...(contacts.length
    ? contacts.slice(0, 10).map((contact) => el('li', { testid: 'contact-result' },
      el('span', { text: [contact.name, contact.email, contact.company].filter(Boolean).join(' · ') }), ' ',
      el('button', {
        type: 'button',
        className: 'link-button',
        testid: 'contact-link-button',
        text: t('customer.linkThis'),
        onclick: guard(() => linkContact(contact), 'context.contact'),
      })))
    : [el('li', { className: 'muted', text: t('customer.noContactFound') })]));
});

/** Links the conversation's customer to `contact`. */
async function linkContact(contact) {
  const detail = state.detail;
  if (!detail) return;
  await call('POST', `/agent/v1/conversations/${enc(detail.conversation.id)}/link`, { contactId: contact.id });
  $('contact-search').value = '';
  $('contact-results').replaceChildren();
  toast(t('customer.linked', { name: contact.name }), 'info');
  await refreshConversation(true);
}

/** Shows the linked contact's edit form, filled in. */
function editContact() {
  const contact = state.contact;
  if (!contact) return;
  $('edit-contact-name').value = contact.name || '';
  $('edit-contact-email').value = contact.email || '';
  $('edit-contact-phone').value = contact.phone || '';
  $('edit-contact-company').value = contact.company || '';
  $('contact-edit-form').hidden = false;
  $('edit-contact-name').focus();
}

/** Saves the edited contact: an emptied field is cleared. */
async function saveContact(event) {
  event.preventDefault();
  const contact = state.contact;
  if (!contact) return;
  const value = (id) => $(id).value.trim() || null;
  const name = value('edit-contact-name');
  if (!name) {
    toast(t('customer.nameRequired'));
    $('edit-contact-name').focus();
    return;
  }
  $('edit-contact-save').disabled = true;
  try {
    await call('PATCH', `/agent/v1/contacts/${enc(contact.id)}`, {
      name,
      email: value('edit-contact-email'),
      phone: value('edit-contact-phone'),
      company: value('edit-contact-company'),
    });
    $('contact-edit-form').hidden = true;
    toast(t('customer.contactSaved', { name }), 'info');
    await refreshConversation(true);
  } finally {
    $('edit-contact-save').disabled = false;
  }
}

// ------------------------------------------------------------------------------------------
// Tags: the conversation's and the customer's (PUT …/tags), each shown as removable chips
// ------------------------------------------------------------------------------------------
function renderTags(which, tags) {
  $(`${which}-tag-list`).replaceChildren(...tags.map((tag) => el('li', { className: 'tag', testid: `${which}-tag` },
    el('span', { text: tag }),
    el('button', {
      type: 'button',
      className: 'tag-remove',
      testid: `${which}-tag-remove`,
      'aria-label': t('tags.remove', { tag }),
      text: '×',
      onclick: guard(() => saveTags(which, tags.filter((x) => x !== tag)), 'context.tags'),
    }))));
}

async function saveTags(which, tags) {
  const detail = state.detail;
  if (!detail) return;
  const path = which === 'conversation'
    ? `/agent/v1/conversations/${enc(detail.conversation.id)}/tags`
    : `/agent/v1/customers/${enc(`${detail.conversation.accountId}:${detail.customer.userId}`)}/tags`;
  try {
    await call('PUT', path, { tags });
  } catch (e) {
    if (e instanceof ApiError && e.code === 'too_many_tags') {
      toast(t('tags.tooMany'));
      return;
    }
    throw e;
  }
  await refreshConversation(true);
  refreshInbox(true).catch((e) => report(e, 'context.inbox'));
}

async function addTag(event, which) {
  event.preventDefault();
  const input = $(`${which}-tag-input`);
  const tag = input.value.trim().replace(/\s+/g, ' ');
  if (!tag || !state.detail) return;
  const current = which === 'conversation'
    ? (state.detail.conversation.tags || [])
    : ((state.detail.customer && state.detail.customer.tags) || []);
  if (current.includes(tag)) {
    input.value = '';
    return;
  }
  if (current.length >= 10) {
    toast(t('tags.atMost'));
    return;
  }
  await saveTags(which, [...current, tag]);
  input.value = '';
}

function mine(conversation) {
  return Boolean(state.me && conversation && conversation.agentId === state.me.id);
}

function canReply(conversation) {
  return Boolean(conversation && conversation.status === 'active' && mine(conversation));
}

function renderConversation() {
  const detail = state.detail;
  if (!detail) return;
  const c = detail.conversation;
  const name = detail.customer && detail.customer.displayName
    ? detail.customer.displayName
    : customerName({ ...c, customer: detail.customer });
  $('conv-picture').replaceChildren(avatar(detail.customer && detail.customer.pictureUrl, name, 'large'));
  $('conv-name').textContent = name;
  const meta = [];
  if (c.status === 'active') meta.push(mine(c) ? t('conversation.yours') : t('conversation.otherAgent'));
  if (detail.queue) meta.push(t('conversation.queue', { name: detail.queue.name || detail.queue.id }));
  meta.push(t('conversation.opened', { time: clockTime(c.openedAt) }));
  $('conv-meta').textContent = meta.join(' · ');
  const chip = $('conv-status');
  chip.textContent = t(`status.${c.status}`);
  chip.className = `status-chip ${c.status}`;
  chip.dataset.status = c.status;

  renderCustomerPanel(detail);
  renderTags('conversation', c.tags || []);
  $('customer-tags').hidden = !(detail.customer && detail.customer.tags);
  if (detail.customer && detail.customer.tags) renderTags('customer', detail.customer.tags);

  $('pick').hidden = !(c.status === 'waiting' && !c.agentId);
  const closed = c.status === 'closed' || c.status === 'wrapUp';
  renderWrapUp(c, detail);
  $('close').disabled = closed;
  // Snooze and follow-up: the agent's own conversations (snooze while open).
  const own = mine(c);
  const snoozed = !closed && c.snoozedUntil && c.snoozedUntil > Date.now();
  $('snooze-form').hidden = !own || closed || snoozed;
  $('wake').hidden = !own || !snoozed;
  $('follow-up').hidden = !own;
  $('follow-up').setAttribute('aria-pressed', String(Boolean(c.followUp)));
  $('transfer').disabled = closed;
  $('transfer-target').disabled = closed;
  renderQueueOptions();

  const input = $('composer-input');
  const reply = canReply(c);
  input.disabled = !reply;
  $('send').disabled = !reply;
  // Pictures, where the workstream lets agents send attachments.
  const attachments = !detail.workstream || detail.workstream.attachments.agentCanSend;
  $('attach').disabled = !reply || !attachments;
  $('attach-label').hidden = !attachments;
  $('sticker-toggle').disabled = !reply;
  if (!reply) toggleStickers(false);
  let placeholder = t('composer.placeholder');
  if (closed) placeholder = t('composer.closed');
  else if (c.status === 'waiting') placeholder = t('composer.pickFirst');
  else if (!reply) placeholder = t('composer.notYours');
  input.placeholder = placeholder;
  if (!reply && state.quote) {
    state.quote = null;
    renderQuote();
  }
}

/** The transfer choices: the agent's queues and the other agents serving them (presence, load). */
function renderQueueOptions() {
  const targets = state.targets || { queues: [], agents: [] };
  const queueIds = new Set([...targets.queues.map((q) => q.id), ...(state.me ? state.me.queueIds : [])]);
  const queues = [...queueIds].map((id) => el('option', {
    value: `queue:${id}`,
    text: state.queueNames.get(id) || (targets.queues.find((q) => q.id === id) || {}).name || id,
  }));
  const agents = targets.agents.map((a) => el('option', {
    value: `agent:${a.id}`,
    text: t('conversation.transferAgent', {
      name: a.name, status: t(`presence.${a.status}`), active: a.activeConversations, capacity: a.capacity,
    }),
  }));
  const groups = [el('option', { value: '', text: t('conversation.transferChoose') })];
  if (queues.length) groups.push(el('optgroup', { label: t('conversation.transferQueues') }, ...queues));
  if (agents.length) groups.push(el('optgroup', { label: t('conversation.transferAgents') }, ...agents));
  // Re-rendered with the conversation (every few seconds): a choice being made stays.
  const select = $('transfer-target');
  const kept = select.value;
  select.replaceChildren(...groups);
  select.value = [...select.options].some((o) => o.value === kept) ? kept : '';
}

/** Reads where conversations can be transferred (at sign-in and when a conversation opens). */
async function refreshTargets() {
  try {
    state.targets = await call('GET', '/agent/v1/transfer-targets');
    for (const q of state.targets.queues) if (q.name) state.queueNames.set(q.id, q.name);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) report(e, 'context.transfer');
  }
  renderQueueOptions();
}

function renderTranscript(messages, force = false) {
  // The lines depend on the messages and on whether the agent may quote them (its own, active).
  const quotable = canReply(state.detail && state.detail.conversation);
  const key = JSON.stringify([quotable, messages]);
  if (key === state.transcriptKey && !force) return;
  state.transcriptKey = key;
  state.messages = messages;
  const box = $('transcript');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  if (!messages.length) {
    box.replaceChildren(el('p', { className: 'empty', text: t('transcript.empty') }));
    return;
  }
  const context = {
    meId: state.me && state.me.id,
    byId: new Map(messages.map((m) => [m.id, m])),
    canQuote: quotable,
    onQuote: (entry) => {
      state.quote = entry;
      renderQuote();
      $('composer-input').focus();
    },
  };
  box.replaceChildren(...messages.map((entry) => transcriptLine(entry, context)));
  if (atBottom || force || !box.dataset.scrolled) {
    box.scrollTop = box.scrollHeight;
    box.dataset.scrolled = '1';
  }
}

function renderQuote() {
  const bar = $('quote-bar');
  if (!state.quote) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  $('quote-text').textContent = t('composer.replyingTo', { text: preview(state.quote.message) });
}

/** Marks the customer's messages read once the agent has looked at a new one. */
async function markRead(detail, messages) {
  const c = detail.conversation;
  if (!canReply(c) || c.sourceType !== 'user' || document.visibilityState !== 'visible') return;
  const lastIn = [...messages].reverse().find((m) => m.direction === 'in' && m.type === 'message');
  if (!lastIn || lastIn.id === state.lastReadEntry) return;
  state.lastReadEntry = lastIn.id;
  try {
    await call('POST', `/agent/v1/conversations/${enc(c.id)}/read`);
  } catch (e) {
    // Nothing to mark (no read token): nothing to say.
    if (!(e instanceof ApiError && e.code === 'nothing_to_mark_read')) report(e, 'context.conversation');
  }
}

async function refreshSurvey(conversation) {
  const box = $('survey');
  if (conversation.status !== 'closed' || !conversation.survey) {
    box.hidden = true;
    return;
  }
  const survey = await call('GET', `/agent/v1/conversations/${enc(conversation.id)}/survey`).catch(() => null);
  if (!survey || conversation.id !== state.openId) return;
  box.hidden = false;
  box.textContent = survey.answeredAt != null && survey.score != null
    ? t('conversation.survey', { score: survey.score, scale: survey.scale ?? '?' })
    : t('conversation.surveyWaiting');
}

// ----- actions ------------------------------------------------------------------------------
async function send(event) {
  event.preventDefault();
  const conversation = state.detail && state.detail.conversation;
  const input = $('composer-input');
  const text = input.value.trim();
  if (!text || !canReply(conversation)) return;
  const quoteToken = state.quote ? state.quote.quoteToken : undefined;
  // A retry of the same text after a failure keeps its key: the API queues it once.
  if (!state.pendingSend || state.pendingSend.text !== text || state.pendingSend.quoteToken !== quoteToken) {
    state.pendingSend = { text, quoteToken, key: randomId() };
  }
  const body = { type: 'text', text };
  if (quoteToken) body.quoteToken = quoteToken;
  $('send').disabled = true;
  try {
    await call('POST', `/agent/v1/conversations/${enc(conversation.id)}/messages`, body,
      { headers: { 'Idempotency-Key': state.pendingSend.key } });
    state.pendingSend = null;
    if (input.value.trim() === text) input.value = '';
    state.quote = null;
    state.lastTypingAt = 0;
    renderQuote();
    await refreshConversation(true);
    renderTranscript(state.messages || [], true);
  } finally {
    $('send').disabled = !canReply(state.detail && state.detail.conversation);
    input.focus();
  }
}

/** Sends a file the agent chose, uploaded first (POST /agent/v1/media): a picture as an image;
 *  a PDF, video or audio file as a `file` (LINE shows its name and link). */
async function attachFile() {
  const input = $('attach');
  const file = input.files && input.files[0];
  input.value = '';
  const conversation = state.detail && state.detail.conversation;
  if (!file || !canReply(conversation)) return;
  announce(t('composer.uploading', { name: file.name }));
  const uploaded = await call('POST', '/agent/v1/media', undefined, { raw: file });
  const picture = file.type === 'image/png' || file.type === 'image/jpeg';
  const message = picture
    ? { type: 'image', mediaId: uploaded.mediaId }
    : { type: 'file', mediaId: uploaded.mediaId, fileName: (file.name || 'file').slice(0, 100) };
  await call('POST', `/agent/v1/conversations/${enc(conversation.id)}/messages`,
    message, { headers: { 'Idempotency-Key': randomId() } });
  announce(t(picture ? 'composer.imageSent' : 'composer.fileSent', { name: file.name }));
  await refreshConversation(true);
  renderTranscript(state.messages || [], true);
}

// LINE's free basic stickers (package 446, Brown & Cony), as the sandbox's palette offers them;
// the palette shows their names (no sticker image is fetched from LINE's CDN by the page).
const STICKERS = [['1988', '😀'], ['1989', '😍'], ['1990', '😢'], ['1991', '😡'], ['1992', '👍'],
  ['1993', '🙏'], ['1994', '🎉'], ['1995', '😴'], ['1996', '🤔'], ['1997', '👋']];

function toggleStickers(open = $('stickers').hidden) {
  const palette = $('stickers');
  if (open && !palette.childElementCount) {
    palette.replaceChildren(...STICKERS.map(([id, emoji]) => el('button', {
      type: 'button',
      className: 'sticker-option',
      testid: 'sticker-option',
      'data-sticker-id': id,
      'aria-label': t('composer.stickerNamed', { id }),
      text: emoji,
      onclick: guard(() => sendSticker(id), 'context.send'),
    })));
  }
  palette.hidden = !open;
  $('sticker-toggle').setAttribute('aria-expanded', String(open));
}

async function sendSticker(stickerId) {
  const conversation = state.detail && state.detail.conversation;
  if (!canReply(conversation)) return;
  toggleStickers(false);
  const body = { type: 'sticker', packageId: '446', stickerId };
  if (state.quote && state.quote.quoteToken) body.quoteToken = state.quote.quoteToken;
  await call('POST', `/agent/v1/conversations/${enc(conversation.id)}/messages`, body,
    { headers: { 'Idempotency-Key': randomId() } });
  state.quote = null;
  renderQuote();
  await refreshConversation(true);
  renderTranscript(state.messages || [], true);
  $('composer-input').focus();
}

// ------------------------------------------------------------------------------------------
// Quick replies: typing "/" and a shortcut offers the admins' texts; Tab (or a click) inserts one
// ------------------------------------------------------------------------------------------
/** The quick replies for the open conversation's customer, read once per conversation. */
async function loadQuickReplies() {
  const detail = state.detail;
  if (!detail) return [];
  const language = (detail.customer && detail.customer.language) || '';
  const key = `${detail.conversation.id}|${language}`;
  if (state.quickRepliesKey !== key) {
    const found = await call('GET', `/agent/v1/quick-replies?language=${enc(language)}`);
    state.quickReplies = (found && found.quickReplies) || [];
    state.quickRepliesKey = key;
  }
  return state.quickReplies;
}

/** The typed shortcut, when the composer holds nothing else ("/ref"). */
function typedShortcut() {
  const value = $('composer-input').value;
  return /^\/[a-z0-9_-]*$/.test(value) ? value : null;
}

async function suggestQuickReplies() {
  const typed = typedShortcut();
  const list = $('quick-replies');
  if (typed === null || !canReply(state.detail && state.detail.conversation)) {
    list.hidden = true;
    return;
  }
  const all = await loadQuickReplies();
  if (typedShortcut() !== typed) return;
  const matches = all.filter((r) => r.shortcut.startsWith(typed)).slice(0, 8);
  list.replaceChildren(...matches.map((r, i) => el('li', {
    role: 'option',
    testid: 'quick-reply',
    'data-shortcut': r.shortcut,
    'aria-selected': i === 0 ? 'true' : 'false',
    onclick: () => insertQuickReply(r),
  }, el('span', { className: 'shortcut', text: r.shortcut }), el('span', { text: r.title }))));
  list.hidden = matches.length === 0;
}

/** Puts the quick reply's text, its slugs filled in, in the composer. */
function insertQuickReply(reply) {
  const customer = (state.detail && state.detail.customer && state.detail.customer.displayName) || '';
  const agent = (state.me && state.me.name) || '';
  const text = (reply.text || '').replaceAll('{customerName}', customer).replaceAll('{agentName}', agent);
  const input = $('composer-input');
  input.value = text;
  $('quick-replies').hidden = true;
  input.focus();
  input.setSelectionRange(text.length, text.length);
}

function composerKeys(event) {
  const list = $('quick-replies');
  if (!list.hidden && (event.key === 'Tab' || event.key === 'Enter') && !event.shiftKey) {
    const first = list.querySelector('[aria-selected="true"]');
    const reply = first && (state.quickReplies || []).find((r) => r.shortcut === first.dataset.shortcut);
    if (reply) {
      event.preventDefault();
      insertQuickReply(reply);
      return;
    }
  }
  if (event.key === 'Escape') list.hidden = true;
  // Enter sends; Shift+Enter is a new line; Enter that confirms an IME composition is not a send.
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
}

async function typing() {
  const conversation = state.detail && state.detail.conversation;
  if (!canReply(conversation) || conversation.sourceType !== 'user') return;
  const now = Date.now();
  if (now - state.lastTypingAt < TYPING_EVERY_MS || !$('composer-input').value.trim()) return;
  state.lastTypingAt = now;
  try {
    await call('POST', `/agent/v1/conversations/${enc(conversation.id)}/typing`, { seconds: TYPING_SECONDS });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    // The loading animation is a nicety: a failure is not worth interrupting the agent.
  }
}

async function pick() {
  if (!state.openId) return;
  try {
    await call('POST', `/agent/v1/conversations/${enc(state.openId)}/pick`);
  } catch (e) {
    // Assigned to this agent meanwhile (becoming available assigns waiting work): that is a pick.
    if (!(e instanceof ApiError && e.status === 409)) throw e;
    await refreshConversation(true);
    if (!canReply(state.detail && state.detail.conversation)) throw e;
  }
  toast(t('conversation.picked'), 'info');
  state.tab = 'mine';
  await Promise.all([refreshConversation(true), refreshInbox(true), refreshMe()]);
  renderTranscript(state.messages || [], true);
  $('composer-input').focus();
}

async function transfer(event) {
  event.preventDefault();
  const [kind, id] = $('transfer-target').value.split(/:(.*)/s);
  if (!id) {
    toast(t('conversation.transferEmpty'));
    $('transfer-target').focus();
    return;
  }
  if (!state.openId) return;
  const body = kind === 'agent' ? { agentId: id } : { queueId: id };
  await call('POST', `/agent/v1/conversations/${enc(state.openId)}/transfer`, body);
  $('transfer-target').value = '';
  refreshTargets();
  toast(t('conversation.transferred'), 'info');
  await Promise.all([refreshConversation(true), refreshInbox(true), refreshMe()]);
}

/** The wrap-up form: for the agent's own conversation closed with its wrap-up pending. */
function renderWrapUp(c, detail) {
  const form = $('wrap-up');
  const show = c.status === 'wrapUp' && mine(c);
  const wasHidden = form.hidden;
  form.hidden = !show;
  if (!show || !wasHidden) return;
  $('wrap-up-until').textContent = t('wrapUp.until', { time: clockTime(c.wrapUp.until) });
  const listed = (detail.workstream && detail.workstream.dispositions) || [];
  const select = $('wrap-up-disposition');
  select.hidden = listed.length === 0;
  $('wrap-up-text').hidden = listed.length > 0;
  select.replaceChildren(...listed.map((d) => el('option', { value: d, text: d })));
  $('wrap-up-notes').value = '';
}

async function finishWrapUp(event) {
  event.preventDefault();
  if (!state.openId) return;
  const listed = !$('wrap-up-disposition').hidden;
  const disposition = (listed ? $('wrap-up-disposition').value : $('wrap-up-text').value).trim();
  if (!disposition) {
    toast(t('wrapUp.empty'));
    (listed ? $('wrap-up-disposition') : $('wrap-up-text')).focus();
    return;
  }
  const notes = $('wrap-up-notes').value.trim();
  const body = notes ? { disposition, notes } : { disposition };
  await call('POST', `/agent/v1/conversations/${enc(state.openId)}/wrap-up`, body);
  toast(t('wrapUp.done'), 'info');
  await Promise.all([refreshConversation(true), refreshInbox(true), refreshMe()]);
}

async function addNote(event) {
  event.preventDefault();
  if (!state.openId) return;
  const text = $('note-input').value.trim();
  if (!text) {
    toast(t('note.empty'));
    $('note-input').focus();
    return;
  }
  await call('POST', `/agent/v1/conversations/${enc(state.openId)}/notes`, { text });
  $('note-input').value = '';
  toast(t('note.added'), 'info');
  await refreshConversation(true);
}

/** When a snooze choice ends: in an hour, in four, or tomorrow at 9:00 (the browser's time). */
function snoozeUntil(choice, now = new Date()) {
  if (choice === '4h') return new Date(now.getTime() + 4 * 3_600_000);
  if (choice === 'tomorrow') {
    const at = new Date(now);
    at.setDate(at.getDate() + 1);
    at.setHours(9, 0, 0, 0);
    return at;
  }
  return new Date(now.getTime() + 3_600_000);
}

async function snooze(event) {
  event.preventDefault();
  if (!state.openId) return;
  const until = snoozeUntil($('snooze-for').value);
  const c = await call('POST', `/agent/v1/conversations/${enc(state.openId)}/snooze`, { until: until.toISOString() });
  toast(t('conversation.snoozed', { time: clockTime(c.snoozedUntil) }), 'info');
  await Promise.all([refreshConversation(true), refreshInbox(true)]);
}

async function wake() {
  if (!state.openId) return;
  await call('POST', `/agent/v1/conversations/${enc(state.openId)}/snooze`, { until: null });
  toast(t('conversation.woken'), 'info');
  await Promise.all([refreshConversation(true), refreshInbox(true)]);
}

async function toggleFollowUp() {
  if (!state.openId || !state.detail) return;
  const on = !state.detail.conversation.followUp;
  await call('PUT', `/agent/v1/conversations/${enc(state.openId)}/follow-up`, { followUp: on });
  toast(t(on ? 'conversation.followUpOn' : 'conversation.followUpOff'), 'info');
  await refreshConversation(true);
}

async function closeConversation() {
  if (!state.openId) return;
  $('close').disabled = true;
  try {
    await call('POST', `/agent/v1/conversations/${enc(state.openId)}/close`);
    toast(t('conversation.closed'), 'info');
  } finally {
    await Promise.all([refreshConversation(true), refreshInbox(true), refreshMe()]);
  }
}

// ------------------------------------------------------------------------------------------
// Language
// ------------------------------------------------------------------------------------------
function renderLanguage() {
  translate();
  $('language').value = language();
  updateTitle();
  renderMe();
  renderInbox();
  if (state.detail) {
    renderConversation();
    state.transcriptKey = '';
    renderTranscript(state.messages || []);
    renderQuote();
    refreshSurvey(state.detail.conversation).catch(() => {});
  }
}

// ------------------------------------------------------------------------------------------
// Start
// ------------------------------------------------------------------------------------------
function wire() {
  $('language').replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => el('option', { value: code, lang: code, text: name })));
  $('language').addEventListener('change', (e) => {
    setLanguage(e.target.value, true);
    renderLanguage();
  });
  $('signin-form').addEventListener('submit', guard(signIn));
  $('sso-submit').addEventListener('click', guard(startSso));
  $('sign-out').addEventListener('click', guard(signOut));
  $('presence').addEventListener('change', guard((e) => setPresence(e.target.value), 'context.presence'));
  $('enable-notifications').addEventListener('click', guard(enableNotifications, 'context.notifications'));
  for (const tab of TABS) $(`tab-${tab}`).addEventListener('click', () => selectTab(tab));
  $('tabs').addEventListener('keydown', tabKeys);
  $('pick').addEventListener('click', guard(pick, 'context.pick'));
  $('transfer-form').addEventListener('submit', guard(transfer, 'context.transfer'));
  $('attach').addEventListener('change', guard(attachFile, 'context.send'));
  $('sticker-toggle').addEventListener('click', () => toggleStickers());
  $('contact-search').addEventListener('input', () => searchContacts().catch((e) => report(e, 'context.contact')));
  $('search-form').addEventListener('submit', guard(search, 'context.search'));
  $('search-clear').addEventListener('click', () => { clearSearch(); $('search-input').focus(); });
  $('contact-edit').addEventListener('click', editContact);
  $('conversation-tag-form').addEventListener('submit', guard((e) => addTag(e, 'conversation'), 'context.tags'));
  $('customer-tag-form').addEventListener('submit', guard((e) => addTag(e, 'customer'), 'context.tags'));
  $('contact-edit-form').addEventListener('submit', guard(saveContact, 'context.contact'));
  $('contact-form').addEventListener('submit', guard(createContact, 'context.contact'));
  $('write-first').addEventListener('submit', guard(writeFirst, 'context.writeFirst'));
  // Presence and load change: the list is read again when the agent goes to choose.
  $('transfer-target').addEventListener('focus', () => { refreshTargets(); });
  $('wrap-up').addEventListener('submit', guard(finishWrapUp, 'context.wrapUp'));
  $('note-form').addEventListener('submit', guard(addNote, 'context.note'));
  $('offer-accept').addEventListener('click', guard(() => answerOffer(true), 'context.offer'));
  $('offer-reject').addEventListener('click', guard(() => answerOffer(false), 'context.offer'));
  $('snooze-form').addEventListener('submit', guard(snooze, 'context.snooze'));
  $('wake').addEventListener('click', guard(wake, 'context.snooze'));
  $('follow-up').addEventListener('click', guard(toggleFollowUp, 'context.followUp'));
  $('close').addEventListener('click', guard(closeConversation, 'context.close'));
  $('composer').addEventListener('submit', guard(send, 'context.send'));
  $('composer-input').addEventListener('keydown', composerKeys);
  $('composer-input').addEventListener('input', guard(typing));
  $('composer-input').addEventListener('input', guard(suggestQuickReplies, 'context.quickReplies'));
  $('quote-cancel').addEventListener('click', () => {
    state.quote = null;
    renderQuote();
    $('composer-input').focus();
  });
  $('toast-close').addEventListener('click', () => { $('toast').hidden = true; });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && state.openId) {
      state.unread.delete(state.openId);
      updateTitle();
      renderInbox();
      refreshConversation(true).catch((e) => report(e, 'context.conversation'));
    }
  });
  window.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    report(event.reason);
  });
  onUnauthorized(sessionEnded);
}

async function boot() {
  setLanguage(initialLanguage());
  wire();
  translate();
  $('language').value = language();
  updateTitle();
  try {
    state.config = await call('GET', '/console/config.json', undefined, { anonymous: true });
  } catch (e) {
    state.config = { signIn: 'token' };
    toast(t('signin.configFailed', { message: e.message || String(e) }));
  }
  if (await finishSso()) return;
  if (!token()) {
    showSignIn();
    return;
  }
  try {
    startSession(await call('GET', '/agent/v1/me', undefined, { signingIn: true }));
  } catch (e) {
    setToken(null);
    showSignIn(e instanceof ApiError && e.status === 401 ? t('signin.ended') : undefined);
    if (!(e instanceof ApiError && e.status === 401)) report(e);
  }
}

boot().catch((e) => report(e));

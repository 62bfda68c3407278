// omniline sandbox: the customer (a simulated LINE user), the agent (the agent API) and an
// admin glance, on one page. Plain ES2020, no dependencies, no external resources.
// Every piece of data reaches the DOM through textContent / attributes, never innerHTML.
'use strict';

(() => {
  // ------------------------------------------------------------------------------------------
  // Constants
  // ------------------------------------------------------------------------------------------
  const STICKER_PACKAGE = '446';
  const STICKERS = [
    ['1988', '😀'], ['1989', '😍'], ['1990', '😢'], ['1991', '😡'], ['1992', '👍'],
    ['1993', '🙏'], ['1994', '🎉'], ['1995', '😴'], ['1996', '🤔'], ['1997', '👋'],
  ];
  const SAMPLE_LOCATION = {
    type: 'location',
    title: 'Tokyo Tower',
    address: '4-2-8 Shibakoen, Minato',
    latitude: 35.6586,
    longitude: 139.7454,
  };
  const SUGGESTED_USERS = [
    { name: 'Pat Customer', language: 'en' },
    { name: 'Yuki Tanaka', language: 'ja' },
    { name: 'Somchai Dee', language: 'th' },
    { name: 'Mei Lin', language: 'zh-TW' },
    { name: 'Putri Ayu', language: 'id' },
  ];
  const LANGUAGE_NAMES = { en: 'English', ja: '日本語', th: 'ไทย', 'zh-TW': '繁體中文', id: 'Bahasa Indonesia' };
  const IMAGE_TYPES_CUSTOMER = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
  const IMAGE_TYPES_AGENT = ['image/png', 'image/jpeg'];
  const TIMELINE_WAIT = 20;
  const NOTIFICATION_WAIT = 20;
  const TYPING_EVERY_MS = 5000;
  const SYSTEM_EVENTS = {
    follow: 'added the account as a friend',
    unfollow: 'blocked the account',
    join: 'joined',
    leave: 'left',
    memberJoined: 'a member joined',
    memberLeft: 'a member left',
    accountLink: 'linked their account',
    unsend: 'unsent a message',
    videoPlayComplete: 'watched a video',
    beacon: 'beacon',
  };

  // ------------------------------------------------------------------------------------------
  // Small helpers
  // ------------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const enc = encodeURIComponent;

  /** Builds an element. `props`: className, text, testid, dataset keys as `data-…`, `on…`
   *  handlers, any other attribute. Children: nodes or strings (as text), null skipped. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'className') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key === 'testid') node.setAttribute('data-testid', value);
      else if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2).toLowerCase(), guard(value));
      } else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /**
   * Wraps `task` (async, no arguments) so that at most one call runs at a time: `run()` while a
   * call is running does nothing (a timer tick is skipped, no request stacks up); `run(true)`
   * runs the task once more after the running call (fresh data after a change the running call
   * may predate), however many times it is asked meanwhile.
   */
  function oneAtATime(task) {
    let running = null;
    let queued = null;
    const start = () => {
      running = Promise.resolve().then(task).finally(() => { running = null; });
      return running;
    };
    return (again = false) => {
      if (!running) return start();
      if (!again) return Promise.resolve();
      if (!queued) {
        queued = running.catch(() => {}).then(() => {
          queued = null;
          return running || start();
        });
      }
      return queued;
    };
  }

  function fmtTime(ms) {
    if (typeof ms !== 'number') return '';
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  /** Epoch milliseconds or an RFC 3339 string. */
  function fmtDateTime(value) {
    if (typeof value !== 'number' && typeof value !== 'string') return '—';
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
      : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function isNearBottom(scroller) {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  const stuckToBottom = new WeakMap();

  function scrollToBottom(scroller) {
    scroller.scrollTop = scroller.scrollHeight;
    stuckToBottom.set(scroller, true);
  }

  /** Keeps `scroller` at its bottom while the reader is there, whatever changes size inside
   *  (new bubbles, images loading, a palette or the survey line taking room). */
  function followBottom(scroller) {
    stuckToBottom.set(scroller, true);
    scroller.addEventListener('scroll', () => stuckToBottom.set(scroller, isNearBottom(scroller)));
    const observer = new ResizeObserver(() => {
      if (stuckToBottom.get(scroller)) scroller.scrollTop = scroller.scrollHeight;
    });
    observer.observe(scroller);
    for (const child of scroller.children) observer.observe(child);
  }

  /** `url` (absolute, or relative to this page, like the sandbox's `/sandbox/api/content/…`) when
   *  it is an http(s) link, else null: data from the API never becomes a javascript:, data: or
   *  other scheme's href / src. */
  function httpUrl(url) {
    if (typeof url !== 'string' || !url.trim()) return null;
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? url : null;
    } catch {
      return null;
    }
  }

  function readFileBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
      reader.onerror = () => reject(new Error('Could not read the file'));
      reader.readAsDataURL(file);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Status line and error toast
  // ------------------------------------------------------------------------------------------
  let toastTimer = null;

  function toast(message, kind = 'error') {
    const box = $('toast');
    box.textContent = message;
    box.className = `toast ${kind}`;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 7000 : 3000);
  }

  function setStatus(text) {
    $('status').textContent = text;
  }

  function report(err, context) {
    if (err && err.name === 'AbortError') return;
    const message = err instanceof ApiError
      ? `${err.message}${err.code ? ` (${err.code})` : ''}`
      : String((err && err.message) || err);
    toast(context ? `${context}: ${message}` : message);
  }

  /** Wraps an event handler so that nothing it throws goes uncaught. */
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

  document.addEventListener('DOMContentLoaded', () => {
    $('toast').addEventListener('click', () => { $('toast').hidden = true; });
  });

  window.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    report(event.reason);
  });

  // ------------------------------------------------------------------------------------------
  // API
  // ------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  /**
   * One HTTP call. `body`: a plain object (sent as JSON), a Blob/File (sent as is) or undefined.
   * Answers the parsed JSON (null for an empty body); throws ApiError with the
   * `{"error":{"code","message","field"}}` of a failed call. `options.signal` aborts it.
   */
  async function api(method, path, body, headers, options = {}) {
    const init = { method, headers: { ...(headers || {}) }, signal: options.signal };
    if (body instanceof Blob) {
      init.body = body;
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'The local stack is not answering');
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!response.ok) {
      const error = data && data.error;
      throw new ApiError(
        response.status,
        (error && error.code) || `http_${response.status}`,
        (error && error.message) || `${method} ${path.split('?')[0]} answered ${response.status}`,
        error && error.field,
      );
    }
    return data;
  }

  function agentApi(method, path, body, headers, options) {
    if (!agent.token) return Promise.reject(new ApiError(401, 'unauthorized', 'Log in first'));
    return api(method, path, body, { Authorization: `Bearer ${agent.token}`, ...(headers || {}) }, options);
  }

  // ------------------------------------------------------------------------------------------
  // LINE message objects → DOM (shared by the customer chat and the agent transcript)
  // ------------------------------------------------------------------------------------------
  function stickerEmoji(message) {
    if (String(message.packageId) !== STICKER_PACKAGE) return null;
    const found = STICKERS.find(([id]) => id === String(message.stickerId));
    return found ? found[1] : null;
  }

  /** A one-line summary of a message (notifications, previews). */
  function summarize(message) {
    if (!message) return '';
    switch (message.type) {
      case 'text': return message.text || '';
      case 'sticker': return `Sticker ${stickerEmoji(message) || ''}`.trim();
      case 'image': return 'Photo';
      case 'video': return 'Video';
      case 'audio': return 'Audio';
      case 'file': return `File ${message.fileName || ''}`.trim();
      case 'location': return `Location${message.title ? `: ${message.title}` : ''}`;
      case 'template':
      case 'flex': return message.altText || `[${message.type}]`;
      default: return `[${message.type || 'message'}]`;
    }
  }

  /**
   * The content of one bubble: `{ node, kind }` where kind is text | sticker | media | card.
   * `mediaUrl` overrides the image / video URL (the agent transcript's signed links).
   */
  function messageContent(message, mediaUrl) {
    const m = message || {};
    switch (m.type) {
      case 'text':
        return { kind: 'text', node: el('span', { className: 'msg-text', text: m.text || '' }) };
      case 'sticker': {
        const emoji = stickerEmoji(m);
        return emoji
          ? { kind: 'sticker', node: el('span', { className: 'sticker', title: `sticker ${m.packageId}/${m.stickerId}`, text: emoji }) }
          : { kind: 'text', node: el('span', { className: 'msg-other', text: `[sticker ${m.packageId}/${m.stickerId}]` }) };
      }
      case 'image': {
        // Only http(s) links (httpUrl) become a src / href; anything else shows as text.
        const src = httpUrl(mediaUrl || m.previewImageUrl || m.contentUrl || m.originalContentUrl);
        const full = httpUrl(mediaUrl || m.originalContentUrl || m.contentUrl) || src;
        if (!src) return { kind: 'text', node: el('span', { className: 'msg-other', text: '[image]' }) };
        return {
          kind: 'media',
          node: el('a', { href: full, target: '_blank', rel: 'noopener' },
            el('img', { className: 'msg-image', src, alt: 'image', loading: 'lazy' })),
        };
      }
      case 'video': {
        const src = httpUrl(mediaUrl || m.originalContentUrl);
        return src
          ? { kind: 'text', node: el('a', { className: 'msg-link', href: src, target: '_blank', rel: 'noopener', text: '▶ Video' }) }
          : { kind: 'text', node: el('span', { className: 'msg-other', text: '[video]' }) };
      }
      case 'audio': {
        const src = httpUrl(mediaUrl || m.originalContentUrl);
        return src
          ? { kind: 'text', node: el('a', { className: 'msg-link', href: src, target: '_blank', rel: 'noopener', text: '▶ Audio' }) }
          : { kind: 'text', node: el('span', { className: 'msg-other', text: '[audio]' }) };
      }
      case 'location':
        return {
          kind: 'card',
          node: el('div', { className: 'location' },
            el('div', { className: 'location-map', 'aria-hidden': 'true' }, el('span', { className: 'pin' })),
            el('div', { className: 'location-text' },
              el('strong', { text: m.title || 'Location' }),
              m.address ? el('span', { text: m.address }) : null,
              el('span', { className: 'coords', text: `${Number(m.latitude).toFixed(4)}, ${Number(m.longitude).toFixed(4)}` }))),
        };
      case 'template':
      case 'flex':
        return {
          kind: 'text',
          node: el('span', { className: 'msg-alt' },
            el('span', { className: 'tag', text: m.type }), ' ', m.altText || ''),
        };
      case 'postback':
        return { kind: 'text', node: el('span', { className: 'msg-other', text: `[postback ${m.data || ''}]` }) };
      case 'file':
        return { kind: 'text', node: el('span', { className: 'msg-other', text: `[file ${m.fileName || ''}]` }) };
      default:
        return { kind: 'text', node: el('span', { className: 'msg-other', text: `[${m.type || 'message'}]` }) };
    }
  }

  // ------------------------------------------------------------------------------------------
  // Session (sandbox bootstrap)
  // ------------------------------------------------------------------------------------------
  const session = { data: null };

  async function loadSession() {
    for (let attempt = 0; ; attempt += 1) {
      try {
        session.data = await api('GET', '/sandbox/api/session');
        setStatus('');
        return session.data;
      } catch (e) {
        if (e instanceof ApiError && e.code === 'sandbox_off') {
          setStatus('Sandbox mode is off (SANDBOX=off): this page has nothing to drive.');
          throw e;
        }
        if (e instanceof ApiError && e.code === 'sandbox_starting') {
          setStatus('The sandbox is starting…');
        } else {
          setStatus(`Waiting for the local stack… (${e.message})`);
        }
        await sleep(Math.min(1000 + attempt * 250, 3000));
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // 1. Customer
  // ------------------------------------------------------------------------------------------
  const customer = {
    users: [],
    groups: [],
    userId: null, // the selected chat: a user's id, or a group's (with `group` set)
    group: null,
    quoting: null, // { messageId, text }: the message the next text or sticker quotes
    generation: 0, // bumps on every user switch; a stale poll loop stops
    controller: null, // aborts the running long poll
    rows: new Map(), // seq → row element
    entries: new Map(), // seq → TimelineEntry
    lastSeq: 0, // the poll cursor: only timeline poll answers move it (a send answer does not)
    readUpTo: null, // both as the last poll answered them, sent back on the next poll
    typingUntil: null,
    typingTimer: null,
  };

  function userById(id) {
    return customer.users.find((u) => u.id === id) || null;
  }

  function groupById(id) {
    return customer.groups.find((g) => g.id === id) || null;
  }

  function renderUserSelect() {
    const select = $('user-select');
    const options = customer.users.map((u) =>
      el('option', { value: u.id, text: `${u.name} · ${u.language || 'en'}` }));
    if (!options.length) options.push(el('option', { value: '', text: '(no customer yet)' }));
    if (customer.groups.length) {
      options.push(el('optgroup', { label: 'Group chats' }, customer.groups.map((g) =>
        el('option', { value: `group:${g.id}`, text: `${g.name} · ${g.members.length} members` }))));
    }
    select.replaceChildren(...options);
    select.value = customer.group ? `group:${customer.group.id}` : (customer.userId || '');
    renderGroupMembers();
  }

  /** The member checkboxes of the new-group form: every customer. */
  function renderGroupMembers() {
    const box = $('new-group-members');
    const checked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
    box.replaceChildren(box.querySelector('legend'), ...customer.users.map((u) =>
      el('label', { className: 'member-choice' },
        el('input', { type: 'checkbox', value: u.id, testid: 'new-group-member', checked: checked.has(u.id) || undefined }),
        ` ${u.name}`)));
  }

  async function createGroup() {
    const name = $('new-group-name').value.trim();
    const members = [...document.querySelectorAll('#new-group-members input:checked')].map((i) => i.value);
    if (!name) {
      toast('Give the group a name');
      $('new-group-name').focus();
      return;
    }
    if (members.length < 2) {
      toast('Choose two customers or more');
      return;
    }
    const button = $('create-group');
    button.disabled = true;
    try {
      const group = await api('POST', '/sandbox/api/groups', { name, members });
      customer.groups = customer.groups.filter((g) => g.id !== group.id).concat(group);
      $('new-group-name').value = '';
      selectUser(`group:${group.id}`);
      toast(`${group.name}: ${(session.data && session.data.accountName) || 'the account'} joined the group`, 'info');
      $('customer-input').focus();
    } finally {
      button.disabled = false;
    }
  }

  function suggestNewUser() {
    const taken = new Set(customer.users.map((u) => u.name));
    const next = SUGGESTED_USERS.find((s) => !taken.has(s.name))
      || { name: `Customer ${customer.users.length + 1}`, language: 'en' };
    $('new-user-name').value = next.name;
    const languages = (session.data && session.data.languages) || [];
    $('new-user-language').value = languages.includes(next.language) ? next.language : (languages[0] || 'en');
    const avatar = customer.users.length % 8;
    const radio = document.querySelector(`#new-user-avatar input[value="${avatar}"]`);
    if (radio) radio.checked = true;
  }

  function renderNewUserForm() {
    const languages = (session.data && session.data.languages) || ['en'];
    $('new-user-language').replaceChildren(...languages.map((lang) =>
      el('option', { value: lang, text: LANGUAGE_NAMES[lang] ? `${lang} · ${LANGUAGE_NAMES[lang]}` : lang })));
    const avatars = (session.data && session.data.avatars) || [];
    $('new-user-avatar').replaceChildren(...avatars.map((url, i) =>
      el('label', { className: 'avatar-choice', title: `Picture ${i}` },
        el('input', { type: 'radio', name: 'new-user-avatar', value: String(i), 'aria-label': `Picture ${i}` }),
        httpUrl(url) ? el('img', { src: url, alt: '' }) : el('span', { text: String(i) }))));
  }

  async function loadUsers() {
    const [users, groups] = await Promise.all([
      api('GET', '/sandbox/api/users'),
      api('GET', '/sandbox/api/groups'),
    ]);
    customer.users = (users && users.users) || [];
    customer.groups = (groups && groups.groups) || [];
  }

  async function createUser() {
    const name = $('new-user-name').value.trim();
    if (!name) {
      toast('Give the new customer a name');
      $('new-user-name').focus();
      return;
    }
    const checked = document.querySelector('#new-user-avatar input:checked');
    const body = { name, language: $('new-user-language').value || 'en' };
    if (checked) body.avatar = Number(checked.value);
    const button = $('create-user');
    button.disabled = true;
    try {
      const user = await api('POST', '/sandbox/api/users', body);
      customer.users = customer.users.filter((u) => u.id !== user.id).concat(user);
      selectUser(user.id);
      suggestNewUser();
      toast(`${user.name} added ${(session.data && session.data.accountName) || 'the account'} as a friend`, 'info');
      $('customer-input').focus();
    } finally {
      button.disabled = false;
    }
  }

  /** Selects a chat: a user's id, or `group:{id}`. */
  function selectUser(value) {
    if (customer.controller) customer.controller.abort();
    customer.generation += 1;
    const groupId = typeof value === 'string' && value.startsWith('group:') ? value.slice(6) : null;
    customer.group = groupId ? groupById(groupId) : null;
    customer.userId = customer.group ? customer.group.id : (groupId ? null : (value || null));
    setQuote(null);
    customer.rows.clear();
    customer.entries.clear();
    customer.lastSeq = 0;
    customer.readUpTo = null;
    customer.typingUntil = null;
    $('customer-timeline').replaceChildren();
    updateTyping();
    renderUserSelect();
    const group = customer.group;
    const user = group ? null : userById(customer.userId);
    $('customer-who').textContent = group ? `${group.name} · ${group.members.length + 1} in the group`
      : user ? `as ${user.name}` : '';
    $('customer-empty').hidden = Boolean(user || group);
    $('group-sender-row').hidden = !group;
    if (group) {
      $('group-sender').replaceChildren(...group.members.map((id) =>
        el('option', { value: id, text: (userById(id) || { name: id }).name })));
    }
    setCustomerComposerEnabled(Boolean(user || group));
    if (user || group) timelineLoop(customer.generation, customer.userId);
  }

  /** The chat's path under /sandbox/api: a user's or a group's. */
  function chatPath() {
    return customer.group ? `/sandbox/api/groups/${enc(customer.group.id)}` : `/sandbox/api/users/${enc(customer.userId)}`;
  }

  /** The next text or sticker quotes `entry` (null: no quote). */
  function setQuote(entry) {
    customer.quoting = entry && entry.messageId
      ? { messageId: entry.messageId, text: summarize(entry.message) } : null;
    $('customer-quote').hidden = !customer.quoting;
    $('customer-quote-text').textContent = customer.quoting ? `Quoting: ${customer.quoting.text}` : '';
  }

  function setCustomerComposerEnabled(enabled) {
    for (const id of ['customer-input', 'customer-send', 'customer-sticker', 'customer-location', 'customer-image-input']) {
      $(id).disabled = !enabled;
    }
  }

  async function timelineLoop(generation, userId) {
    let failures = 0;
    while (generation === customer.generation) {
      const controller = new AbortController();
      customer.controller = controller;
      try {
        // `typing` / `read`: what the page shows now (0 for none); the server answers at once
        // when its values differ, so the typing dots and "Read" marks are not missed between polls.
        const query = new URLSearchParams({
          after: String(customer.lastSeq),
          wait: String(TIMELINE_WAIT),
          typing: String(typeof customer.typingUntil === 'number' ? customer.typingUntil : 0),
          read: String(typeof customer.readUpTo === 'number' ? customer.readUpTo : 0),
        });
        const data = await api('GET', `${chatPath()}/timeline?${query}`,
          undefined, undefined, { signal: controller.signal });
        if (generation !== customer.generation) return;
        applyTimeline(data || {}, true);
        failures = 0;
      } catch (e) {
        if (generation !== customer.generation || (e && e.name === 'AbortError')) return;
        failures += 1;
        if (failures === 1 || failures % 10 === 0) report(e, 'Customer chat');
        await sleep(Math.min(1000 * failures, 8000));
      }
    }
  }

  /** Shows a timeline answer. `fromPoll`: a timeline poll answer, the only kind that moves the
   *  cursor (a send answer's entry may have a higher seq than an account push still unseen). */
  function applyTimeline(data, fromPoll = false) {
    let added = false;
    for (const entry of data.entries || []) {
      if (addTimelineEntry(entry)) added = true;
      if (fromPoll && entry && typeof entry.seq === 'number') {
        customer.lastSeq = Math.max(customer.lastSeq, entry.seq);
      }
    }
    if ('readUpTo' in data) customer.readUpTo = data.readUpTo;
    if ('typingUntil' in data) customer.typingUntil = data.typingUntil;
    updateReadMarks();
    updateTyping();
    if (added) {
      renderQuickReplies();
      scrollToBottom($('chat-scroll'));
    }
  }

  /** Adds one entry unless its seq is already shown; keeps rows in seq order. */
  function addTimelineEntry(entry) {
    if (!entry || typeof entry.seq !== 'number' || customer.rows.has(entry.seq)) return false;
    const row = renderTimelineRow(entry);
    const timeline = $('customer-timeline');
    const later = [...customer.rows.keys()].filter((seq) => seq > entry.seq).sort((a, b) => a - b)[0];
    if (later !== undefined) timeline.insertBefore(row, customer.rows.get(later));
    else timeline.append(row);
    customer.rows.set(entry.seq, row);
    customer.entries.set(entry.seq, entry);
    markAccountRuns();
    return true;
  }

  function renderTimelineRow(entry) {
    const message = entry.message || {};
    const fromUser = entry.from === 'user';
    if (fromUser && SYSTEM_EVENTS[message.type]) {
      const accountName = (session.data && session.data.accountName) || 'the account';
      const text = message.type === 'follow' ? `You added ${accountName} as a friend`
        : message.type === 'join' ? `${accountName} joined the group`
          : `You ${SYSTEM_EVENTS[message.type]}`;
      return el('div', { className: 'system-row', 'data-seq': entry.seq }, el('span', { text }));
    }
    const { node, kind } = messageContent(message);
    // A quote shows the message it quotes (when this chat has it), as LINE's chat does.
    const quoted = message.quotedMessageId
      ? [...customer.entries.values()].find((e) => e.messageId === message.quotedMessageId) : null;
    const bubble = el('div', { className: `bubble ${kind}` },
      message.quotedMessageId ? el('div', {
        className: 'quoted', testid: 'customer-quoted', text: quoted ? summarize(quoted.message) : 'a message',
      }) : null,
      node);
    const sender = entry.member ? el('div', { className: 'sender', testid: 'customer-sender', text: (userById(entry.member) || { name: entry.member }).name }) : null;
    const meta = el('div', { className: 'meta' },
      entry.failed ? el('span', { className: 'failed', title: 'The webhook refused this message', text: '! Not delivered' }) : null,
      fromUser ? el('span', { className: 'read', testid: 'customer-read', text: 'Read', hidden: true }) : null,
      entry.messageId ? el('button', {
        type: 'button', className: 'quote-btn', testid: 'customer-quote-button', title: 'Quote this message',
        text: 'Quote', onclick: () => { setQuote(entry); $('customer-input').focus(); },
      }) : null,
      el('time', { text: fmtTime(entry.at), title: fmtDateTime(entry.at) }));
    return el('div', {
      className: `row ${fromUser ? 'user' : 'account'}`,
      testid: 'customer-message',
      'data-from': fromUser ? 'user' : 'account',
      'data-seq': entry.seq,
      'data-type': message.type || '',
    },
    fromUser ? null : el('span', { className: 'account-avatar', 'aria-hidden': 'true' }),
    fromUser ? meta : bubble,
    fromUser ? (sender ? el('div', { className: 'sent' }, sender, bubble) : bubble) : meta);
  }

  /** LINE shows the account's icon on the first of consecutive account messages only. */
  function markAccountRuns() {
    let previousFromAccount = false;
    for (const row of $('customer-timeline').children) {
      const fromAccount = row.classList.contains('account');
      row.classList.toggle('cont', fromAccount && previousFromAccount);
      previousFromAccount = fromAccount;
    }
  }

  function updateReadMarks() {
    const upTo = customer.readUpTo;
    for (const [seq, row] of customer.rows) {
      const mark = row.querySelector('.read');
      if (mark) mark.hidden = !(typeof upTo === 'number' && seq <= upTo);
    }
  }

  function updateTyping() {
    clearTimeout(customer.typingTimer);
    const until = customer.typingUntil;
    const typing = typeof until === 'number' && until > Date.now();
    const indicator = $('customer-typing');
    indicator.hidden = !typing;
    if (typing) {
      customer.typingTimer = setTimeout(updateTyping, Math.min(until - Date.now() + 50, 60000));
    }
  }

  /** Quick-reply chips under the last account message carrying them, until the user answers. */
  function renderQuickReplies() {
    document.querySelectorAll('#customer-timeline .quick-replies').forEach((n) => n.remove());
    const seqs = [...customer.entries.keys()].sort((a, b) => a - b);
    let target = null;
    for (let i = seqs.length - 1; i >= 0; i -= 1) {
      const entry = customer.entries.get(seqs[i]);
      if (entry.from === 'user' && !SYSTEM_EVENTS[(entry.message || {}).type]) return; // answered
      const items = entry.from === 'account' && entry.message && entry.message.quickReply
        && entry.message.quickReply.items;
      if (Array.isArray(items) && items.length) { target = { entry, items }; break; }
    }
    if (!target) return;
    const chips = target.items
      .map((item) => item && item.action)
      .filter(Boolean)
      .map((action) => el('button', {
        type: 'button',
        className: `chip-btn ${action.type || ''}`,
        testid: 'quick-reply',
        title: action.type === 'uri' ? action.uri : '',
        text: action.label || action.text || action.displayText || action.type,
        onclick: () => tapQuickReply(action),
      }));
    const strip = el('div', { className: 'quick-replies' }, chips);
    customer.rows.get(target.entry.seq).after(strip);
  }

  async function tapQuickReply(action) {
    switch (action.type) {
      case 'postback':
        await customerSend({
          type: 'postback',
          data: action.data || '',
          displayText: action.displayText || action.label || undefined,
        });
        break;
      case 'message':
        await customerSend({ type: 'text', text: action.text || action.label || '' });
        break;
      case 'uri':
        if (/^https?:\/\//i.test(action.uri || '')) window.open(action.uri, '_blank', 'noopener');
        else toast(`Not opening ${action.uri || 'an empty link'}`);
        break;
      default:
        toast(`The sandbox cannot simulate a "${action.type}" action`);
    }
  }

  /**
   * Sends one message as the selected user; shows the entry at once (keyed by seq: the poll
   * dedupes it; the cursor stays for the poll). Answers the send answer; `{ timedOut: true }` when
   * the webhook did not answer in time (the message may have arrived: the poll will show it, so
   * nothing is to be sent again); null on any other failure.
   */
  async function customerSend(body) {
    const userId = customer.userId;
    if (!userId) {
      toast('Create or choose a customer first');
      return null;
    }
    const generation = customer.generation;
    const selected = customer.group ? `group:${customer.group.id}` : userId;
    const sent = { ...body };
    if (customer.group) sent.from = $('group-sender').value;
    // LINE quotes with a text or a sticker only.
    const quoting = customer.quoting && (body.type === 'text' || body.type === 'sticker') ? customer.quoting : null;
    if (quoting) sent.quotedMessageId = quoting.messageId;
    try {
      const answer = await api('POST', `${chatPath()}/send`, sent);
      if (quoting) setQuote(null);
      if (generation === customer.generation && answer && answer.entry) applyTimeline({ entries: [answer.entry] });
      return answer;
    } catch (e) {
      // 504 webhook_timeout: the webhook did not answer in time; the message may have arrived.
      if (e instanceof ApiError && e.code === 'webhook_timeout') {
        toast(e.message || 'The webhook did not answer in time; the message may have arrived.');
        return { timedOut: true };
      }
      report(e, 'Send');
      // The bubble exists but was refused: reload the chat so it shows as not delivered.
      if (e instanceof ApiError && e.code === 'webhook_refused' && generation === customer.generation) {
        selectUser(selected);
      }
      return null;
    }
  }

  async function sendCustomerText() {
    const input = $('customer-input');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    const answer = await customerSend({ type: 'text', text });
    // Give it back to retry, unless it may have arrived (webhook timeout: no resend).
    if (!answer && !input.value) input.value = text;
    input.focus();
  }

  async function sendCustomerImage(file) {
    if (!file) return;
    if (!IMAGE_TYPES_CUSTOMER.includes(file.type)) {
      toast('Pick a PNG, JPEG, GIF or WebP image');
      return;
    }
    if (file.size > 5 * 1024 * 1024) {
      toast('LINE images are at most 5 MB');
      return;
    }
    const dataBase64 = await readFileBase64(file);
    await customerSend({ type: 'image', contentType: file.type, dataBase64 });
  }

  function buildStickerPalette(container, testid, onPick) {
    container.replaceChildren(...STICKERS.map(([stickerId, emoji]) =>
      el('button', {
        type: 'button',
        className: 'sticker-option',
        testid,
        'data-sticker-id': stickerId,
        title: `sticker ${STICKER_PACKAGE}/${stickerId}`,
        text: emoji,
        onclick: () => {
          container.hidden = true;
          return onPick({ type: 'sticker', packageId: STICKER_PACKAGE, stickerId });
        },
      })));
  }

  function togglePalette(container, button) {
    container.hidden = !container.hidden;
    button.setAttribute('aria-expanded', String(!container.hidden));
  }

  function wireCustomer() {
    $('user-select').addEventListener('change', guard((e) => selectUser(e.target.value)));
    $('new-user-form').addEventListener('submit', guard((e) => {
      e.preventDefault();
      return createUser();
    }, 'Create customer'));
    $('new-group-form').addEventListener('submit', guard((e) => {
      e.preventDefault();
      return createGroup();
    }, 'Create group'));
    $('customer-quote-cancel').addEventListener('click', () => setQuote(null));
    $('customer-composer').addEventListener('submit', guard((e) => {
      e.preventDefault();
      return sendCustomerText();
    }));
    $('customer-sticker').addEventListener('click', () => togglePalette($('customer-stickers'), $('customer-sticker')));
    buildStickerPalette($('customer-stickers'), 'sticker-option', customerSend);
    $('customer-location').addEventListener('click', guard(() => customerSend({ ...SAMPLE_LOCATION })));
    $('customer-image-input').addEventListener('change', guard(async (e) => {
      const input = e.target;
      const file = input.files && input.files[0];
      try {
        await sendCustomerImage(file);
      } finally {
        input.value = '';
      }
    }, 'Image'));
  }

  async function initCustomer() {
    renderNewUserForm();
    $('account-name').textContent = session.data.accountName || 'LINE account';
    await loadUsers();
    suggestNewUser();
    const latest = customer.users[customer.users.length - 1];
    selectUser(latest ? latest.id : null);
    if (!latest) $('create-user').focus();
  }

  // ------------------------------------------------------------------------------------------
  // 2. Agent
  // ------------------------------------------------------------------------------------------
  const agent = {
    token: null,
    me: null,
    loginAt: 0,
    generation: 0,
    controller: null,
    cursor: null,
    conversations: [],
    notifications: new Map(), // conversationId → { notification, unread }
    openId: null,
    detail: null,
    transcriptKey: '',
    lastReadId: null,
    lastTypingAt: 0,
    survey: { timer: null, conversationId: null, done: false, inFlight: false },
    contactSearchTimer: null,
  };

  function avatarImg(url, name, size = '') {
    if (httpUrl(url)) return el('img', { className: `avatar ${size}`, src: url, alt: '' });
    const initial = (name || '?').trim().charAt(0).toUpperCase() || '?';
    return el('span', { className: `avatar initial ${size}`, 'aria-hidden': 'true', text: initial });
  }

  async function login() {
    const token = $('agent-token').value.trim();
    if (!token) {
      toast('Paste the agent token first');
      return;
    }
    const button = $('agent-login');
    button.disabled = true;
    try {
      agent.token = token;
      const me = await agentApi('GET', '/agent/v1/me');
      agent.me = me;
      agent.loginAt = Date.now() - 1000;
      agent.generation += 1;
      agent.cursor = null;
      agent.notifications.clear();
      $('agent-name').textContent = me.name;
      $('agent-avatar').textContent = (me.name || '?').trim().charAt(0).toUpperCase();
      $('agent-login-form').hidden = true;
      $('agent-session').hidden = false;
      renderPresence(me);
      renderNotifications();
      notificationLoop(agent.generation);
      await setPresence('available');
      await refreshConversations();
    } catch (e) {
      if (!agent.me) agent.token = null;
      throw e;
    } finally {
      button.disabled = false;
    }
  }

  function renderPresence(me) {
    $('presence').value = me.status;
    $('presence-dot').className = `dot ${me.status}`;
    $('agent-load').textContent = `${me.activeConversations} / ${me.capacity} chats`;
  }

  async function setPresence(status) {
    const me = await agentApi('PUT', '/agent/v1/presence', { status });
    agent.me = me;
    renderPresence(me);
    refreshGlance(true);
  }

  async function refreshMe() {
    agent.me = await agentApi('GET', '/agent/v1/me');
    renderPresence(agent.me);
  }

  // ----- notifications ------------------------------------------------------------------------
  async function notificationLoop(generation) {
    let failures = 0;
    while (generation === agent.generation) {
      const controller = new AbortController();
      agent.controller = controller;
      try {
        const query = new URLSearchParams({ wait: String(NOTIFICATION_WAIT) });
        if (agent.cursor) query.set('after', agent.cursor);
        const data = await agentApi('GET', `/agent/v1/notifications?${query}`, undefined, undefined,
          { signal: controller.signal });
        if (generation !== agent.generation) return;
        failures = 0;
        if (data && data.cursor) agent.cursor = data.cursor;
        const list = (data && data.notifications) || [];
        if (list.length) onNotifications(list);
      } catch (e) {
        if (generation !== agent.generation || (e && e.name === 'AbortError')) return;
        failures += 1;
        if (failures === 1 || failures % 10 === 0) report(e, 'Notifications');
        await sleep(Math.min(1000 * failures, 8000));
      }
    }
  }

  function onNotifications(list) {
    let touchesOpen = false;
    for (const n of list) {
      const previous = agent.notifications.get(n.conversationId);
      // What happened before this login is history, not news.
      const news = n.conversationId !== agent.openId && n.createdAt >= agent.loginAt;
      const unread = (previous ? previous.unread : 0) + (news ? 1 : 0);
      agent.notifications.delete(n.conversationId); // re-insert: newest last
      agent.notifications.set(n.conversationId, { notification: n, unread });
      if (n.conversationId === agent.openId) touchesOpen = true;
    }
    renderNotifications();
    refreshConversations().catch((e) => report(e, 'Conversations'));
    refreshMe().catch(() => {});
    // true: a refresh already running may predate this news, so run once more after it.
    if (touchesOpen) refreshOpenConversation(true).catch((e) => report(e, 'Conversation'));
  }

  function renderNotifications() {
    const list = $('notifications');
    const items = [...agent.notifications.values()].reverse().slice(0, 20);
    if (!items.length) {
      list.replaceChildren(el('li', { className: 'list-empty', text: agent.me ? 'Nothing yet: write as the customer.' : 'Log in to receive notifications.' }));
      return;
    }
    list.replaceChildren(...items.map(({ notification: n, unread }) => {
      const customerView = n.customer || {};
      const last = n.lastMessage;
      const lastText = last
        ? `${last.direction === 'out' ? 'You: ' : ''}${last.text != null ? last.text : summarize({ type: last.type })}`
        : (n.kind === 'assigned' ? 'Assigned to you' : '');
      return el('li', {
        className: `notif ${n.conversationId === agent.openId ? 'selected' : ''}`,
        testid: 'notification',
        'data-conversation-id': n.conversationId,
        'data-kind': n.kind,
        tabindex: '0',
        onclick: () => openConversation(n.conversationId),
        onkeydown: (e) => { if (e.key === 'Enter') return openConversation(n.conversationId); return undefined; },
      },
      avatarImg(customerView.pictureUrl, customerView.displayName),
      el('div', { className: 'item-main' },
        el('div', { className: 'item-top' },
          el('span', { className: 'item-name', text: customerView.displayName || 'Unknown customer' }),
          el('time', { className: 'item-time', text: fmtTime(n.createdAt) })),
        el('div', { className: 'item-sub' },
          el('span', { className: `kind ${n.kind}`, text: n.kind === 'assigned' ? 'assigned' : 'message' }),
          el('span', { className: 'item-last', text: lastText }))),
      unread ? el('span', { className: 'badge', text: String(unread) }) : null);
    }));
  }

  // ----- conversation list --------------------------------------------------------------------
  let conversationsInFlight = null;

  function refreshConversations() {
    if (!agent.token) return Promise.resolve();
    if (!conversationsInFlight) {
      conversationsInFlight = agentApi('GET', '/agent/v1/conversations')
        .then((data) => {
          agent.conversations = (data && data.conversations) || [];
          renderConversationList();
        })
        .finally(() => { conversationsInFlight = null; });
    }
    return conversationsInFlight;
  }

  /** Who a conversation is with, as a list shows it: a group chat by its name and icon. */
  function chatView(c, customerView) {
    if (c && c.group && c.group.name) return { displayName: c.group.name, pictureUrl: c.group.pictureUrl };
    return customerView || {};
  }

  function renderConversationList() {
    const list = $('conversation-list');
    if (!agent.conversations.length) {
      list.replaceChildren(el('li', { className: 'list-empty', text: 'No conversations yet.' }));
      return;
    }
    list.replaceChildren(...agent.conversations.map((c) => {
      const who = chatView(c, c.customer);
      const mine = agent.me && c.agentId === agent.me.id;
      const pending = agent.notifications.get(c.id);
      return el('li', {
        className: `conv ${c.id === agent.openId ? 'selected' : ''} ${c.status}`,
        testid: 'conversation-item',
        'data-conversation-id': c.id,
        'data-status': c.status,
        tabindex: '0',
        onclick: () => openConversation(c.id),
        onkeydown: (e) => { if (e.key === 'Enter') return openConversation(c.id); return undefined; },
      },
      avatarImg(who.pictureUrl, who.displayName),
      el('div', { className: 'item-main' },
        el('div', { className: 'item-top' },
          el('span', { className: 'item-name', text: who.displayName || (c.sourceType === 'user' ? 'Unknown customer' : `${c.sourceType} chat`) }),
          el('time', { className: 'item-time', text: fmtTime(c.lastActivityAt) })),
        el('div', { className: 'item-sub' },
          el('span', { className: `chip ${c.status}`, text: c.status }),
          mine ? el('span', { className: 'muted small', text: 'yours' }) : null)),
      pending && pending.unread ? el('span', { className: 'badge', text: String(pending.unread) }) : null);
    }));
  }

  // ----- the open conversation ----------------------------------------------------------------
  async function openConversation(id) {
    if (agent.openId !== id) {
      agent.openId = id;
      agent.detail = null;
      agent.transcriptKey = '';
      agent.lastReadId = null;
      agent.lastTypingAt = 0;
      stopSurveyPolling();
      $('transcript').replaceChildren(el('div', { className: 'muted small center', text: 'Loading…' }));
      scrollToBottom($('transcript-scroll'));
      $('survey-score').hidden = true;
      $('contact-results').hidden = true;
      $('contact-search').value = '';
      $('contact-name').value = '';
      $('agent-stickers').hidden = true;
      $('conv-empty').hidden = true;
      $('conv-view').hidden = false;
    }
    const pending = agent.notifications.get(id);
    if (pending) pending.unread = 0;
    renderNotifications();
    renderConversationList();
    await refreshOpenConversation(true);
    scrollToBottom($('transcript-scroll'));
  }

  /** Reloads the open conversation, one load at a time (oneAtATime): the 3 s timer's tick is
   *  skipped while a load runs; `refreshOpenConversation(true)` (after a reply, a pick, a
   *  notification…) loads once more after the running one. */
  const refreshOpenConversation = oneAtATime(async () => {
    const id = agent.openId;
    if (!id || !agent.token) return;
    const base = `/agent/v1/conversations/${enc(id)}`;
    const [detail, page] = await Promise.all([
      agentApi('GET', base),
      agentApi('GET', `${base}/messages?limit=100`),
    ]);
    if (id !== agent.openId) return;
    agent.detail = detail;
    renderConversationHeader(detail);
    renderTranscript((page && page.messages) || []);
    updateSurveyPolling(detail.conversation);
    await markReadIfNeeded(detail, (page && page.messages) || []);
  });

  function renderConversationHeader(detail) {
    const c = detail.conversation;
    const who = c.group ? chatView(c) : detail.customer;
    const name = who ? who.displayName : `${c.sourceType} chat`;
    $('conv-picture').replaceWith(Object.assign(avatarImg(who && who.pictureUrl, name, 'lg'), { id: 'conv-picture' }));
    $('conv-name').textContent = name;
    const meta = [];
    if (who && who.language) meta.push(LANGUAGE_NAMES[who.language] ? `${who.language} (${LANGUAGE_NAMES[who.language]})` : who.language);
    if (detail.queue && detail.queue.name) meta.push(detail.queue.name);
    meta.push(`opened ${fmtTime(c.openedAt)}`);
    const earlier = who && who.previousConversations && who.previousConversations.count;
    if (earlier) meta.push(`${earlier} earlier`);
    $('conv-meta').textContent = meta.join(' · ');

    const mine = agent.me && c.agentId === agent.me.id;
    const state = c.status === 'active' && !mine ? 'active (another agent)' : c.status;
    $('conv-state').textContent = state;
    $('conv-state').className = `chip ${c.status}`;
    $('conv-pick').hidden = !(c.status === 'waiting' && !c.agentId);
    $('agent-close').disabled = c.status === 'closed';

    const closed = c.status === 'closed';
    const input = $('agent-input');
    for (const id of ['agent-input', 'agent-send', 'agent-sticker', 'agent-image-input']) $(id).disabled = closed;
    input.placeholder = closed
      ? 'This conversation is closed.'
      : c.status === 'waiting' ? 'Pick the conversation to answer it.' : 'Reply to the customer (Enter sends, Shift+Enter for a new line)';
    const canAttach = !detail.workstream || !detail.workstream.attachments || detail.workstream.attachments.agentCanSend !== false;
    $('agent-image-input').disabled = closed || !canAttach;

    renderLinkedContact(who && who.contact);
  }

  function renderLinkedContact(contact) {
    const box = $('linked-contact');
    if (!contact) {
      box.className = 'linked-contact none';
      box.replaceChildren(el('span', { text: 'No contact linked' }));
      return;
    }
    const details = [contact.email, contact.phone, contact.company].filter(Boolean).join(' · ');
    box.className = 'linked-contact';
    box.replaceChildren(...[
      el('strong', { text: contact.name }),
      details ? el('span', { className: 'muted small', text: details }) : null,
      el('span', { className: 'linked-tag', text: 'linked' }),
    ].filter(Boolean));
  }

  // ----- transcript ---------------------------------------------------------------------------
  function renderTranscript(messages) {
    const key = JSON.stringify(messages);
    if (key === agent.transcriptKey) return;
    agent.transcriptKey = key;
    const box = $('transcript');
    if (!messages.length) {
      box.replaceChildren(el('div', { className: 'muted small center', text: 'No messages yet.' }));
      return;
    }
    box.replaceChildren(...messages.map(renderTranscriptEntry));
  }

  /** What sent an automated message (the workstream's triggers), as agents read it. */
  const TRIGGER_LABELS = {
    conversationStarted: 'greeting',
    queued: 'queued',
    noAgentAvailable: 'no agent available',
    agentAssigned: 'agent assigned',
    agentEnded: 'agent ended',
    outsideBusinessHours: 'outside business hours',
    attachmentsNotAccepted: 'attachments not accepted',
    unsupportedMessageType: 'unsupported message',
  };

  function renderTranscriptEntry(entry) {
    const direction = entry.direction === 'out' ? 'out' : 'in';
    const attrs = { testid: 'transcript-entry', 'data-direction': direction, 'data-type': entry.type, 'data-id': entry.id };
    const time = el('time', { text: fmtTime(entry.at), title: fmtDateTime(entry.at) });

    if (entry.retracted) {
      return el('div', { ...attrs, className: 't-entry system' }, el('span', { text: 'The customer unsent a message' }), time);
    }
    if (entry.type === 'agentMessage' || direction === 'out') {
      const automated = !entry.agentId;
      const who = entry.agentName || (entry.type === 'botMessage' ? 'Bot'
        : automated ? `Automated${entry.trigger ? ` · ${TRIGGER_LABELS[entry.trigger] || entry.trigger}` : ''}`
        : 'Agent');
      const bubbles = (entry.messages || [entry.message].filter(Boolean)).map((m) => transcriptBubble(m, null, true));
      const delivery = entry.delivery || {};
      return el('div', { ...attrs, className: `t-entry out ${automated ? 'automated' : ''}` },
        el('div', { className: 't-who', text: who }),
        bubbles,
        el('div', { className: 't-meta' },
          time,
          delivery.status ? el('span', {
            className: `delivery ${delivery.status}`,
            title: delivery.error || '',
            text: delivery.status === 'sent' ? 'sent ✓' : delivery.status.replace('_', ' '),
          }) : null));
    }
    if (entry.type === 'message') {
      const mediaUrl = entry.media && entry.media.url;
      return el('div', { ...attrs, className: 't-entry in' },
        entry.senderName ? el('div', { className: 't-who', testid: 'transcript-sender', text: entry.senderName }) : null,
        entry.quotedMessageId ? el('div', { className: 't-quoted', testid: 'transcript-quoted', text: 'Quotes an earlier message' }) : null,
        transcriptBubble(entry.message, mediaUrl, false),
        el('div', { className: 't-meta' }, time));
    }
    if (entry.type === 'postback') {
      const data = (entry.postback && entry.postback.data) || '';
      const survey = /^survey:[^:]+:(\d+)$/.exec(data);
      return el('div', { ...attrs, className: 't-entry in' },
        el('div', { className: 'bubble postback', title: data },
          el('span', { className: 'tag', text: survey ? 'survey answer' : 'postback' }), ' ',
          el('span', { className: survey ? 'survey-answer' : 'postback-data', text: survey ? survey[1] : data })),
        el('div', { className: 't-meta' }, time));
    }
    const label = SYSTEM_EVENTS[entry.type] ? `The customer ${SYSTEM_EVENTS[entry.type]}` : `[${entry.type}]`;
    return el('div', { ...attrs, className: 't-entry system' }, el('span', { text: label }), time);
  }

  function transcriptBubble(message, mediaUrl, outbound) {
    const { node, kind } = messageContent(message, mediaUrl);
    const items = message && message.quickReply && message.quickReply.items;
    const chips = Array.isArray(items) && items.length
      ? el('div', { className: 't-chips' }, items.map((i) => el('span', { className: 'chip-preview', text: (i.action && i.action.label) || '?' })))
      : null;
    return el('div', { className: `bubble ${kind} ${outbound ? 'out' : 'in'}` }, node, chips);
  }

  async function markReadIfNeeded(detail, messages) {
    const c = detail.conversation;
    if (c.status === 'closed' || c.sourceType !== 'user' || !agent.me || c.agentId !== agent.me.id) return;
    const lastIn = [...messages].reverse().find((m) => m.direction === 'in' && m.type === 'message');
    if (!lastIn || lastIn.id === agent.lastReadId || document.visibilityState === 'hidden') return;
    agent.lastReadId = lastIn.id;
    try {
      await agentApi('POST', `/agent/v1/conversations/${enc(c.id)}/read`);
    } catch (e) {
      report(e, 'Mark as read');
    }
  }

  // ----- replying -----------------------------------------------------------------------------
  async function agentReply(body) {
    const id = agent.openId;
    if (!id) return false;
    await agentApi('POST', `/agent/v1/conversations/${enc(id)}/messages`, body, { 'Idempotency-Key': uuid() });
    agent.lastTypingAt = 0;
    await refreshOpenConversation(true);
    scrollToBottom($('transcript-scroll'));
    return true;
  }

  async function sendAgentText() {
    const input = $('agent-input');
    const text = input.value.trim();
    if (!text) return;
    $('agent-send').disabled = true;
    try {
      await agentReply({ type: 'text', text });
      input.value = '';
    } finally {
      $('agent-send').disabled = Boolean(agent.detail && agent.detail.conversation.status === 'closed');
      input.focus();
    }
  }

  async function sendAgentImage(file) {
    if (!file) return;
    if (!IMAGE_TYPES_AGENT.includes(file.type)) {
      toast('The agent API takes PNG or JPEG images');
      return;
    }
    const upload = await agentApi('POST', '/agent/v1/media', file, { 'Content-Type': file.type });
    await agentReply({ type: 'image', mediaId: upload.mediaId });
  }

  async function agentTyping() {
    const detail = agent.detail;
    if (!detail || detail.conversation.status !== 'active' || detail.conversation.sourceType !== 'user') return;
    if (!agent.me || detail.conversation.agentId !== agent.me.id) return;
    const now = Date.now();
    if (now - agent.lastTypingAt < TYPING_EVERY_MS) return;
    agent.lastTypingAt = now;
    await agentApi('POST', `/agent/v1/conversations/${enc(detail.conversation.id)}/typing`, { seconds: 10 });
  }

  async function pickConversation() {
    if (!agent.openId) return;
    await agentApi('POST', `/agent/v1/conversations/${enc(agent.openId)}/pick`);
    toast('Picked: the conversation is yours', 'info');
    await Promise.all([refreshOpenConversation(true), refreshConversations(), refreshMe()]);
  }

  async function closeConversation() {
    if (!agent.openId) return;
    $('agent-close').disabled = true;
    try {
      await agentApi('POST', `/agent/v1/conversations/${enc(agent.openId)}/close`);
      await Promise.all([refreshOpenConversation(true), refreshConversations(), refreshMe()]);
    } catch (e) {
      $('agent-close').disabled = false;
      throw e;
    }
  }

  // ----- survey -------------------------------------------------------------------------------
  /** Stops the survey poll (another conversation opened; also on an answer or no survey). */
  function stopSurveyPolling() {
    clearInterval(agent.survey.timer);
    agent.survey = { timer: null, conversationId: null, done: false, inFlight: false };
  }

  function updateSurveyPolling(conversation) {
    const box = $('survey-score');
    if (conversation.status !== 'closed') {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    if (agent.survey.conversationId === conversation.id) return; // already polling or done
    stopSurveyPolling();
    agent.survey.conversationId = conversation.id;
    if (!box.textContent || box.dataset.conversationId !== conversation.id) {
      box.dataset.conversationId = conversation.id;
      box.textContent = conversation.survey ? 'Survey sent, no answer yet' : 'Checking the survey…';
    }
    pollSurvey(conversation.id);
    agent.survey.timer = setInterval(() => pollSurvey(conversation.id), 2000);
  }

  /** One survey check for the conversation being polled; a tick is skipped while the previous
   *  check is still in flight. */
  async function pollSurvey(conversationId) {
    const state = agent.survey; // replaced (not mutated) by stopSurveyPolling
    if (state.conversationId !== conversationId || state.done || state.inFlight) return;
    state.inFlight = true;
    const box = $('survey-score');
    try {
      const survey = await agentApi('GET', `/agent/v1/conversations/${enc(conversationId)}/survey`);
      if (agent.survey !== state) return;
      box.className = 'survey';
      if (survey.answeredAt != null) {
        box.textContent = survey.scale != null && survey.score != null
          ? `Survey: ${survey.score} / ${survey.scale}`
          : 'Survey: answered';
        box.classList.add('answered');
        state.done = true;
        clearInterval(state.timer);
      } else {
        box.textContent = 'Survey sent, no answer yet';
      }
    } catch (e) {
      if (agent.survey !== state) return;
      if (e instanceof ApiError && e.status === 404) {
        box.textContent = 'No survey was sent';
        box.className = 'survey none';
        state.done = true;
        clearInterval(state.timer);
        return;
      }
      report(e, 'Survey');
    } finally {
      state.inFlight = false;
    }
  }

  // ----- contacts -----------------------------------------------------------------------------
  async function linkContact(contactId) {
    const id = agent.openId;
    if (!id) return;
    const answer = await agentApi('POST', `/agent/v1/conversations/${enc(id)}/link`, { contactId });
    if (id !== agent.openId) return;
    renderLinkedContact(answer && answer.customer && answer.customer.contact);
    $('contact-results').hidden = true;
    $('contact-search').value = '';
    toast('Contact linked', 'info');
  }

  async function createAndLinkContact() {
    const name = $('contact-name').value.trim();
    if (!name) {
      toast('Give the contact a name');
      return;
    }
    $('contact-create').disabled = true;
    try {
      const contact = await agentApi('POST', '/agent/v1/contacts', { name });
      await linkContact(contact.id);
      $('contact-name').value = '';
    } finally {
      $('contact-create').disabled = false;
    }
  }

  async function searchContacts() {
    const q = $('contact-search').value.trim();
    const query = q ? `?q=${enc(q)}` : '';
    const data = await agentApi('GET', `/agent/v1/contacts${query}`);
    if ($('contact-search').value.trim() !== q) return; // a newer search is on its way
    const contacts = (data && data.contacts) || [];
    const box = $('contact-results');
    box.hidden = false;
    if (!contacts.length) {
      box.replaceChildren(el('div', { className: 'muted small pad', text: q ? `No contact matches "${q}"` : 'No contacts yet' }));
      return;
    }
    box.replaceChildren(...contacts.map((contact) => el('button', {
      type: 'button',
      className: 'contact-result',
      testid: 'contact-link',
      'data-contact-id': contact.id,
      title: 'Link this contact to the conversation',
      onclick: () => linkContact(contact.id),
    },
    el('strong', { text: contact.name }),
    el('span', { className: 'muted small', text: [contact.email, contact.phone, contact.company].filter(Boolean).join(' · ') }),
    el('span', { className: 'link-label', text: 'Link' }))));
  }

  function scheduleContactSearch() {
    clearTimeout(agent.contactSearchTimer);
    agent.contactSearchTimer = setTimeout(guard(searchContacts, 'Contacts'), 250);
  }

  function wireAgent() {
    $('agent-login-form').addEventListener('submit', guard((e) => {
      e.preventDefault();
      return login();
    }, 'Log in'));
    $('presence').addEventListener('change', guard((e) => setPresence(e.target.value), 'Presence'));
    $('agent-composer').addEventListener('submit', guard((e) => {
      e.preventDefault();
      return sendAgentText();
    }, 'Reply'));
    $('agent-input').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('agent-composer').requestSubmit();
      }
    });
    $('agent-input').addEventListener('input', guard(agentTyping, 'Typing'));
    $('agent-sticker').addEventListener('click', () => togglePalette($('agent-stickers'), $('agent-sticker')));
    buildStickerPalette($('agent-stickers'), 'agent-sticker-option', guard((body) => agentReply(body), 'Sticker'));
    $('agent-image-input').addEventListener('change', guard(async (e) => {
      const input = e.target;
      const file = input.files && input.files[0];
      try {
        await sendAgentImage(file);
      } finally {
        input.value = '';
      }
    }, 'Image'));
    $('conv-pick').addEventListener('click', guard(pickConversation, 'Pick'));
    $('agent-close').addEventListener('click', guard(closeConversation, 'Close'));
    $('contact-create-form').addEventListener('submit', guard((e) => {
      e.preventDefault();
      return createAndLinkContact();
    }, 'Contact'));
    $('contact-search').addEventListener('input', scheduleContactSearch);
    $('contact-search').addEventListener('focus', scheduleContactSearch);
    document.addEventListener('click', (e) => {
      if (!e.target.closest('.search-wrap')) $('contact-results').hidden = true;
    });

    // Neither timer stacks requests: refreshConversations shares the call in flight, and
    // refreshOpenConversation() skips the tick while a load is running (oneAtATime).
    setInterval(() => {
      if (agent.token && agent.me) refreshConversations().catch((e) => report(e, 'Conversations'));
    }, 5000);
    setInterval(() => {
      if (agent.openId && document.visibilityState !== 'hidden') {
        refreshOpenConversation().catch((e) => report(e, 'Conversation'));
      }
    }, 3000);
  }

  // ------------------------------------------------------------------------------------------
  // 3. Admin glance
  // ------------------------------------------------------------------------------------------
  function kv(list, rows) {
    list.replaceChildren(...rows.flatMap(([key, value, cls]) => [
      el('dt', { text: key }),
      el('dd', { className: cls || '', text: value }),
    ]));
  }

  function onOff(flag) {
    return flag ? 'on' : 'off';
  }

  function renderGlance(g) {
    const account = g.account || {};
    $('callback-url').textContent = account.callbackUrl || (session.data && session.data.callbackUrl) || '—';

    const stats = g.webhookStats || {};
    kv($('webhook-stats'), [
      ['received', String(stats.received ?? 0)],
      ['queued', String(stats.queued ?? 0)],
      ['rejected', String(stats.rejected ?? 0), stats.rejected ? 'bad' : ''],
      ['last', stats.lastReceivedAt ? fmtDateTime(stats.lastReceivedAt) : 'never'],
    ]);

    const queues = new Map((g.queues || []).map((q) => [q.id, q.name]));
    const queueName = (id) => queues.get(id) || id || '—';
    const ws = g.workstream;
    if (ws) {
      const greeting = ws.automatedMessages && ws.automatedMessages.conversationStarted;
      const survey = ws.survey;
      kv($('workstream-summary'), [
        ['name', ws.name],
        ['distribution', ws.distribution],
        ['default queue', queueName(ws.defaultQueueId)],
        ['greeting', onOff(greeting && greeting.enabled !== false)],
        ['survey', survey && survey.enabled ? `on${survey.scale ? ` (1–${survey.scale})` : ''}` : 'off'],
        ['auto-close', ws.autoCloseMinutes ? `${ws.autoCloseMinutes} min` : 'never'],
      ]);
    } else {
      kv($('workstream-summary'), [['workstream', 'none']]);
    }

    const rules = g.rules || [];
    $('rules-list').replaceChildren(...(rules.length
      ? rules.map((r) => el('li', { className: r.enabled === false ? 'disabled' : '' },
        el('span', { className: 'rule-name', text: r.name }),
        el('span', { className: 'arrow', text: ' → ' }),
        el('span', { className: 'rule-queue', text: queueName(r.queueId) }),
        r.enabled === false ? el('span', { className: 'muted small', text: ' (off)' }) : null))
      : [el('li', { className: 'muted', text: 'No rules: everything goes to the default queue' })]));

    $('glance-agents').replaceChildren(...(g.agents || []).map((a) => el('li', {},
      el('span', { className: `dot ${a.status}` }),
      el('span', { text: a.name }),
      el('span', { className: 'muted small', text: ` ${a.status}${a.capacity ? ` · cap ${a.capacity}` : ''}` }))));
  }

  let glanceFailures = 0;

  /** Reloads the glance, one call at a time: the 5 s timer's tick is skipped while a call is in
   *  flight; `refreshGlance(true)` (after a presence change) loads once more after it. */
  const refreshGlance = oneAtATime(async () => {
    try {
      renderGlance((await api('GET', '/sandbox/api/glance')) || {});
      glanceFailures = 0;
    } catch (e) {
      glanceFailures += 1;
      if (glanceFailures === 1 || glanceFailures % 12 === 0) report(e, 'Admin glance');
    }
  });

  // ------------------------------------------------------------------------------------------
  // Boot
  // ------------------------------------------------------------------------------------------
  async function boot() {
    setCustomerComposerEnabled(false);
    followBottom($('chat-scroll'));
    followBottom($('transcript-scroll'));
    wireCustomer();
    wireAgent();
    let data;
    try {
      data = await loadSession();
    } catch (e) {
      report(e);
      return;
    }
    $('agent-token').value = (data.agent && data.agent.token) || '';
    $('callback-url').textContent = data.callbackUrl || '—';
    refreshGlance();
    setInterval(() => refreshGlance(), 5000);
    await initCustomer();
  }

  document.addEventListener('DOMContentLoaded', guard(boot, 'Start'));
})();

// End-to-end test of the agent console (/console) in headless Chromium, against omniline-local in
// sandbox mode: a customer writes through the sandbox's customer API, the sandbox agent signs in
// on /console with its token, finds the conversation in the inbox, opens it (picks it if it
// waits), replies with Enter (a Shift+Enter line break inside), the customer's side receives
// the reply, the agent switches presence, switches the console to Japanese, axe-core finds no
// serious or critical accessibility violation, the agent signs out, and a token that stops
// working mid-session returns the page to sign-in with "your session has ended".
//
// Run by ../infra/sandbox-e2e.sh after sandbox.test.mjs; or by hand against a running stack:
//   CONSOLE_URL=http://127.0.0.1:3000/console node console.test.mjs
// Env: CONSOLE_URL (required; the sandbox must be on at the same origin), ARTIFACTS
// [../target/sandbox-e2e] for console-NN-step.png, console-99-failure.png and console-journal.log,
// CHROMIUM [/usr/bin/chromium]. Exits 1 on any failure.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { makeUntil, tid, makeVisible, text } from './lib.mjs';

const CONSOLE_URL = process.env.CONSOLE_URL;
const ARTIFACTS = process.env.ARTIFACTS || join(import.meta.dirname, '..', 'target', 'sandbox-e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20_000; // the longest a single wait may take…
const until = makeUntil(WAIT);
const INBOX_WAIT = 30_000; // …but the inbox, which a waiting conversation reaches by its 10 s poll
const WHOLE_RUN_LIMIT = 240_000;

const SUFFIX = Math.random().toString(36).slice(2, 6).padEnd(4, 'x');
const CUSTOMER_NAME = `Console E2E ${SUFFIX}`;
const CUSTOMER_TEXT = `Where is my parcel? (${SUFFIX})`;
const AGENT_LINES = ['Thanks for waiting!', `Your parcel ships today (${SUFFIX}).`];
const AGENT_TEXT = AGENT_LINES.join('\n');
const SECOND_NAME = `Second E2E ${SUFFIX}`;
const SECOND_TEXT = `Hello, one more question (${SUFFIX})`;
const TOKEN_KEY = 'omniline.console.token';
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let browser;
let page;
let origin;
let agentToken;
let agentId;
let user;
let conversationId;
let secondConversationId;
let secondUserId;
let passed = 0;
const journal = [];
const pageErrors = [];
const cspViolations = [];

function note(line) {
  journal.push(`${new Date().toISOString()} ${line}`);
}

const visible = makeVisible(WAIT);


/** A JSON call to the stack from the test itself (the customer's side, and checks of the API). */
async function api(method, path, body, headers = {}) {
  const response = await fetch(`${origin}${path}`, {
    method,
    headers: { ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(WAIT),
  });
  const raw = await response.text();
  const data = raw ? JSON.parse(raw) : null;
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${raw}`);
  return data;
}

const agentApi = (method, path, body) => api(method, path, body, { Authorization: `Bearer ${agentToken}` });
const adminApi = (method, path, body) => {
  assert.ok(process.env.ADMIN_TOKEN, 'ADMIN_TOKEN is set (infra/sandbox-e2e.sh sets it)');
  return api(method, path, body, { Authorization: `Bearer ${process.env.ADMIN_TOKEN}` });
};

/** axe-core on the page as it is (injected through the DevTools protocol: the page's CSP allows
 *  no inline script); fails on any serious or critical violation. */
async function accessibility(where) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result.violations) {
    note(`axe ${where}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  }
  assert.equal(bad.length, 0, `axe (${where}): ${bad.map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join(' | ')}`);
  return `${result.passes.length} rules pass, ${result.violations.length} minor/moderate`;
}

// 20b. A supervisor reassigns: a second agent (Kai, available), the supervisor page signed in
// with the admin token shows the queue and the agents; the supervisor follows one of Sam's
// conversations read only and gives it to Kai; axe finds nothing serious on the page.
async function supervisorReassigns() {
  const queues = (await agentApi('GET', '/agent/v1/queues')).queues;
  const kai = await adminApi('POST', '/admin/v1/agents', {
    name: 'Kai E2E', email: `kai-${SUFFIX}@example.com`, queueIds: [queues[0].id], capacity: 5,
  });
  await api('PUT', '/agent/v1/presence', { status: 'available' }, { Authorization: `Bearer ${kai.token}` });
  const held = (await agentApi('GET', '/agent/v1/conversations?status=active&assigned=me')).conversations;
  assert.ok(held.length > 0, 'Sam holds a conversation');
  const target = held[0].id;
  const consolePage = page;
  const supervisorPage = await consolePage.context().newPage();
  page = supervisorPage;
  try {
    const response = await page.goto(`${origin}/console/supervisor`, { waitUntil: 'load', timeout: WAIT });
    assert.equal(response.status(), 200);
    await page.locator(tid('sup-token')).fill(process.env.ADMIN_TOKEN);
    await page.locator(tid('sup-signin-submit')).click();
    await visible(page.locator(tid('sup-queue-row')), 'the queues');
    const sam = await visible(page.locator(tid('sup-agent-row')).filter({ hasText: 'Sam' }), 'Sam among the agents');
    await sam.locator(`${tid('sup-open')}[data-id="${target}"]`).click();
    await visible(page.locator(tid('sup-conversation')), 'the conversation, read only');
    await until('its lines', async () => (await page.locator(`${tid('sup-lines')} li`).count()) > 0);
    await page.locator(tid('sup-assign-to')).selectOption(kai.id);
    await page.locator(tid('sup-assign')).click();
    await until('the conversation to be Kai\'s', async () =>
      (await adminApi('GET', `/agent/v1/supervisor/conversations/${encodeURIComponent(target)}`)).conversation.agentId === kai.id);
    await visible(page.locator(tid('sup-agent-row')).filter({ hasText: 'Kai E2E' }).locator(`${tid('sup-open')}[data-id="${target}"]`),
      'the conversation under Kai');
    const axe = await accessibility('supervisor page');
    await page.screenshot({ path: join(ARTIFACTS, 'console-supervisor.png'), fullPage: true });
    return `given to Kai; ${axe}`;
  } finally {
    page = consolePage;
    await supervisorPage.close().catch(() => {});
  }
}

// 20c. Reports: the reports page signed in with the admin token shows the conversations of the
// week by agent as a bar chart and a table (Sam's among them), then the satisfaction report,
// and downloads the CSV; axe finds nothing serious on the page.
async function reportsShowTheWeek() {
  const consolePage = page;
  const reportsPage = await consolePage.context().newPage();
  page = reportsPage;
  try {
    const response = await page.goto(`${origin}/console/reports`, { waitUntil: 'load', timeout: WAIT });
    assert.equal(response.status(), 200);
    await page.locator(tid('rep-token')).fill(process.env.ADMIN_TOKEN);
    await page.locator(tid('rep-signin-submit')).click();
    await visible(page.locator(tid('rep-result')), 'the default report');
    await page.locator(tid('rep-kind')).selectOption('conversations');
    await page.locator(tid('rep-group')).selectOption('agent');
    await page.locator(tid('rep-show')).click();
    await until('the report by agent', async () => /Agent/.test(await text(page.locator(tid('rep-chart-heading')))));
    await visible(page.locator(tid('rep-svg')), 'the chart');
    const bars = await page.locator(tid('rep-bar')).count();
    assert.ok(bars > 0, 'bars drawn');
    const sam = (await agentApi('GET', '/agent/v1/me')).id;
    await visible(page.locator(`${tid('rep-row')}[data-key="${sam}"]`), 'Sam\'s row');
    const api = await adminApi('GET', `/admin/v1/reports/conversations?groupBy=agent`);
    const row = api.rows.find((r) => r.key === sam);
    assert.ok(row && row.conversations >= 1 && row.firstResponse.count >= 1, `Sam's figures: ${JSON.stringify(row)}`);
    await page.locator(tid('rep-kind')).selectOption('csat');
    await page.locator(tid('rep-show')).click();
    await until('the satisfaction report', async () => /satisfaction/i.test(await text(page.locator(tid('rep-chart-heading')))));
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      page.locator(tid('rep-csv')).click(),
    ]);
    const file = join(ARTIFACTS, 'console-report.csv');
    await download.saveAs(file);
    const csv = readFileSync(file, 'utf8');
    assert.match(csv.split('\r\n')[0], /^agent,conversations,surveysSent,responses,average/);
    const axe = await accessibility('reports page');
    await page.screenshot({ path: join(ARTIFACTS, 'console-reports.png'), fullPage: true });
    return `${bars} bars, Sam: ${row.conversations} conversations; CSV ${csv.length} bytes; ${axe}`;
  } finally {
    page = consolePage;
    await reportsPage.close().catch(() => {});
  }
}

// 01. The console opens on its sign-in screen, in English (the browser's language), with the
// security headers.
async function openConsole() {
  const response = await page.goto(CONSOLE_URL, { waitUntil: 'load', timeout: WAIT });
  assert.ok(response, `no response for ${CONSOLE_URL}`);
  assert.equal(response.status(), 200);
  const headers = response.headers();
  assert.match(headers['content-security-policy'] || '', /default-src 'none'/);
  assert.equal(headers['cache-control'], 'no-cache');
  await visible(page.locator(tid('signin-token')), 'the token field');
  assert.equal(await text(page.locator(tid('signin-submit'))), 'Sign in');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  assert.ok(await page.locator(tid('oidc-note')).isHidden(), 'no OIDC note without OIDC');
  // Both message tables have the same keys (the page's own module, loaded as the page loads it).
  const missing = await page.evaluate(async () => {
    const app = document.querySelector('script[type="module"]').src;
    const i18n = await import(new URL('i18n.js', app).href);
    return i18n.missingKeys();
  });
  assert.deepEqual(missing, [], 'every text in English and Japanese');
}

// 02. A customer writes through the sandbox's customer API (the simulated LINE user's side).
async function customerWrites() {
  const session = await api('GET', '/sandbox/api/session');
  agentToken = session.agent.token;
  agentId = session.agent.id;
  // The run needs two free slots of the sandbox agent, after whatever earlier runs left waiting.
  const me = await agentApi('GET', '/agent/v1/me');
  const waiting = (await agentApi('GET', '/agent/v1/conversations?status=waiting')).conversations.length;
  assert.ok(me.capacity - me.activeConversations - waiting >= 2,
    `the sandbox agent holds ${me.activeConversations} of ${me.capacity} conversations and ${waiting} wait: `
    + 'run against a fresh stack (./infra/sandbox-e2e.sh starts one)');
  user = await api('POST', '/sandbox/api/users', { name: CUSTOMER_NAME, language: 'en' });
  assert.match(user.id, /^U[0-9a-f]{32}$/);
  await api('POST', `/sandbox/api/users/${encodeURIComponent(user.id)}/send`, { type: 'text', text: CUSTOMER_TEXT });
  return `as ${user.id}`;
}

// 03. The agent signs in with the sandbox agent's token; it is kept in sessionStorage only.
async function agentSignsIn() {
  const session = await api('GET', '/sandbox/api/session');
  await page.locator(tid('signin-token')).fill(agentToken);
  await page.locator(tid('signin-submit')).click();
  const name = await visible(page.locator(tid('agent-name')), 'the agent name after sign-in');
  await until('the agent name', async () => (await text(name)) === session.agent.name, WAIT, () => text(name));
  const stored = await page.evaluate((key) => ({ session: sessionStorage.getItem(key), local: JSON.stringify(localStorage) }), TOKEN_KEY);
  assert.equal(stored.session, agentToken, 'the token is in sessionStorage');
  assert.ok(!stored.local.includes(agentToken), 'the token is not in localStorage');
  return session.agent.name;
}

/** The row of the customer's conversation in the tab now shown, if any. */
const customerRow = () => page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME });

// 04. The conversation shows in the inbox: "Mine" when the router assigned it to the agent,
// "Waiting in my queues" otherwise; oldest waiting first.
async function inboxShowsConversation() {
  const where = await until(`a row naming "${CUSTOMER_NAME}" in Mine or Waiting`, async () => {
    for (const tab of ['mine', 'waiting']) {
      await page.locator(tid(`tab-${tab}`)).click();
      if (await customerRow().count()) return tab;
    }
    return false;
  }, INBOX_WAIT, async () => (await page.locator(tid('inbox-list')).innerText()).slice(0, 400));
  const row = customerRow().first();
  conversationId = await row.getAttribute('data-conversation-id');
  if (where === 'waiting') {
    // Oldest waiting first: the openedAt order the API reports.
    const ids = await page.locator(tid('inbox-row')).evaluateAll((rows) => rows.map((r) => r.dataset.conversationId));
    const listed = (await agentApi('GET', '/agent/v1/conversations?status=waiting')).conversations;
    const shown = new Set(ids);
    const expected = listed.filter((c) => shown.has(c.id)).sort((a, b) => a.openedAt - b.openedAt).map((c) => c.id);
    assert.deepEqual(ids, expected, 'waiting rows are oldest first');
  }
  return `in ${where}, ${conversationId}`;
}

// 05. The agent opens it (and picks it when it waits): the transcript shows the customer's text.
async function agentOpensConversation() {
  await customerRow().first().click();
  await visible(page.locator(`${tid('entry')}[data-direction="in"]`).filter({ hasText: CUSTOMER_TEXT }), 'the customer\'s message in the transcript');
  const pick = page.locator(tid('pick'));
  let picked = false;
  if (await pick.isVisible()) {
    // Picking needs an available agent.
    const presence = page.locator(tid('presence'));
    if ((await presence.inputValue()) !== 'available') {
      // The page's PUT answers once the assignments it caused are made: wait for it.
      const answered = page.waitForResponse((r) => r.request().method() === 'PUT' && r.url().endsWith('/agent/v1/presence'));
      await presence.selectOption('available');
      assert.equal((await answered).status(), 200);
      // A push-mode queue assigns waiting work to an agent becoming available: the page shows
      // the conversation as the agent's (no Pick), or it still waits (then Pick).
      await until('the page to show the conversation assigned or still waiting', async () => {
        const detail = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(conversationId)}`);
        if (detail.conversation.agentId === agentId) return pick.isHidden();
        return detail.conversation.status === 'waiting' && pick.isVisible();
      });
    }
    if (await pick.isVisible()) {
      await pick.click();
      picked = true;
    }
  }
  await until('the conversation to be active and the agent\'s', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'active'
      && !(await page.locator(tid('composer-input')).isDisabled()),
  WAIT, async () => `${await page.locator(tid('conv-status')).getAttribute('data-status')}, composer disabled: ${await page.locator(tid('composer-input')).isDisabled()}`);
  const detail = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(conversationId)}`);
  assert.equal(detail.conversation.agentId, agentId);
  return picked ? 'picked from the waiting queue' : 'assigned to the agent (routing, or on becoming available)';
}

/** The customer's chat as the simulated LINE platform holds it. */
const customerChat = () => api('GET', `/sandbox/api/users/${encodeURIComponent(user.id)}/timeline?after=0&wait=0`);

// 06. Opening the conversation marked the customer's message read; the agent quotes it and
// replies (typing shows in the customer's chat): Shift+Enter breaks the line, Enter sends; the
// customer receives the reply, quoting their message.
async function agentReplies() {
  const mine = (await customerChat()).entries.find((e) => e.from === 'user' && e.message && e.message.text === CUSTOMER_TEXT);
  assert.ok(mine, 'the customer\'s message is in their chat');
  await until('"Read" in the customer\'s chat', async () => ((await customerChat()).readUpTo ?? -1) >= mine.seq);

  const entry = page.locator(`${tid('entry')}[data-direction="in"]`).filter({ hasText: CUSTOMER_TEXT });
  await entry.locator(tid('quote')).click();
  await visible(page.locator(tid('quote-bar')).filter({ hasText: CUSTOMER_TEXT }), 'the quote bar naming the customer\'s message');

  const input = page.locator(tid('composer-input'));
  const outBefore = await page.locator(`${tid('entry')}[data-direction="out"]`).count();
  await input.click();
  await input.pressSequentially(AGENT_LINES[0]);
  await until('the typing animation in the customer\'s chat', async () => ((await customerChat()).typingUntil ?? 0) > 0);
  await input.press('Shift+Enter');
  await input.pressSequentially(AGENT_LINES[1]);
  assert.equal(await input.inputValue(), AGENT_TEXT, 'Shift+Enter made a new line and sent nothing');
  assert.equal(await page.locator(`${tid('entry')}[data-direction="out"]`).count(), outBefore, 'nothing sent before Enter');
  await input.press('Enter');
  await until('the composer to be emptied', async () => (await input.inputValue()) === '');
  const line = page.locator(`${tid('entry')}[data-direction="out"][data-kind="agent"]`).filter({ hasText: AGENT_LINES[1] });
  await visible(line, 'the reply in the transcript');
  // The customer's side (the simulated LINE user's chat) receives it, once.
  const received = await until('the reply in the customer\'s chat', async () => {
    const timeline = await customerChat();
    const replies = (timeline.entries || []).filter((e) => e.from === 'account' && e.message && e.message.text === AGENT_TEXT);
    return replies.length ? replies : false;
  });
  assert.equal(received.length, 1, 'the customer got the reply once');
  const transcript = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(conversationId)}/messages`);
  const quoted = transcript.messages.find((m) => m.direction === 'in' && m.message && m.message.text === CUSTOMER_TEXT);
  assert.ok(quoted && quoted.quoteToken, 'the customer\'s message carries a quoteToken');
  assert.equal(received[0].message.quoteToken, quoted.quoteToken, 'the reply quotes the customer\'s message');
  assert.ok(await page.locator(tid('quote-bar')).isHidden(), 'the quote is done');
  const status = await until('the reply\'s delivery status "sent"', async () => {
    const shown = await line.first().locator(tid('delivery')).getAttribute('data-status').catch(() => null);
    return shown === 'sent' ? shown : false;
  }, WAIT, () => line.first().locator(tid('delivery')).getAttribute('data-status').catch(() => '(none)'));
  return `read, typing, quoted, delivered (${status})`;
}

// 07. With notifications enabled, a second customer's new conversation assigned to the agent
// shows a browser notification (observed through the page's Notification), an unread badge on its
// row with the message's preview, and the unread count in the tab's title.
async function newAssignmentNotifies() {
  const presence = page.locator(tid('presence'));
  if ((await agentApi('GET', '/agent/v1/me')).status !== 'available') {
    await presence.selectOption('available');
    await until('the agent to be available', async () => (await agentApi('GET', '/agent/v1/me')).status === 'available');
  }
  const button = page.locator(tid('enable-notifications'));
  await button.click();
  await until('the button to say notifications are on', async () => (await text(button)) === 'Notifications on',
    WAIT, () => text(button));
  const second = await api('POST', '/sandbox/api/users', { name: SECOND_NAME, language: 'en' });
  secondUserId = second.id;
  await api('POST', `/sandbox/api/users/${encodeURIComponent(second.id)}/send`, { type: 'text', text: SECOND_TEXT });
  await page.locator(tid('tab-mine')).click();
  const row = page.locator(tid('inbox-row')).filter({ hasText: SECOND_NAME });
  await visible(row.locator(tid('unread')), `an unread badge on the row of "${SECOND_NAME}"`);
  await visible(row.locator(tid('row-preview')).filter({ hasText: SECOND_TEXT }), 'the message preview on the row');
  const title = await until('the unread count in the title', async () => {
    const shown = await page.title();
    return /^\(\d+\) omniline console$/.test(shown) ? shown : false;
  }, WAIT, () => page.title());
  const notified = await until('a browser notification of the assignment', async () => {
    const shown = await page.evaluate(() => window.__e2eNotifications || []);
    return shown.find((n) => n.includes(SECOND_NAME)) || false;
  }, WAIT, () => page.evaluate(() => window.__e2eNotifications || []));
  return `"${notified}", title "${title}"`;
}

// 07b. How long a customer's message takes to show in the console: from the customer's send (the
// sandbox signs the webhook body and POSTs it to the stack) to the row's preview showing the text
// (the router stores it, notifies the agent, the page's long poll returns and renders), for
// LATENCY_SAMPLES messages one after another; p50 and p95 printed and kept in
// console-latency.json (docs/benchmarks.md).
const LATENCY_SAMPLES = 20;
async function notificationLatency() {
  const row = page.locator(tid('inbox-row')).filter({ hasText: SECOND_NAME });
  const took = [];
  for (let i = 1; i <= LATENCY_SAMPLES; i += 1) {
    const words = `Latency probe ${i} (${SUFFIX})`;
    const started = performance.now();
    await api('POST', `/sandbox/api/users/${encodeURIComponent(secondUserId)}/send`, { type: 'text', text: words });
    await visible(row.locator(tid('row-preview')).filter({ hasText: words }), `the preview of probe ${i}`);
    took.push(performance.now() - started);
  }
  const sorted = [...took].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const figures = {
    samples: sorted.length,
    p50_ms: Math.round(at(0.5)),
    p95_ms: Math.round(at(0.95)),
    max_ms: Math.round(sorted[sorted.length - 1]),
  };
  writeFileSync(join(ARTIFACTS, 'console-latency.json'), `${JSON.stringify(figures, null, 2)}\n`);
  return `customer send → shown in the console: p50 ${figures.p50_ms} ms, p95 ${figures.p95_ms} ms, max ${figures.max_ms} ms over ${figures.samples}`;
}

// 07e. The second customer is linked to the first one's contact, found by its company.
async function agentLinksExistingContact() {
  await page.locator(tid('tab-mine')).click();
  await page.locator(tid('inbox-row')).filter({ hasText: SECOND_NAME }).click();
  const panel = page.locator(tid('customer-panel'));
  if (!(await panel.evaluate((d) => d.open))) await panel.locator('summary').click();
  await until('the panel to show the second customer', async () => (await text(panel)).includes(SECOND_NAME), WAIT, () => text(panel));
  await page.locator(tid('contact-search')).fill('Omni Bakery');
  const result = await visible(page.locator(tid('contact-result')).filter({ hasText: 'Omni Bakery KK' }), 'the contact found by its company');
  await result.locator(tid('contact-link-button')).click();
  await until('the linked contact in the panel', async () => (await text(panel)).includes(`e2e-${SUFFIX}@example.com`), WAIT, () => text(panel));
  await panel.locator('summary').click();
  return 'found by company, linked';
}

// 08. The agent switches presence: the API reports it.
async function agentSwitchesPresence() {
  const presence = page.locator(tid('presence'));
  await presence.selectOption('busy');
  await until('GET /agent/v1/me to say busy', async () => (await agentApi('GET', '/agent/v1/me')).status === 'busy');
  assert.equal(await presence.inputValue(), 'busy');
  return 'busy';
}

// 09. The agent (busy, so nobody takes it at once) transfers the second conversation back to its
// queue: it waits again and shows in "Waiting in my queues".
async function agentTransfers() {
  await page.locator(tid('tab-mine')).click();
  const row = page.locator(tid('inbox-row')).filter({ hasText: SECOND_NAME });
  await row.click();
  await visible(page.locator(`${tid('entry')}[data-direction="in"]`).filter({ hasText: SECOND_TEXT }), 'the second conversation');
  const id = await row.getAttribute('data-conversation-id');
  secondConversationId = id;
  const queue = (await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(id)}`)).queue;
  assert.ok(queue && queue.id, 'the conversation has a queue');
  // The choices come from GET /agent/v1/transfer-targets: the agent's queues, then the others
  // serving them (the sandbox has one agent: no agent to choose).
  const target = `queue:${queue.id}`;
  await until(`the agent's queue ${queue.id} among the transfer choices`, async () =>
    (await page.locator(`${tid('transfer-target')} option`).evaluateAll((nodes) => nodes.map((n) => n.value))).includes(target));
  await page.locator(tid('transfer-target')).selectOption(target);
  await page.locator(tid('transfer')).click();
  await until('the conversation to wait again', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'waiting');
  await page.locator(tid('tab-waiting')).click();
  await visible(page.locator(tid('inbox-row')).filter({ hasText: SECOND_NAME }), 'the row in Waiting in my queues');
  const detail = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(id)}`);
  assert.equal(detail.conversation.status, 'waiting');
  assert.equal(detail.conversation.agentId, null);
  return `to ${queue.name || queue.id}`;
}

// 10. The agent closes the first conversation: the customer gets the survey, the row moves to
// "Recently closed".
async function agentCloses() {
  await page.locator(tid('tab-mine')).click();
  await page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }).click();
  await visible(page.locator(`${tid('entry')}[data-direction="in"]`).filter({ hasText: CUSTOMER_TEXT }), 'the first conversation');
  await page.locator(tid('close')).click();
  await until('the conversation to be closed', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'closed');
  assert.ok(await page.locator(tid('composer-input')).isDisabled(), 'no reply to a closed conversation');
  await until('the survey in the customer\'s chat', async () =>
    (await customerChat()).entries.some((e) => e.from === 'account' && JSON.stringify(e.message).includes('How did we do?')));
  await page.locator(tid('tab-closed')).click();
  await visible(page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }), 'the row in Recently closed');
  return 'survey sent';
}

// 10b. The agent writes first to the customer of the closed conversation: a new conversation
// opens, assigned to the agent, and the customer's chat receives the message (pushed).
const FIRST_TEXT = `One more thing about your parcel (${SUFFIX})`;
async function agentWritesFirst() {
  const panel = page.locator(tid('customer-panel'));
  if (!(await panel.evaluate((d) => d.open))) await panel.locator('summary').click();
  await visible(page.locator(tid('write-first')), 'the write-first form on a closed conversation');
  await page.locator(tid('write-first-text')).fill(FIRST_TEXT);
  await page.locator(tid('write-first-send')).click();
  await until('a new active conversation, shown', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'active');
  await visible(page.locator(`${tid('entry')}[data-direction="out"]`).filter({ hasText: FIRST_TEXT }), 'the message in the new transcript');
  await until('the message in the customer\'s chat', async () =>
    (await customerChat()).entries.some((e) => e.from === 'account' && JSON.stringify(e.message).includes(FIRST_TEXT)));
  await page.locator(tid('tab-mine')).click();
  await visible(page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }), 'the new conversation in Mine');
  return 'opened, pushed, shown in Mine';
}

// 10c. Wrap-up: the admin gives the workstream two minutes of wrap-up and two outcomes; the
// agent closes the new conversation, which stays in Mine as "Wrap-up" with its slot held, then
// records the outcome: closed, the slot back.
async function agentWrapsUp() {
  const workstreams = (await adminApi('GET', '/admin/v1/workstreams')).workstreams;
  assert.equal(workstreams.length, 1, 'the sandbox has one workstream');
  await adminApi('PATCH', `/admin/v1/workstreams/${encodeURIComponent(workstreams[0].id)}`,
    { wrapUpSeconds: 120, dispositions: ['resolved', 'follow-up needed'] });
  const before = (await agentApi('GET', '/agent/v1/me')).activeConversations;
  await page.locator(tid('close')).click();
  await until('the conversation in wrap-up', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'wrapUp');
  await visible(page.locator(tid('wrap-up')), 'the wrap-up form');
  assert.equal((await agentApi('GET', '/agent/v1/me')).activeConversations, before, 'the slot is held');
  await visible(page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }), 'the row still in Mine');
  await page.locator(tid('wrap-up-disposition')).selectOption('resolved');
  await page.locator(tid('wrap-up-notes')).fill('Customer informed.');
  await page.locator(tid('wrap-up-save')).click();
  await until('the conversation closed', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'closed');
  assert.ok(await page.locator(tid('wrap-up')).isHidden(), 'the form is gone');
  assert.equal((await agentApi('GET', '/agent/v1/me')).activeConversations, before - 1, 'the slot is back');
  await adminApi('PATCH', `/admin/v1/workstreams/${encodeURIComponent(workstreams[0].id)}`, { wrapUpSeconds: 0 });
  return 'wrap-up held the slot, recorded "resolved"';
}

// 10d. Offers: the admin turns on accept mode; the agent becomes available and the conversation
// waiting in its queue (transferred back in step 13) is offered to it: the offer shows with its
// countdown; the agent accepts, and the conversation is its own. Accept mode off again after.
async function agentAcceptsAnOffer() {
  const workstreams = (await adminApi('GET', '/admin/v1/workstreams')).workstreams;
  const wsPath = `/admin/v1/workstreams/${encodeURIComponent(workstreams[0].id)}`;
  await adminApi('PATCH', wsPath, { offer: { mode: 'accept', timeoutSeconds: 120 } });
  try {
    await page.locator(tid('presence')).selectOption('available');
    const offer = page.locator(tid('offer'));
    await visible(offer, 'the offer');
    assert.ok((await text(offer)).includes(SECOND_NAME), 'the offer names the customer');
    const countdown = await text(page.locator(tid('offer-countdown')));
    assert.match(countdown, /\d+ s left/);
    const detail = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(secondConversationId)}`);
    assert.equal(detail.conversation.status, 'waiting', 'waiting while offered');
    assert.equal(detail.conversation.offer.agentId, agentId);
    await page.locator(tid('offer-accept')).click();
    await until('the accepted conversation, active and shown', async () =>
      (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'active'
      && (await text(page.locator(tid('conv-name')))) === SECOND_NAME);
    assert.ok(await offer.isHidden(), 'the offer is gone');
    const after = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(secondConversationId)}`);
    assert.equal(after.conversation.agentId, agentId);
    // Closed, so the steps after find a closed conversation shown.
    await page.locator(tid('close')).click();
    await until('the accepted conversation closed', async () =>
      (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'closed');
    return `offered with "${countdown}", accepted`;
  } finally {
    await adminApi('PATCH', wsPath, { offer: null });
  }
}

// 11. The console in Japanese: the labels change, the language is remembered.
async function japanese() {
  // Thai and Traditional Chinese first: each table fills the page (and axe checks it).
  for (const [lang, mine, send] of [['th', 'ของฉัน', 'ส่ง'], ['zh-TW', '我的', '傳送']]) {
    await page.locator(tid('language')).selectOption(lang);
    await until(`the Mine tab in ${lang}`, async () => (await text(page.locator(tid('tab-mine')))).startsWith(mine),
      WAIT, () => text(page.locator(tid('tab-mine'))));
    assert.equal(await text(page.locator(tid('send'))), send);
    assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
    await accessibility(`workspace in ${lang}`);
  }
  await page.locator(tid('language')).selectOption('ja');
  await until('the Mine tab in Japanese', async () => (await text(page.locator(tid('tab-mine')))).startsWith('自分の担当'),
    WAIT, () => text(page.locator(tid('tab-mine'))));
  assert.equal(await text(page.locator(tid('sign-out'))), 'サインアウト');
  assert.equal(await text(page.locator(tid('send'))), '送信');
  assert.equal(await page.locator(`${tid('presence')} option[value="busy"]`).textContent(), '取り込み中');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'ja');
  assert.equal(await text(page.locator(tid('conv-status'))), '終了');
  assert.equal(await text(page.locator(tid('tab-closed'))), '最近終了した会話');
  return `title "${await page.title()}"`;
}

// 12. axe-core on the workspace with the conversation open.
async function workspaceIsAccessible() {
  return accessibility('workspace');
}

// 13. The agent signs out: the sign-in screen says so (in Japanese), the token is forgotten.
async function agentSignsOut() {
  await page.locator(tid('sign-out')).click();
  await visible(page.locator(tid('signin-token')), 'the sign-in screen');
  await until('the signed-out message', async () => (await text(page.locator(tid('signin-message')))) === 'サインアウトしました。',
    WAIT, () => text(page.locator(tid('signin-message'))));
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);
  return accessibility('sign-in screen');
}

// 14. A token that stops working mid-session (a 401 on the next call) returns to sign-in.
async function sessionEndsOnUnauthorized() {
  await page.locator(tid('signin-token')).fill(agentToken);
  await page.locator(tid('signin-submit')).click();
  await visible(page.locator(tid('presence')), 'the workspace after signing in again');
  await page.evaluate((key) => sessionStorage.setItem(key, 'oma_revoked_0000'), TOKEN_KEY);
  // The page's next call gets the 401: the notifications poll or the inbox's 10 s refresh, or
  // this presence change if the page is still signed in by then.
  await page.locator(tid('presence')).selectOption('available', { timeout: 1_000 }).catch(() => {});
  await visible(page.locator(tid('signin-token')), 'the sign-in screen after a 401');
  await until('the session-ended message', async () =>
    (await text(page.locator(tid('signin-message')))) === 'セッションが終了しました。もう一度サインインしてください。',
  WAIT, () => text(page.locator(tid('signin-message'))));
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);
  return 'back to sign-in';
}

// 05b. The customer panel: the profile (name, language, LINE user), no contact yet, no earlier
// conversation.
async function customerPanel() {
  const panel = page.locator(tid('customer-panel'));
  await panel.locator('summary').click();
  const facts = await until('the customer panel to show the customer', async () => {
    const shown = await text(panel);
    return shown.includes(CUSTOMER_NAME) ? shown : false;
  }, WAIT, () => text(panel));
  assert.match(facts, /Not linked to a contact/);
  assert.equal(await text(page.locator(tid('customer-previous'))), 'None');
  // A contact made from the panel (the customer's name prefilled) and linked.
  assert.equal(await page.locator(tid('contact-name')).inputValue(), CUSTOMER_NAME);
  const email = `e2e-${SUFFIX}@example.com`;
  await page.locator(tid('contact-email')).fill(email);
  await page.locator(tid('contact-save')).click();
  await until('the linked contact in the panel', async () => (await text(panel)).includes(email), WAIT, () => text(panel));
  assert.ok(await page.locator(tid('contact-form')).isHidden(), 'no form once linked');
  const detail = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(conversationId)}`);
  assert.equal(detail.customer.contact.email, email);
  // The linked contact edited from the panel (PATCH /agent/v1/contacts/{id}).
  await page.locator(tid('contact-edit')).click();
  assert.equal(await page.locator(tid('edit-contact-email')).inputValue(), email);
  await page.locator(tid('edit-contact-company')).fill('Omni Bakery KK');
  await page.locator(tid('edit-contact-save')).click();
  await until('the edited company in the panel', async () => (await text(panel)).includes('Omni Bakery KK'), WAIT, () => text(panel));
  assert.ok(await page.locator(tid('contact-edit-form')).isHidden(), 'the edit form closes once saved');
  await panel.locator('summary').click();
  return `name, language, LINE user; a contact made, linked and edited (${email}); no earlier conversation`;
}

// 06b. An admin sets the customer's attributes: the panel shows them once the conversation is
// read again.
async function customerAttributes() {
  const detail = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(conversationId)}`);
  const customerId = `${detail.conversation.accountId}:${detail.customer.userId}`;
  await adminApi('PATCH', `/admin/v1/customers/${encodeURIComponent(customerId)}`, { attributes: { tier: 'gold' } });
  await page.locator(tid('tab-mine')).click();
  await page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }).click();
  const panel = page.locator(tid('customer-panel'));
  if (!(await panel.evaluate((d) => d.open))) await panel.locator('summary').click();
  await visible(page.locator(tid('attribute-name')).filter({ hasText: 'tier' }), 'the attribute on the panel');
  assert.equal(await text(page.locator(tid('attribute-value')).first()), 'gold');
  return 'tier: gold';
}

// 07a. Quick replies: an admin writes one; the agent types "/th" in the composer, sees it offered
// and inserts it with Tab, the customer's and the agent's names filled in.
async function agentInsertsQuickReply() {
  await adminApi('POST', '/admin/v1/quick-replies', {
    shortcut: '/thanks', title: 'Thanks', texts: { en: 'Thank you, {customerName}! ({agentName})', ja: 'ありがとうございます' },
  });
  const input = page.locator(tid('composer-input'));
  await input.fill('');
  await input.pressSequentially('/th');
  const offered = page.locator(tid('quick-reply')).filter({ hasText: '/thanks' });
  await visible(offered, 'the quick reply offered');
  await input.press('Tab');
  const session = await api('GET', '/sandbox/api/session');
  const want = `Thank you, ${CUSTOMER_NAME}! (${session.agent.name})`;
  await until('the quick reply in the composer', async () => (await input.inputValue()) === want, WAIT, () => input.inputValue());
  assert.ok(await page.locator(tid('quick-replies')).isHidden(), 'the list closes');
  await input.fill('');
  return want;
}

// 07a2. An internal note: shown in the transcript as the team's, never in the customer's chat.
async function agentAddsNote() {
  const note = `Refund approved by finance (${SUFFIX})`;
  await page.locator(tid('note-input')).fill(note);
  await page.locator(tid('note-add')).click();
  await visible(page.locator(`${tid('entry')}[data-direction="internal"]`).filter({ hasText: note }), 'the note in the transcript');
  const chat = await customerChat();
  assert.ok(!JSON.stringify(chat.entries).includes(note), 'the customer never sees the note');
  return 'internal, not sent';
}

// 07a3. Tags: the agent tags the conversation and the customer; the row in Mine shows the
// conversation's tag and `?tag=` finds it by either.
async function agentTags() {
  await page.locator(tid('conversation-tag-input')).fill('parcel');
  await page.locator(tid('conversation-tag-add')).click();
  await visible(page.locator(tid('conversation-tag')).filter({ hasText: 'parcel' }), 'the conversation\'s tag');
  const panel = page.locator(tid('customer-panel'));
  if (!(await panel.evaluate((d) => d.open))) await panel.locator('summary').click();
  await page.locator(tid('customer-tag-input')).fill('vip');
  await page.locator(tid('customer-tag-add')).click();
  await visible(page.locator(tid('customer-tag')).filter({ hasText: 'vip' }), 'the customer\'s tag');
  await panel.locator('summary').click();
  await visible(page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }).locator(tid('row-tags')).filter({ hasText: 'parcel' }),
    'the tag on the inbox row');
  for (const tag of ['parcel', 'vip']) {
    const found = (await agentApi('GET', `/agent/v1/conversations?tag=${tag}`)).conversations.map((c) => c.id);
    assert.deepEqual(found, [conversationId], `?tag=${tag}`);
  }
  return 'conversation: parcel, customer: vip';
}

// 07a4. Search: the agent finds the customer by words of their message (one said in it, the
// run's unique suffix), opens the conversation from the result, finds them by the customer's tag
// too, and a word nobody wrote finds no one.
async function agentSearches() {
  const input = page.locator(tid('search-input'));
  await input.fill(`PARCEL ${SUFFIX}`);
  await input.press('Enter');
  const row = page.locator(`${tid('search-row')}[data-conversation-id="${conversationId}"]`);
  await visible(row, 'the customer among the results');
  assert.match(await text(row), new RegExp(CUSTOMER_NAME));
  assert.equal(await page.locator(tid('search-row')).count(), 1, 'only them');
  await row.click();
  await until('the conversation open', async () => (await text(page.locator(tid('conv-name')))) === CUSTOMER_NAME);
  await input.fill('vip');
  await page.locator(tid('search-submit')).click();
  await visible(page.locator(`${tid('search-row')}[data-conversation-id="${conversationId}"]`), 'found by the customer\'s tag');
  await input.fill(`nobody${SUFFIX}wrote`);
  await input.press('Enter');
  await visible(page.locator(tid('search-none')), 'no match said so');
  await page.locator(tid('search-clear')).click();
  assert.ok(await page.locator(tid('search-panel')).isHidden(), 'the results close');
  return `"parcel ${SUFFIX}" → ${CUSTOMER_NAME}`;
}

// 07b. The agent sends a picture from the composer: uploaded (POST /agent/v1/media), sent, shown in
// the transcript, and the customer's chat receives the image.
const PNG_1X1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
async function agentSendsPicture() {
  const imagesBefore = (await customerChat()).entries.filter((e) => e.from === 'account' && e.message && e.message.type === 'image').length;
  await page.locator(tid('attach')).setInputFiles({ name: 'receipt.png', mimeType: 'image/png', buffer: PNG_1X1 });
  await visible(page.locator(`${tid('entry')}[data-direction="out"][data-kind="agent"] img`), 'the picture in the transcript');
  const images = await until('the picture in the customer\'s chat', async () => {
    const found = (await customerChat()).entries.filter((e) => e.from === 'account' && e.message && e.message.type === 'image');
    return found.length > imagesBefore ? found : false;
  });
  return `uploaded and sent (${images.length - imagesBefore} image in the customer's chat)`;
}

// 07b2. A sticker from the palette and a PDF from the composer: the customer's chat receives
// LINE's sticker, and the PDF as its name with a link.
async function agentSendsStickerAndFile() {
  await page.locator(tid('sticker-toggle')).click();
  await visible(page.locator(tid('sticker-option')), 'the sticker palette');
  await page.locator(`${tid('sticker-option')}[data-sticker-id="1992"]`).click();
  await until('the sticker in the customer\'s chat', async () =>
    (await customerChat()).entries.some((e) => e.from === 'account' && e.message && e.message.type === 'sticker' && e.message.stickerId === '1992'));
  assert.ok(await page.locator(tid('stickers')).isHidden(), 'the palette closes once a sticker is sent');
  await page.locator(tid('attach')).setInputFiles({ name: 'order-E2E.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n%e2e\n') });
  const link = await until('the PDF as a link in the customer\'s chat', async () => {
    const found = (await customerChat()).entries.find((e) => e.from === 'account' && e.message && e.message.type === 'text'
      && e.message.text.includes('order-E2E.pdf'));
    return found ? found.message.text : false;
  });
  assert.match(link, /\/media\/agent-media\//, 'the link is the upload\'s signed link');
  return 'sticker 446/1992, order-E2E.pdf as a link';
}

// 07c. The agent snoozes the conversation for an hour: it leaves "Mine" for "Snoozed" (with the
// time it comes back); woken, it is back in "Mine"; flagged for a follow-up, the button says so.
async function agentSnoozes() {
  await page.locator(tid('snooze-for')).selectOption('1h');
  await page.locator(tid('snooze')).click();
  await visible(page.locator(tid('wake')), 'the wake button');
  await page.locator(tid('tab-snoozed')).click();
  await visible(page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }), 'the row in Snoozed');
  await page.locator(tid('tab-mine')).click();
  await until('the row to leave Mine', async () =>
    (await page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }).count()) === 0);
  const snoozed = (await agentApi('GET', '/agent/v1/conversations?snoozed=true')).conversations;
  assert.ok(snoozed.some((c) => c.snoozedUntil > Date.now() + 50 * 60_000), 'snoozed for about an hour');
  await page.locator(tid('wake')).click();
  await visible(page.locator(tid('inbox-row')).filter({ hasText: CUSTOMER_NAME }), 'the row back in Mine');
  await page.locator(tid('follow-up')).click();
  await until('the follow-up flag', async () =>
    (await page.locator(tid('follow-up')).getAttribute('aria-pressed')) === 'true');
  const flagged = (await agentApi('GET', '/agent/v1/conversations?followUp=true')).conversations;
  assert.equal(flagged.length, 1, 'one conversation flagged');
  await page.locator(tid('follow-up')).click();
  await until('the flag removed', async () =>
    (await page.locator(tid('follow-up')).getAttribute('aria-pressed')) === 'false');
  return 'snoozed, woken, flagged and unflagged';
}

const STEPS = [
  ['open-console', openConsole],
  ['customer-writes', customerWrites],
  ['agent-signs-in', agentSignsIn],
  ['inbox-shows-conversation', inboxShowsConversation],
  ['agent-opens-conversation', agentOpensConversation],
  ['customer-panel', customerPanel],
  ['customer-attributes', customerAttributes],
  ['agent-replies', agentReplies],
  ['agent-inserts-quick-reply', agentInsertsQuickReply],
  ['agent-adds-note', agentAddsNote],
  ['agent-tags', agentTags],
  ['agent-searches', agentSearches],
  ['agent-sends-picture', agentSendsPicture],
  ['agent-sends-sticker-and-file', agentSendsStickerAndFile],
  ['agent-snoozes', agentSnoozes],
  ['new-assignment-notifies', newAssignmentNotifies],
  ['notification-latency', notificationLatency],
  ['agent-links-existing-contact', agentLinksExistingContact],
  ['agent-switches-presence', agentSwitchesPresence],
  ['agent-transfers', agentTransfers],
  ['agent-closes', agentCloses],
  ['agent-writes-first', agentWritesFirst],
  ['agent-wraps-up', agentWrapsUp],
  ['agent-accepts-an-offer', agentAcceptsAnOffer],
  ['supervisor-reassigns', supervisorReassigns],
  ['reports-show-the-week', reportsShowTheWeek],
  ['japanese', japanese],
  ['workspace-is-accessible', workspaceIsAccessible],
  ['agent-signs-out', agentSignsOut],
  ['session-ends-on-401', sessionEndsOnUnauthorized],
];

async function main() {
  assert.ok(CONSOLE_URL, 'CONSOLE_URL is not set (e.g. http://127.0.0.1:3000/console)');
  origin = new URL(CONSOLE_URL).origin;
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-US' });
  await context.grantPermissions(['notifications'], { origin });
  // Records the notifications the page shows (injected by the DevTools protocol, not subject to
  // the page's CSP; the page's own code is unchanged).
  await context.addInitScript(() => {
    const Native = window.Notification;
    if (!Native) return;
    window.__e2eNotifications = [];
    window.Notification = class extends Native {
      constructor(title, options) {
        super(title, options);
        window.__e2eNotifications.push(title);
      }
    };
  });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('console', (message) => {
    note(`console.${message.type()}: ${message.text()}`);
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  page.on('pageerror', (error) => {
    pageErrors.push(`${error.name}: ${error.message}`);
    note(`PAGE ERROR ${error.stack ?? error.message}`);
  });
  page.on('requestfailed', (request) => note(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`));
  page.on('response', (response) => {
    if (response.status() >= 400) note(`HTTP ${response.status()} ${response.request().method()} ${response.url()}`);
  });

  console.log(`console e2e: ${CONSOLE_URL}, customer "${CUSTOMER_NAME}", artefacts in ${ARTIFACTS}`);
  for (const [index, [name, run]] of STEPS.entries()) {
    const label = `console-${String(index + 1).padStart(2, '0')}-${name}`;
    const start = Date.now();
    note(`step ${label} starts`);
    try {
      const detail = await run();
      assert.equal(pageErrors.length, 0, `the page threw: ${pageErrors.join(' | ')}`);
      assert.equal(cspViolations.length, 0, `the CSP blocked something: ${cspViolations.join(' | ')}`);
      const toast = page.locator(tid('toast'));
      if (await toast.isVisible()) {
        const kind = await toast.getAttribute('class');
        assert.ok(kind.includes('info'), `the page shows an error: ${await text(toast)}`);
      }
      passed += 1;
      console.log(`ok   ${label.padEnd(40)} ${String(Date.now() - start).padStart(6)} ms${detail ? `  (${detail})` : ''}`);
    } catch (error) {
      console.log(`FAIL ${label.padEnd(40)} ${String(Date.now() - start).padStart(6)} ms`);
      error.step = label;
      throw error;
    }
    await page.screenshot({ path: join(ARTIFACTS, `${label}.png`), fullPage: true });
  }
  console.log(`${passed} passed, 0 failed`);
}

const guard = setTimeout(() => {
  console.error(`console e2e: still running after ${WHOLE_RUN_LIMIT / 1000} s, giving up`);
  process.exit(1);
}, WHOLE_RUN_LIMIT);

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  console.error(`\nconsole e2e FAILED${error.step ? ` at ${error.step}` : ''}: ${error.message}`);
  note(`FAILURE${error.step ? ` at ${error.step}` : ''}: ${error.stack ?? error.message}`);
  if (page) {
    await page.screenshot({ path: join(ARTIFACTS, 'console-99-failure.png'), fullPage: true, timeout: 10_000 })
      .then(() => console.error(`screenshot: ${join(ARTIFACTS, 'console-99-failure.png')}`))
      .catch((e) => console.error(`no failure screenshot: ${e.message}`));
  }
  console.log(`${passed} passed, 1 failed, ${STEPS.length - passed - 1} skipped`);
} finally {
  // Leave the sandbox agent's slots as found: close what this run opened and left open.
  for (const id of [conversationId, secondConversationId].filter(Boolean)) {
    try {
      const { conversation } = await agentApi('GET', `/agent/v1/conversations/${encodeURIComponent(id)}`);
      if (conversation.status !== 'closed') {
        await agentApi('POST', `/agent/v1/conversations/${encodeURIComponent(id)}/close`);
        note(`cleanup: closed ${id}`);
      }
    } catch (e) {
      note(`cleanup: ${id}: ${e.message}`);
    }
  }
  try {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'console-journal.log'), `${journal.join('\n')}\n`);
  } catch (e) {
    console.error(`could not write console-journal.log: ${e.message}`);
  }
  await browser?.close().catch(() => {});
  clearTimeout(guard);
}

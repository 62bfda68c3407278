// The console as a real deployment uses it, in headless Chromium: omniline-local with the sandbox
// off, its LINE API pointed at a LINE stand-in (`omniline-loadtest standin`: LINE's rules from
// omniline-linesim, a used reply token or an unknown customer refused as LINE refuses them) and
// people signing in at a local OpenID Connect issuer (oidc-issuer.mjs). Nothing is set up by a
// command line: the administrator connects the LINE account and adds two agents on the set-up
// page (/console/admin); the two agents sign in with their organization (each browser context is
// one person at the issuer); LINE's signed webhooks bring customers' messages; the assigned
// agent sees the notification and answers, and the stand-in receives the answer exactly once;
// the inbox's order and unread counts follow the customers; the agent transfers to the other,
// who closes; the customer's survey answer shows. axe-core checks the set-up page.
//
// Run by ../infra/sandbox-e2e.sh; env: BASE (the stack), STANDIN (the stand-in's URL),
// BOT_USER_ID and CHANNEL_TOKEN (the stand-in's channel), ISSUER, ADMIN_TOKEN, ARTIFACTS
// [../target/sandbox-e2e] for deploy-NN-step.png, CHROMIUM.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { makeUntil, tid, makeVisible, text } from './lib.mjs';

const BASE = process.env.BASE;
const STANDIN = process.env.STANDIN;
const BOT_USER_ID = process.env.BOT_USER_ID;
const CHANNEL_TOKEN = process.env.CHANNEL_TOKEN;
const ISSUER = process.env.ISSUER;
const ADMIN_TOKEN = process.env.ADMIN_TOKEN;
const ARTIFACTS = process.env.ARTIFACTS || join(import.meta.dirname, '..', 'target', 'sandbox-e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20_000;
const until = makeUntil(WAIT);
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// What the administrator types: the channel's ID and secret (the test signs LINE's webhooks with
// it) and the stand-in's channel access token.
const CHANNEL_ID = '1656789012';
const CHANNEL_SECRET = randomBytes(16).toString('hex');
const AIKO = { name: 'Aiko Tanaka', email: 'aiko@team.invalid' };
const BEN = { name: 'Ben Carter', email: 'ben@team.invalid' };
const CUSTOMER_1 = `U${randomBytes(16).toString('hex')}`;
const CUSTOMER_2 = `U${randomBytes(16).toString('hex')}`;
// The stand-in's profile names (loadtest/src/line_sim.rs: `Cust-` and the id's first 8 after U).
const nameOf = (userId) => `Cust-${userId.slice(1, 9)}`;
const ANSWER = 'Hello! Aiko here, your order ships today.';

let browser;
let passed = 0;
const pageErrors = [];
const pages = {};
let callbackUrl;

const visible = makeVisible(WAIT);


/** A new browser context for one person; `email`: who is signed in at the issuer (a cookie). */
async function personPage(name, email) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-US' });
  if (email) {
    await context.addCookies([{ name: 'mock_person', value: email, url: ISSUER }]);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  pages[name] = page;
  return page;
}

/** LINE's webhook for the account: signed with the channel secret, POSTed to the callback URL.
 *  The stand-in is told first of the reply token each event carries and of the customer. */
let eventCount = 0;
async function webhook(userId, textMessage) {
  eventCount += 1;
  const replyToken = randomBytes(16).toString('hex');
  await fetch(`${STANDIN}/_standin/webhook`, {
    method: 'POST',
    body: JSON.stringify({ bot: BOT_USER_ID, customers: [userId], replyTokens: [[replyToken, userId]] }),
  }).then((r) => assert.equal(r.status, 200, 'the stand-in took the reply token'));
  const id = `01J${String(Date.now()).padStart(14, '0')}${String(eventCount).padStart(9, '0')}`.slice(0, 26);
  const body = JSON.stringify({
    destination: BOT_USER_ID,
    events: [{
      type: 'message', mode: 'active', timestamp: Date.now(), webhookEventId: id,
      deliveryContext: { isRedelivery: false }, replyToken,
      source: { type: 'user', userId },
      message: { type: 'text', id: String(900000000000 + eventCount), quoteToken: randomBytes(8).toString('hex'), text: textMessage },
    }],
  });
  const signature = createHmac('sha256', CHANNEL_SECRET).update(body).digest('base64');
  const response = await fetch(callbackUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-line-signature': signature },
    body,
  });
  assert.equal(response.status, 200, `the webhook answered ${response.status}: ${await response.text()}`);
}

async function accepted() {
  const response = await fetch(`${STANDIN}/_standin/accepted`);
  return (await response.json()).accepted;
}

async function accessibility(page, where) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.equal(bad.length, 0, `axe (${where}): ${bad.map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join(' | ')}`);
  return `${result.passes.length} rules pass, ${result.violations.length} minor/moderate`;
}

// 01. The administrator opens the set-up page, signs in with the admin token and connects the
// LINE account: LINE (the stand-in) checks its token; the page gives the webhook URL.
async function adminConnectsAccount() {
  const page = await personPage('admin');
  const response = await page.goto(`${BASE}/console/admin`, { waitUntil: 'load', timeout: WAIT });
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'] || '', /default-src 'none'/);
  await page.locator(tid('admin-token')).fill(ADMIN_TOKEN);
  await page.locator(tid('admin-signin-submit')).click();
  await visible(page.locator(tid('accounts-list')), 'the accounts list');
  await page.locator(tid('account-name')).fill('Tanaka Bakery');
  await page.locator(tid('account-channel-id')).fill(CHANNEL_ID);
  await page.locator(tid('account-channel-secret')).fill(CHANNEL_SECRET);
  await page.locator(tid('account-access-token')).fill(CHANNEL_TOKEN);
  await page.locator(tid('account-submit')).click();
  const shown = await visible(page.locator(tid('new-account-callback')), 'the new account\'s webhook URL');
  callbackUrl = await text(shown);
  assert.match(callbackUrl, /\/line\/webhook\/[0-9a-f]{32}$/);
  await visible(page.locator(tid('account-row')).filter({ hasText: 'Tanaka Bakery' }), 'the account in the list');
  return `webhook URL ${callbackUrl}`;
}

// 02. The administrator adds two agents to the account's queue; axe finds nothing serious.
async function adminAddsAgents() {
  const page = pages.admin;
  for (const agent of [AIKO, BEN]) {
    await page.locator(tid('new-agent-name')).fill(agent.name);
    await page.locator(tid('new-agent-email')).fill(agent.email);
    await page.locator(tid('new-agent-submit')).click();
    await visible(page.locator(tid('agent-row')).filter({ hasText: agent.email }), `${agent.name} in the agents list`);
  }
  const token = await page.locator(tid('new-agent-token')).inputValue();
  assert.match(token, /^oma_/, 'the new agent\'s token is shown once');
  assert.equal(await page.locator(tid('agent-row')).count(), 2);
  return accessibility(page, 'set-up page');
}

/** `page` signs in at the issuer as the person of its context. */
async function signInWithOrganization(page, agent) {
  await page.goto(`${BASE}/console`, { waitUntil: 'load', timeout: WAIT });
  await page.locator(tid('sso-submit')).click();
  const name = await visible(page.locator(tid('agent-name')), `${agent.name} signed in`);
  await until(`the header to name ${agent.name}`, async () => (await text(name)).includes(agent.name));
  const presence = page.locator(tid('presence'));
  if ((await presence.inputValue()) !== 'available') await presence.selectOption('available');
  await until(`${agent.name} to be available`, async () => (await presence.inputValue()) === 'available');
}

// 03. Aiko signs in with her organization (OIDC, code + PKCE at the issuer).
async function aikoSignsIn() {
  await signInWithOrganization(await personPage('aiko', AIKO.email), AIKO);
  return 'available';
}

// 04. A customer writes: LINE's signed webhook; Aiko, the only agent available, gets it, sees
// it in Mine with one unread message, and answers; the stand-in receives the answer once, as a
// free reply with the message's token.
async function aikoAnswers() {
  const page = pages.aiko;
  await webhook(CUSTOMER_1, 'Hi, is my order shipped?');
  const row = page.locator(tid('inbox-row')).filter({ hasText: nameOf(CUSTOMER_1) });
  await visible(row, 'the customer in Aiko\'s inbox');
  await visible(row.locator(tid('unread')), 'an unread badge');
  assert.equal(await text(row.locator(tid('unread'))), '1');
  await row.click();
  await visible(page.locator(`${tid('entry')}[data-direction="in"]`).filter({ hasText: 'Hi, is my order shipped?' }), 'the message');
  await page.locator(tid('composer-input')).fill(ANSWER);
  await page.locator(tid('composer-input')).press('Enter');
  const sent = await until('LINE to receive the answer', async () => {
    const list = (await accepted()).filter((a) => a.text === ANSWER);
    return list.length ? list : false;
  });
  // Nothing sends it again: give a retry time to show itself, then count.
  await until('the delivery to be sent', async () =>
    (await page.locator(tid('delivery')).last().getAttribute('data-status')) === 'sent');
  const again = (await accepted()).filter((a) => a.text === ANSWER);
  assert.equal(again.length, 1, `LINE received the answer ${again.length} times: ${JSON.stringify(again)}`);
  return `received once, by ${sent[0].via}`;
}

// 05. Two more messages from a second customer: the row shows 2 unread, the tab's title the
// total; Mine lists the conversation without activity for longest first.
async function inboxOrderAndUnread() {
  const page = pages.aiko;
  await webhook(CUSTOMER_2, 'Do you deliver on Sundays?');
  await webhook(CUSTOMER_2, 'And to Osaka?');
  const row = page.locator(tid('inbox-row')).filter({ hasText: nameOf(CUSTOMER_2) });
  await until('2 unread on the second customer\'s row', async () =>
    (await row.locator(tid('unread')).count()) && (await text(row.locator(tid('unread')))) === '2');
  const title = await until('the unread total in the title', async () => {
    const shown = await page.title();
    return /^\(2\) /.test(shown) ? shown : false;
  }, WAIT, () => page.title());
  const names = await page.locator(tid('inbox-row')).evaluateAll((rows) => rows.map((r) => r.textContent));
  const first = names.findIndex((n) => n.includes(nameOf(CUSTOMER_1)));
  const second = names.findIndex((n) => n.includes(nameOf(CUSTOMER_2)));
  assert.ok(first >= 0 && second >= 0 && first < second,
    `Mine lists the one without activity for longest first: ${JSON.stringify(names)}`);
  return `title "${title}"`;
}

// 06. Ben signs in; Aiko transfers the first customer to him (chosen from the list).
async function aikoTransfersToBen() {
  await signInWithOrganization(await personPage('ben', BEN.email), BEN);
  const page = pages.aiko;
  await page.locator(tid('inbox-row')).filter({ hasText: nameOf(CUSTOMER_1) }).click();
  const target = await until('Ben among the transfer choices', async () => {
    const options = await page.locator(`${tid('transfer-target')} option`).evaluateAll((nodes) =>
      nodes.map((n) => ({ value: n.value, label: n.textContent })));
    const ben = options.find((o) => o.label.includes(BEN.name) && o.value.startsWith('agent:'));
    return ben ? ben.value : false;
  });
  await page.locator(tid('transfer-target')).selectOption(target);
  await page.locator(tid('transfer')).click();
  await until('the conversation to leave Aiko\'s Mine', async () =>
    (await page.locator(tid('inbox-row')).filter({ hasText: nameOf(CUSTOMER_1) }).count()) === 0);
  await visible(pages.ben.locator(tid('inbox-row')).filter({ hasText: nameOf(CUSTOMER_1) }), 'the conversation in Ben\'s Mine');
  return target;
}

// 07. Ben closes it: LINE receives the survey; the customer answers 5 and Ben sees the score.
async function benClosesAndSeesTheSurvey() {
  const page = pages.ben;
  await page.locator(tid('inbox-row')).filter({ hasText: nameOf(CUSTOMER_1) }).click();
  await visible(page.locator(`${tid('entry')}`).filter({ hasText: ANSWER }), 'the transcript with Aiko\'s answer');
  await page.locator(tid('close')).click();
  await until('the conversation to close', async () =>
    (await page.locator(tid('conv-status')).getAttribute('data-status')) === 'closed');
  await until('LINE to receive the survey', async () =>
    (await accepted()).some((a) => a.text.includes('How did we do?')));
  await webhook(CUSTOMER_1, '5');
  const survey = await until('the survey score on the closed conversation', async () => {
    const box = page.locator(tid('survey'));
    const shown = (await box.isVisible()) ? await text(box) : '';
    return shown.includes('5') && !/waiting/i.test(shown) ? shown : false;
  }, 30_000);
  return survey;
}

const STEPS = [
  ['admin-connects-account', adminConnectsAccount],
  ['admin-adds-agents', adminAddsAgents],
  ['aiko-signs-in', aikoSignsIn],
  ['aiko-answers', aikoAnswers],
  ['inbox-order-and-unread', inboxOrderAndUnread],
  ['aiko-transfers-to-ben', aikoTransfersToBen],
  ['ben-closes-survey-shows', benClosesAndSeesTheSurvey],
];

async function main() {
  for (const [name, value] of Object.entries({ BASE, STANDIN, BOT_USER_ID, CHANNEL_TOKEN, ISSUER, ADMIN_TOKEN })) {
    assert.ok(value, `${name} is not set`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  console.log(`console deployment e2e: ${BASE}, LINE stand-in ${STANDIN}, issuer ${ISSUER}`);
  for (const [index, [name, run]] of STEPS.entries()) {
    const label = `deploy-${String(index + 1).padStart(2, '0')}-${name}`;
    const start = Date.now();
    try {
      const detail = await run();
      assert.equal(pageErrors.length, 0, `the pages threw: ${pageErrors.join(' | ')}`);
      passed += 1;
      console.log(`ok   ${label.padEnd(40)} ${String(Date.now() - start).padStart(6)} ms${detail ? `  (${detail})` : ''}`);
    } catch (error) {
      console.log(`FAIL ${label}`);
      error.step = label;
      throw error;
    }
    for (const [who, page] of Object.entries(pages)) {
      await page.screenshot({ path: join(ARTIFACTS, `${label}-${who}.png`), fullPage: true });
    }
  }
  console.log(`${passed} passed, 0 failed`);
}

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  console.error(`\nconsole deployment e2e FAILED${error.step ? ` at ${error.step}` : ''}: ${error.stack ?? error.message}`);
  for (const [who, page] of Object.entries(pages)) {
    await page.screenshot({ path: join(ARTIFACTS, `deploy-99-failure-${who}.png`), fullPage: true, timeout: 10_000 }).catch(() => {});
  }
  console.log(`${passed} passed, 1 failed, ${STEPS.length - passed - 1} skipped`);
} finally {
  await browser?.close().catch(() => {});
}

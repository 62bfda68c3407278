// End-to-end test of the omniline sandbox page (/sandbox) in headless Chromium: a new customer
// and the sandbox agent hold a whole conversation through the page only (create a customer, log
// the agent in, text both ways, stickers both ways, images both ways, close, survey answered,
// admin glance).
//
// Run by ../infra/sandbox-e2e.sh, which starts omniline-local; or by hand against a running stack:
//   SANDBOX_URL=http://127.0.0.1:3000/sandbox node sandbox.test.mjs
// Env: SANDBOX_URL (required), ARTIFACTS [../target/sandbox-e2e] for NN-step.png screenshots, 99-failure.png
// and console.log, CHROMIUM [/usr/bin/chromium]. Exits 1 on any failure.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { makeUntil, tid, makeVisible, text } from './lib.mjs';

const SANDBOX_URL = process.env.SANDBOX_URL;
const ARTIFACTS = process.env.ARTIFACTS || join(import.meta.dirname, '..', 'target', 'sandbox-e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20_000; // the longest any single wait may take
const until = makeUntil(WAIT);
const WHOLE_RUN_LIMIT = 240_000; // a guard against anything hanging past the bounded waits

const CUSTOMER_TEXT = 'Hello, I need help with my order';
const AGENT_TEXT = "Hi! I'm Sam, happy to help.";
const SURVEY_QUESTION = 'How did we do?'; // the sandbox workstream's survey question (spec)
// LINE's free basic sticker set as the page shows it (spec): package 446, stickers 1988-1997.
const STICKER_EMOJI = ['😀', '😍', '😢', '😡', '👍', '🙏', '🎉', '😴', '🤔', '👋'];
const CUSTOMER_NAME = `Pat E2E ${Math.random().toString(36).slice(2, 6).padEnd(4, 'x')}`;
const SECOND_NAME = `Ken E2E ${Math.random().toString(36).slice(2, 6).padEnd(4, 'x')}`;
const GROUP_NAME = `Regulars ${Math.random().toString(36).slice(2, 6).padEnd(4, 'x')}`;
const QUOTE_TEXT = 'Thanks, that is what I meant';

/** A small truecolour PNG (width × height, two-colour diagonal stripes), built in memory. */
function makePng(width, height, [r1, g1, b1], [r2, g2, b2]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits per sample, RGB, deflate, no filter, no interlace
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y += 1) {
    const row = y * (1 + width * 3); // each row starts with filter type 0
    for (let x = 0; x < width; x += 1) {
      const stripe = Math.floor((x + y) / 8) % 2 === 0;
      rows.set(stripe ? [r1, g1, b1] : [r2, g2, b2], row + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const CUSTOMER_PNG = makePng(64, 48, [6, 199, 85], [255, 255, 255]); // LINE green stripes
const AGENT_PNG = makePng(48, 64, [37, 99, 235], [255, 214, 10]); // blue / yellow stripes

let browser;
let page;
let customerPane;
let agentPane;
let customerTimeline;
let userId;
let passed = 0;
const journal = []; // console messages, page errors, dialogs, failed and non-2xx requests
const pageErrors = [];
const externalRequests = [];

function note(line) {
  journal.push(`${new Date().toISOString()} ${line}`);
}

/** Polls the locator's text until `accept(text)` holds; returns the text, or throws with the last one. */
async function untilText(what, locator, accept, timeout = WAIT) {
  let shown = '(no element)';
  try {
    return await until(what, async () => {
      shown = await text(locator);
      return accept(shown) ? shown || true : false;
    }, timeout);
  } catch (error) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what} (${locator}); it shows: ${JSON.stringify(shown)}`);
  }
}

/** Waits until the locator's first match is visible, with a precise message if it never is. */
const visible = makeVisible(WAIT, true);

const paneText = async (pane) => (await pane.innerText({ timeout: 2_000 }).catch(() => '(unreadable)')).slice(-600);
const customerBubbles = (from) => customerTimeline.locator(`${tid('customer-message')}[data-from="${from}"]`);
const lastBubble = (from) => async () =>
  `${await customerBubbles(from).count()} data-from=${from} bubbles, the last: ${JSON.stringify(await text(customerBubbles(from).last()).catch(() => '(none)'))}`;
const transcriptEntries = (direction) =>
  agentPane.locator(`${tid('transcript')} ${tid('transcript-entry')}${direction ? `[data-direction="${direction}"]` : ''}`);

function assertNoPageErrors() {
  assert.equal(pageErrors.length, 0, `the page threw: ${pageErrors.join(' | ')}`);
  assert.equal(externalRequests.length, 0, `the page reached outside the stack: ${externalRequests.join(', ')}`);
}

// a. The page opens with both panes and throws nothing.
async function openSandbox() {
  const response = await page.goto(SANDBOX_URL, { waitUntil: 'load', timeout: WAIT });
  assert.ok(response, `no response for ${SANDBOX_URL}`);
  assert.equal(response.status(), 200, `GET ${SANDBOX_URL} answered ${response.status()}`);
  await visible(customerPane, 'customer-pane');
  await visible(agentPane, 'agent-pane');
  await visible(customerPane.locator(tid('create-user')), 'create-user button');
}

// b. A new customer is created from the page and becomes the selected user.
async function createCustomer() {
  const select = customerPane.locator(tid('user-select'));
  const before = await select.inputValue({ timeout: WAIT });
  await customerPane.locator(tid('new-user-name')).fill(CUSTOMER_NAME);
  const language = customerPane.locator(tid('new-user-language'));
  await until('language "en" among the new-user-language options', () =>
    language.evaluate((el) => [...el.options].some((o) => o.value === 'en')),
  );
  await language.selectOption('en');
  await customerPane.locator(tid('create-user')).click();
  userId = await until(
    `user-select to select the new user "${CUSTOMER_NAME}" (it was "${before}")`,
    () => select.evaluate((el, name) => {
      const option = el.selectedOptions[0];
      return el.value !== '' && option && option.textContent.includes(name) ? el.value : false;
    }, CUSTOMER_NAME),
    WAIT,
    () => select.evaluate((el) => `value "${el.value}", option "${el.selectedOptions[0]?.textContent ?? ''}", ${el.options.length} options`),
  );
  assert.match(userId, /^U[0-9a-f]{32}$/, `user-select value "${userId}" is not a LINE user id`);
  assert.notEqual(userId, before, 'user-select still shows the previous user');
  const usersUrl = `${SANDBOX_URL.replace(/\/+$/, '')}/api/users`;
  const users = await (await fetch(usersUrl, { signal: AbortSignal.timeout(WAIT) })).json();
  const stored = users?.users?.find((u) => u.id === userId);
  assert.ok(stored, `GET ${usersUrl} does not list ${userId}`);
  assert.equal(stored.name, CUSTOMER_NAME);
  assert.equal(stored.language, 'en');
}

// c. The agent logs in with the prefilled token and is available.
async function agentLogsIn() {
  const token = agentPane.locator(tid('agent-token'));
  await visible(token, 'agent-token input');
  const value = await until('agent-token to be prefilled from the session', () => token.inputValue());
  assert.ok(value.length > 8, `agent-token "${value}" looks too short`);
  await agentPane.locator(tid('agent-login')).click();
  const name = await visible(agentPane.locator(tid('agent-name')), 'agent-name after login');
  const shown = await untilText('agent-name to show the agent', name, (value) => value.length > 0);
  const presence = await visible(agentPane.locator(tid('presence')), 'presence select after login');
  if ((await presence.inputValue()) !== 'available') {
    await presence.selectOption('available');
  }
  await until('presence to read "available"', async () => (await presence.inputValue()) === 'available',
    WAIT, () => presence.inputValue());
  return `agent "${shown}"`;
}

// d. The customer sends a text; the timeline shows it as the customer's bubble.
async function customerSendsText() {
  await customerPane.locator(tid('customer-input')).fill(CUSTOMER_TEXT);
  await customerPane.locator(tid('customer-send')).click();
  await visible(customerBubbles('user').filter({ hasText: CUSTOMER_TEXT }), 'the customer\'s bubble (data-from=user) in customer-timeline');
}

// e. The agent is notified, with the customer's name.
async function agentIsNotified() {
  await visible(agentPane.locator(tid('notification')).filter({ hasText: CUSTOMER_NAME }), `a notification naming "${CUSTOMER_NAME}"`);
}

// f. The agent opens the conversation; the transcript shows the customer's text.
async function agentOpensConversation() {
  const entry = transcriptEntries('in').filter({ hasText: CUSTOMER_TEXT });
  await agentPane.locator(tid('notification')).filter({ hasText: CUSTOMER_NAME }).first().click();
  try {
    await entry.first().waitFor({ state: 'visible', timeout: 5_000 });
    return 'opened from the notification';
  } catch {
    note('clicking the notification did not show the transcript within 5 s; opening the conversation-item');
  }
  const item = await visible(agentPane.locator(tid('conversation-item')).filter({ hasText: CUSTOMER_NAME }), `a conversation-item naming "${CUSTOMER_NAME}"`);
  await item.click();
  await visible(entry, `a transcript-entry[data-direction=in] with "${CUSTOMER_TEXT}"`);
  return 'opened from the conversation list (the notification click did not open it)';
}

// g. The agent replies; the customer receives it.
async function agentReplies() {
  await agentPane.locator(tid('agent-input')).fill(AGENT_TEXT);
  await agentPane.locator(tid('agent-send')).click();
  await visible(customerBubbles('account').filter({ hasText: AGENT_TEXT }), `the agent's reply (data-from=account) "${AGENT_TEXT}" in customer-timeline`);
  await visible(transcriptEntries('out').filter({ hasText: AGENT_TEXT }), 'the agent\'s reply as a transcript-entry[data-direction=out]');
}

// g2. The customer quotes the agent's reply (LINE's quotedMessageId); the chat shows the quoted
// text and the agent's transcript shows the line as a quote.
async function customerQuotesReply() {
  const reply = customerBubbles('account').filter({ hasText: AGENT_TEXT }).last();
  await reply.locator(tid('customer-quote-button')).click();
  const bar = await visible(customerPane.locator(tid('customer-quote')), 'the quote bar above the composer');
  await untilText(`the quote bar to show "${AGENT_TEXT}"`, bar, (value) => value.includes(AGENT_TEXT));
  await customerPane.locator(tid('customer-input')).fill(QUOTE_TEXT);
  await customerPane.locator(tid('customer-send')).click();
  const bubble = await visible(customerBubbles('user').filter({ hasText: QUOTE_TEXT }), 'the quoting bubble');
  const quoted = await untilText('the bubble to show the quoted reply', bubble.locator(tid('customer-quoted')),
    (value) => value.includes(AGENT_TEXT));
  assert.equal(await customerPane.locator(tid('customer-quote')).isHidden(), true, 'the quote bar stays after the send');
  const entry = transcriptEntries('in').filter({ hasText: QUOTE_TEXT });
  await visible(entry.locator(tid('transcript-quoted')), 'the agent transcript marking the line as a quote');
  return `quoted "${quoted}"`;
}

/** Opens a sticker palette and picks its first sticker; returns its emoji if it shows one of the set. */
async function pickFirstSticker(pane, button, option) {
  await pane.locator(tid(button)).click();
  const first = await visible(pane.locator(tid(option)), `${option} after clicking ${button}`);
  const shown = await text(first);
  await first.click();
  return STICKER_EMOJI.find((emoji) => shown.includes(emoji));
}

// h. Stickers both ways.
async function stickersBothWays() {
  const inBefore = await transcriptEntries('in').count();
  const userBefore = await customerBubbles('user').count();
  const customerEmoji = await pickFirstSticker(customerPane, 'customer-sticker', 'sticker-option');
  await until('the customer\'s sticker bubble in customer-timeline', async () => {
    if ((await customerBubbles('user').count()) <= userBefore) return false;
    return !customerEmoji || (await text(customerBubbles('user').last())).includes(customerEmoji);
  }, WAIT, lastBubble('user'));
  await until(`a new transcript-entry[data-direction=in] for the sticker (there were ${inBefore})`, async () =>
    (await transcriptEntries('in').count()) > inBefore,
  WAIT, async () => `${await transcriptEntries('in').count()} entries; transcript: ${await paneText(agentPane.locator(tid('transcript')))}`);
  const accountBefore = await customerBubbles('account').count();
  const agentEmoji = await pickFirstSticker(agentPane, 'agent-sticker', 'agent-sticker-option');
  await until(`the agent's sticker${agentEmoji ? ` ${agentEmoji}` : ''} as a new account bubble in customer-timeline`, async () => {
    if ((await customerBubbles('account').count()) <= accountBefore) return false;
    return !agentEmoji || (await text(customerBubbles('account').last())).includes(agentEmoji);
  }, WAIT, lastBubble('account'));
  return `customer sent ${customerEmoji ?? '(unlisted sticker)'}, agent sent ${agentEmoji ?? '(unlisted sticker)'}`;
}

/**
 * Waits until one of the locator's matches after the first `before` holds an <img> that has
 * loaded (complete, naturalWidth > 0); returns that image's natural size and its src's path.
 */
async function untilImageLoaded(what, locator, before) {
  const probe = () => locator.evaluateAll((nodes, skip) => {
    for (const node of nodes.slice(skip)) {
      for (const img of node.querySelectorAll('img')) {
        if (img.complete && img.naturalWidth > 0) {
          return `${img.naturalWidth}×${img.naturalHeight} from ${new URL(img.currentSrc || img.src).pathname}`;
        }
      }
    }
    return false;
  }, before);
  const describe = () => locator.evaluateAll((nodes, skip) => {
    const fresh = nodes.slice(skip);
    const imgs = fresh.flatMap((node) => [...node.querySelectorAll('img')]);
    const shown = imgs.map((img) => ({ src: img.src, complete: img.complete, naturalWidth: img.naturalWidth }));
    return `${fresh.length} new element(s), ${imgs.length} <img>: ${JSON.stringify(shown)}; `
      + `text: ${JSON.stringify(fresh.map((n) => n.textContent.trim()).join(' | '))}`;
  }, before);
  return until(what, probe, WAIT, describe);
}

// i. Images both ways: the customer's photo loads in the transcript (through the stack's signed
// media link), the agent's photo loads in the customer's chat.
async function imagesBothWays() {
  const inBefore = await transcriptEntries('in').count();
  await customerPane.locator(tid('customer-image-input'))
    .setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: CUSTOMER_PNG });
  const received = await untilImageLoaded(
    `a new transcript-entry[data-direction=in] (there were ${inBefore}) with a loaded <img> (naturalWidth > 0)`,
    transcriptEntries('in'), inBefore);
  const accountBefore = await customerBubbles('account').count();
  await agentPane.locator(tid('agent-image-input'))
    .setInputFiles({ name: 'reply.png', mimeType: 'image/png', buffer: AGENT_PNG });
  const sent = await untilImageLoaded(
    `a new customer-message[data-from=account] (there were ${accountBefore}) with a loaded <img> (naturalWidth > 0)`,
    customerBubbles('account'), accountBefore);
  return `agent sees ${received}; customer sees ${sent}`;
}

// j. The agent closes the conversation; the customer gets the survey with quick replies 1-5.
async function agentClosesConversation() {
  await agentPane.locator(tid('agent-close')).click();
  await visible(customerBubbles('account').filter({ hasText: SURVEY_QUESTION }), `the survey question "${SURVEY_QUESTION}" in customer-timeline`);
  const chips = customerPane.locator(tid('quick-reply'));
  await visible(chips.filter({ hasText: /^\s*5\s*$/ }), 'a quick-reply chip reading exactly "5"');
  const labels = (await chips.allTextContents()).map((label) => label.trim());
  for (const score of ['1', '2', '3', '4', '5']) {
    assert.ok(labels.includes(score), `no quick-reply chip "${score}" among ${JSON.stringify(labels)}`);
  }
  return `chips ${labels.join(' ')}`;
}

// k. The customer answers 5; the agent pane shows the score.
async function customerAnswersSurvey() {
  await customerPane.locator(tid('quick-reply')).filter({ hasText: /^\s*5\s*$/ }).first().click();
  const score = agentPane.locator(tid('survey-score'));
  const shown = await untilText('survey-score to contain "5 / 5"', score, (value) => value.includes('5 / 5'));
  return `survey-score "${shown}"`;
}

// k2. A group chat: a second customer, a group of the two with the shop, each writes; the agent
// sees one conversation named after the group, with each line's sender.
async function groupChat() {
  const select = customerPane.locator(tid('user-select'));
  await customerPane.locator(tid('new-user-name')).fill(SECOND_NAME);
  await customerPane.locator(tid('create-user')).click();
  const secondId = await until(`user-select to select "${SECOND_NAME}"`, () => select.evaluate((el, name) => {
    const option = el.selectedOptions[0];
    return option && option.textContent.includes(name) ? el.value : false;
  }, SECOND_NAME));
  await customerPane.locator(tid('new-group-toggle')).click();
  await customerPane.locator(tid('new-group-name')).fill(GROUP_NAME);
  for (const id of [userId, secondId]) {
    await customerPane.locator(`${tid('new-group-member')}[value="${id}"]`).check();
  }
  await customerPane.locator(tid('create-group')).click();
  await until(`user-select to select the group "${GROUP_NAME}"`, () => select.evaluate((el, name) =>
    el.value.startsWith('group:') && el.selectedOptions[0].textContent.includes(name), GROUP_NAME));
  const sender = customerPane.locator(tid('group-sender'));
  const lines = [[userId, CUSTOMER_NAME, 'Hi all, is the shop open today?'], [secondId, SECOND_NAME, 'Asking too!']];
  for (const [id, name, line] of lines) {
    await sender.selectOption(id);
    await customerPane.locator(tid('customer-input')).fill(line);
    await customerPane.locator(tid('customer-send')).click();
    const bubble = await visible(customerBubbles('user').filter({ hasText: line }), `the group bubble "${line}"`);
    await untilText(`the bubble's sender to read "${name}"`, bubble.locator(tid('customer-sender')), (v) => v.includes(name));
  }
  const item = await visible(agentPane.locator(tid('conversation-item')).filter({ hasText: GROUP_NAME }),
    `a conversation-item named after the group "${GROUP_NAME}" (LINE's group summary)`);
  await item.click();
  for (const [, name, line] of lines) {
    const entry = await visible(transcriptEntries('in').filter({ hasText: line }), `the transcript line "${line}"`);
    await untilText(`the line's sender to read "${name}"`, entry.locator(tid('transcript-sender')), (v) => v.includes(name));
  }
  return `group "${GROUP_NAME}" with ${CUSTOMER_NAME} and ${SECOND_NAME}`;
}

// l. The admin glance shows the webhook URL and the webhooks received.
async function glanceShowsWebhooks() {
  const glance = page.locator(tid('glance'));
  const callback = glance.locator(tid('callback-url'));
  if (!(await callback.isVisible())) {
    // A collapsed <details> glance: open it.
    await glance.locator('summary').first().click({ timeout: 2_000 }).catch(() => {});
  }
  await visible(callback, 'callback-url in glance');
  const url = await untilText('callback-url to contain /line/webhook/', callback, (value) => value.includes('/line/webhook/'));
  const stats = await visible(glance.locator(tid('webhook-stats')), 'webhook-stats in glance');
  const receivedCount = (value) => Number(/received\D{0,40}?(\d+)/i.exec(value)?.[1] ?? -1);
  const shown = await untilText('webhook-stats to count at least 3 webhooks received', stats, (value) => receivedCount(value) >= 3);
  return `callback ${url}; ${receivedCount(shown)} webhooks received ("${shown}")`;
}

const STEPS = [
  ['open-sandbox', openSandbox],
  ['create-customer', createCustomer],
  ['agent-logs-in', agentLogsIn],
  ['customer-sends-text', customerSendsText],
  ['agent-is-notified', agentIsNotified],
  ['agent-opens-conversation', agentOpensConversation],
  ['agent-replies', agentReplies],
  ['customer-quotes-reply', customerQuotesReply],
  ['stickers-both-ways', stickersBothWays],
  ['images-both-ways', imagesBothWays],
  ['agent-closes-conversation', agentClosesConversation],
  ['customer-answers-survey', customerAnswersSurvey],
  ['group-chat', groupChat],
  ['glance-shows-webhooks', glanceShowsWebhooks],
];

function writeJournal() {
  const lines = [`customer ${CUSTOMER_NAME} ${userId ?? ''}`.trim(), ...journal];
  if (pageErrors.length) lines.push('', 'PAGE ERRORS:', ...pageErrors);
  writeFileSync(join(ARTIFACTS, 'console.log'), `${lines.join('\n')}\n`);
}

async function main() {
  assert.ok(SANDBOX_URL, 'SANDBOX_URL is not set (e.g. http://127.0.0.1:3000/sandbox)');
  mkdirSync(ARTIFACTS, { recursive: true });
  const stackHost = new URL(SANDBOX_URL).host;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1500, height: 950 } });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('console', (message) => note(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => {
    pageErrors.push(`${error.name}: ${error.message}`);
    note(`PAGE ERROR ${error.stack ?? error.message}`);
  });
  page.on('dialog', async (dialog) => {
    note(`dialog ${dialog.type()} "${dialog.message()}" accepted`);
    await dialog.accept().catch(() => {});
  });
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (/^(https?|wss?):$/.test(url.protocol) && url.host !== stackHost) externalRequests.push(request.url());
  });
  page.on('requestfailed', (request) => {
    // Long polls the page drops on purpose end as net::ERR_ABORTED; worth a line, not a failure.
    note(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) note(`HTTP ${response.status()} ${response.request().method()} ${response.url()}`);
  });
  customerPane = page.locator(tid('customer-pane'));
  agentPane = page.locator(tid('agent-pane'));
  customerTimeline = customerPane.locator(tid('customer-timeline'));

  console.log(`sandbox e2e: ${SANDBOX_URL}, customer "${CUSTOMER_NAME}", artefacts in ${ARTIFACTS}`);
  const wallStart = Date.now();
  let total = 0;
  for (const [index, [name, run]] of STEPS.entries()) {
    const label = `${String(index + 1).padStart(2, '0')}-${name}`;
    const start = Date.now();
    note(`step ${label} starts`);
    try {
      const detail = await run();
      assertNoPageErrors();
      const elapsed = Date.now() - start;
      total += elapsed;
      passed += 1;
      console.log(`ok   ${label.padEnd(30)} ${String(elapsed).padStart(6)} ms${detail ? `  (${detail})` : ''}`);
    } catch (error) {
      console.log(`FAIL ${label.padEnd(30)} ${String(Date.now() - start).padStart(6)} ms`);
      error.step = label;
      throw error;
    }
    await page.screenshot({ path: join(ARTIFACTS, `${label}.png`), fullPage: true });
  }
  console.log(`whole conversation in ${(total / 1000).toFixed(1)} s (${STEPS.length} steps, screenshots excluded; wall clock ${((Date.now() - wallStart) / 1000).toFixed(1)} s)`);
  console.log(`${passed} passed, 0 failed`);
}

const guard = setTimeout(() => {
  console.error(`sandbox e2e: still running after ${WHOLE_RUN_LIMIT / 1000} s, giving up`);
  process.exit(1);
}, WHOLE_RUN_LIMIT);

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  console.error(`\nsandbox e2e FAILED${error.step ? ` at ${error.step}` : ''}: ${error.message}`);
  note(`FAILURE${error.step ? ` at ${error.step}` : ''}: ${error.stack ?? error.message}`);
  if (page) {
    for (const [name, pane] of [['customer-pane', customerPane], ['agent-pane', agentPane]]) {
      if (pane) note(`${name} text at failure (last 600 chars):\n${await paneText(pane)}`);
    }
    await page.screenshot({ path: join(ARTIFACTS, '99-failure.png'), fullPage: true, timeout: 10_000 })
      .then(() => console.error(`screenshot: ${join(ARTIFACTS, '99-failure.png')}`))
      .catch((e) => console.error(`no failure screenshot: ${e.message}`));
  }
  console.error(`console and page errors: ${join(ARTIFACTS, 'console.log')}`);
  console.log(`${passed} passed, 1 failed, ${STEPS.length - passed - 1} skipped`);
} finally {
  try {
    if (ARTIFACTS) {
      mkdirSync(ARTIFACTS, { recursive: true });
      writeJournal();
    }
  } catch (e) {
    console.error(`could not write console.log: ${e.message}`);
  }
  await browser?.close().catch(() => {});
  clearTimeout(guard);
}

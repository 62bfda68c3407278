// End-to-end test of the agent console's sign-in at an OpenID Connect issuer, in headless
// Chromium: omniline-local (sandbox mode) started with OIDC_ISSUER / OIDC_CLIENT_ID naming a
// local issuer (oidc-issuer.mjs: oauth2-mock-server), whose tokens name the sandbox agent's email.
// The agent clicks "Sign in with your organization", the issuer sends the browser back with a
// code (authorization code flow, PKCE S256, state and nonce), the console's server exchanges it
// for the ID token, the workspace opens as that agent (the agent API says: signed in with
// OIDC); signing out forgets the token; a return with a forged state signs no one in.
//
// Run by ../infra/sandbox-e2e.sh; env: CONSOLE_URL (required), ARTIFACTS
// [../target/sandbox-e2e] for oidc-NN-step.png and oidc-99-failure.png, CHROMIUM.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { tid } from './lib.mjs';

const CONSOLE_URL = process.env.CONSOLE_URL;
const ARTIFACTS = process.env.ARTIFACTS || join(import.meta.dirname, '..', 'target', 'sandbox-e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20_000;
const TOKEN_KEY = 'omniline.console.token';

let browser;
let page;
let passed = 0;
const pageErrors = [];

const text = async (selector) => ((await page.locator(selector).first().textContent()) ?? '').trim();

async function opens() {
  const response = await page.goto(CONSOLE_URL, { waitUntil: 'load', timeout: WAIT });
  assert.equal(response.status(), 200);
  await page.locator(tid('sso-submit')).waitFor({ state: 'visible', timeout: WAIT });
  assert.ok(await page.locator(tid('oidc-note')).isHidden(), 'the issuer is reachable: no warning');
  return `sign-in offers "${await text(tid('sso-submit'))}"`;
}

async function signsInAtTheIssuer() {
  await page.locator(tid('sso-submit')).click();
  await page.locator(tid('agent-name')).waitFor({ state: 'visible', timeout: WAIT });
  const url = new URL(page.url());
  assert.equal(url.pathname, '/console/');
  assert.equal(url.search, '', 'the code and state are gone from the address bar');
  const token = await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY);
  assert.equal(token.split('.').length, 3, 'the tab keeps an ID token');
  const me = await page.evaluate(async (t) => (await fetch('/agent/v1/me', { headers: { Authorization: `Bearer ${t}` } })).json(), token);
  assert.equal(me.signIn.method, 'oidc', JSON.stringify(me));
  assert.equal(me.signIn.email, 'sam@sandbox.invalid');
  return `signed in as ${await text(tid('agent-name'))} (${me.signIn.email}, roles ${me.signIn.roles.join(', ')})`;
}

async function signsOut() {
  await page.locator(tid('sign-out')).click();
  await page.locator(tid('signin')).waitFor({ state: 'visible', timeout: WAIT });
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);
  return 'token forgotten';
}

async function aForgedReturnSignsNoOneIn() {
  await page.goto(`${CONSOLE_URL}/?code=stolen&state=forged`, { waitUntil: 'load', timeout: WAIT });
  await page.locator(tid('signin-message')).waitFor({ state: 'visible', timeout: WAIT });
  assert.match(await text(tid('signin-message')), /did not complete/);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);
  return await text(tid('signin-message'));
}

const STEPS = [
  ['console-offers-sso', opens],
  ['agent-signs-in-at-the-issuer', signsInAtTheIssuer],
  ['agent-signs-out', signsOut],
  ['forged-return-refused', aForgedReturnSignsNoOneIn],
];

async function main() {
  assert.ok(CONSOLE_URL, 'CONSOLE_URL is not set');
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, locale: 'en-US' });
  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${error.name}: ${error.message}`));
  console.log(`console OIDC e2e: ${CONSOLE_URL}, artefacts in ${ARTIFACTS}`);
  for (const [index, [name, run]] of STEPS.entries()) {
    const label = `oidc-${String(index + 1).padStart(2, '0')}-${name}`;
    const start = Date.now();
    try {
      const detail = await run();
      assert.equal(pageErrors.length, 0, `the page threw: ${pageErrors.join(' | ')}`);
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

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  console.error(`\nconsole OIDC e2e FAILED${error.step ? ` at ${error.step}` : ''}: ${error.message}`);
  if (page) await page.screenshot({ path: join(ARTIFACTS, 'oidc-99-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser?.close().catch(() => {});
}

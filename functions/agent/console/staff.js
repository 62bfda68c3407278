// What the set-up page (admin.js) and the supervisor page (supervisor.js) share: the admin token
// kept in this tab (sessionStorage, the same key for both pages), a toast, an error's wording,
// the language switch, and signing in with a bearer that is tried on a page's first call.
import { ApiError, token as consoleToken } from './api.js';
import { LANGUAGES, initialLanguage, language, setLanguage, t, translate } from './i18n.js';
import { el } from './render.js';

const ADMIN_TOKEN_KEY = 'omniline.admin.token';
const $ = (id) => document.getElementById(id);

export function storedAdminToken() {
  try { return window.sessionStorage.getItem(ADMIN_TOKEN_KEY); } catch { return null; }
}

export function storeAdminToken(value) {
  try {
    if (value) window.sessionStorage.setItem(ADMIN_TOKEN_KEY, value);
    else window.sessionStorage.removeItem(ADMIN_TOKEN_KEY);
  } catch { /* storage refused: the session lasts as long as the page */ }
}

let toastTimer = null;
export function toast(message, kind = 'error') {
  const box = $('toast');
  box.textContent = message;
  box.className = `toast ${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

/** What an API error says, for the person (its field when it names one). */
export function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 0) return t('error.network');
    return error.field ? `${error.field}: ${error.message}` : error.message;
  }
  return String((error && error.message) || error);
}

/** The page's language (the console's choice), its words, and the switch; `onChange` runs
 *  after a switch (to render again what the page drew itself). */
export function startLanguage(titleKey, onChange = () => {}) {
  setLanguage(initialLanguage());
  translate();
  document.title = t(titleKey);
  const select = $('language');
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => el('option', { value: code, text: name })));
  select.value = language();
  select.addEventListener('change', () => {
    setLanguage(select.value, true);
    translate();
    document.title = t(titleKey);
    onChange();
  });
}

/**
 * Wires a page's admin-token sign-in form and its sign-out button (ids `{prefix}-signin-form`,
 * `{prefix}-token`, `{prefix}-sign-out`): the token is tried with `tryBearer(token, who)` and
 * kept in this tab when accepted; `refusedKey` words a refusal; `signedOut` runs after sign-out.
 */
export function wireTokenSignIn(prefix, tryBearer, showSignIn, refusedKey, signedOut) {
  $(`${prefix}-signin-form`).addEventListener('submit', (event) => {
    event.preventDefault();
    const field = $(`${prefix}-token`);
    const value = field.value.trim();
    if (!value) {
      showSignIn(t('admin.tokenEmpty'));
      return;
    }
    tryBearer(value, t('admin.byToken')).then((ok) => {
      if (ok) {
        storeAdminToken(value);
        field.value = '';
      } else {
        showSignIn(t(refusedKey));
      }
    }).catch((error) => showSignIn(describe(error)));
  });
  $(`${prefix}-sign-out`).addEventListener('click', () => {
    storeAdminToken(null);
    signedOut();
    showSignIn('');
  });
}

/**
 * Signs the page in on load: the admin token this tab keeps, else the console's OpenID Connect
 * session (an ID token), each tried with `tryBearer(bearer, who)` (true when accepted); else
 * `showSignIn('')`. `oidcWho` names a person signed in with OIDC.
 */
export async function signInOnLoad(tryBearer, showSignIn, oidcWho) {
  try {
    const kept = storedAdminToken();
    if (kept && await tryBearer(kept, t('admin.byToken'))) return;
    storeAdminToken(null);
    const session = consoleToken();
    if (session && session.split('.').length === 3 && await tryBearer(session, oidcWho)) return;
    showSignIn('');
  } catch (error) {
    showSignIn(describe(error));
  }
}

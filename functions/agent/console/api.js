// The agent API (/agent/v1, same origin) with the token of this tab. Every failure is an ApiError
// carrying the API's `{"error": {"code", "message", "field"}}`; a 401 also calls the handler set
// with onUnauthorized (the console then returns to the sign-in screen).

const TOKEN_KEY = 'omniline.console.token';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

let unauthorized = () => {};

export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** The token of this tab (sessionStorage: gone when the tab closes, never in localStorage). */
export function token() {
  try { return window.sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

export function setToken(value) {
  try {
    if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage refused: the session lasts as long as the page */ }
}

/** A random id for Idempotency-Key (letters, digits, dashes). */
export function randomId() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * One call. `body`: an object sent as JSON, or undefined. `options.signal` aborts it,
 * `options.headers` adds headers, `options.anonymous` sends no token, `options.bearer` sends that
 * token instead of the tab's (a 401 then calls no handler), `options.raw` sends a
 * File or Blob as the body with its own type. Answers the parsed JSON
 * (null for an empty body).
 */
export async function call(method, path, body, options = {}) {
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  // `options.bearer`: another token than the tab's agent session (the set-up page's).
  const current = options.bearer || token();
  if (!options.anonymous) {
    if (!current) {
      unauthorized();
      throw new ApiError(401, 'unauthorized', 'not signed in');
    }
    headers.Authorization = `Bearer ${current}`;
  }
  const init = { method, headers, signal: options.signal, credentials: 'omit', cache: 'no-store' };
  if (options.raw) {
    // A file as it is (an upload): its own content type.
    init.body = options.raw;
    headers['Content-Type'] = options.raw.type || 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', '');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    // Only the token in use now: a sign-in check of a pasted token handles its own 401.
    if (response.status === 401 && !options.anonymous && !options.signingIn && !options.bearer && token() === current) unauthorized();
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || `${method} ${path.split('?')[0]} answered ${response.status}`, error.field);
  }
  return data;
}

export const enc = encodeURIComponent;

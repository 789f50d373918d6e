// Calls to the signalwise API from the dashboard.
//
// Reads go without credentials (open on a loopback server) unless the page holds a token. An action
// (operate scope) without a token asks for an API key once, exchanges it at POST /api/v1/auth/token for a
// short-lived JWT and keeps only the token, in this module's memory (never in storage): a reload forgets it.
// A read refused for want of a key (a server away from loopback) asks the same way, once: declined, reads
// stay bare until the operator signs in from the top bar. A read whose token the server refuses (a restarted
// server signs with another secret; a revoked key) drops the sign-in and is sent again bare, so a loopback
// server answers it without a question; the page learns whose sign-in went (`refusedSignIn`).
// A refused call raises ApiError with the server's one-line reason (`message` of every 4xx body); a call the
// server never answered (it stopped, the network dropped) raises NetworkError, which says so in words rather
// than the browser's "Failed to fetch", and keeps the browser's own words in `detail` (for a tooltip).

let token = null;
let tokenExpiresAt = 0; // ms since epoch, on this page's clock (the token's lifetime from when it was received)
let tokenName = null; // kept after the token expires: the page says whose sign-in expired
let expiryTimer = null;
let tokenScopes = [];
let askForKey = null; // async (why) => 'signed-in' | 'without' | null (cancelled); set by the app
let asking = null; // the question on screen: every call that needs a key waits for the same answer
let readsDeclined = false; // the operator declined to give a key for reading: do not ask again
let refused = null; // {name, reason}: the sign-in the server refused last (until the next sign-in)
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.status = status;
    this.path = path;
  }
}

/** The server did not answer at all: no status, no reason of its own. */
export class NetworkError extends ApiError {
  constructor(method, path, cause) {
    super(null, 'the server did not answer (network error)', path);
    this.detail = `${method} ${path.split('?')[0]}: ${cause?.name ? `${cause.name}: ` : ''}${cause?.message || cause}`;
  }
}

export function onAuthChange(fn) { listeners.add(fn); }
export function setKeyPrompt(fn) { askForKey = fn; }
export function currentToken() { return token && Date.now() < tokenExpiresAt ? token : null; }
/** The token, if it may read (a key with `operate` alone may not: its reads go bare, open on loopback). */
export function readToken() {
  const tok = currentToken();
  return tok && (tokenScopes.includes('read') || tokenScopes.includes('admin')) ? tok : null;
}
/** Who is signed in, until when (`expiresAt`, ms since epoch); `expired`: a sign-in this page held has run out. */
export function who() {
  if (!tokenName) return null;
  return { name: tokenName, scopes: tokenScopes, expiresAt: tokenExpiresAt, expired: !currentToken() };
}

/** The sign-in the server refused last ({name, reason}), until the next sign-in or `clearRefused`. */
export function refusedSignIn() { return refused; }
export function clearRefused() { if (refused) { refused = null; changed(); } }

/** A wall-clock time of day, hh:mm:ss (local). */
export function wallClock(ms) { return new Date(ms).toTimeString().slice(0, 8); }

function expiredWhy(method, path) {
  return `Your sign-in as ${tokenName} expired at ${wallClock(tokenExpiresAt)} (wall clock): give the key again `
    + `(${method} ${path.split('?')[0]} needs a key with the operate scope).`;
}

function changed() { for (const fn of listeners) fn(who()); }

/** Ask for a key (one dialog however many calls need it). */
function ask(why) {
  if (!asking) asking = Promise.resolve(askForKey(why)).finally(() => { asking = null; });
  return asking;
}

export function forget() {
  token = null; tokenExpiresAt = 0; tokenName = null; tokenScopes = [];
  clearTimeout(expiryTimer);
  changed();
}

async function reasonOf(resp) {
  try {
    const body = await resp.json();
    if (typeof body.message === 'string') return body.message;
    if (typeof body.detail === 'string') return body.detail;
    return JSON.stringify(body.detail ?? body);
  } catch {
    return resp.statusText || `HTTP ${resp.status}`;
  }
}

/** Exchange an API key for a token; the key itself is not kept. */
export async function signIn(key) {
  let resp;
  try {
    resp = await fetch('/api/v1/auth/token', { method: 'POST', headers: { 'X-API-Key': key } });
  } catch (err) {
    throw new NetworkError('POST', '/api/v1/auth/token', err);
  }
  if (!resp.ok) throw new ApiError(resp.status, await reasonOf(resp), '/api/v1/auth/token');
  const t = await resp.json();
  token = t.access_token;
  // its lifetime counted on this page's clock (not the token's `exp`, on the server's): a clock set wrong does
  // not make it look valid or expired; 2 s early, for the request under way when it runs out
  tokenExpiresAt = Date.now() + Math.max(1, t.expires_in - 2) * 1000;
  tokenScopes = t.scopes || [];
  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(changed, tokenExpiresAt - Date.now() + 50); // the header says it has expired
  try { tokenName = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub; }
  catch { tokenName = 'key'; }
  readsDeclined = false;
  refused = null;
  changed();
  return t;
}

async function send(method, path, body, tok) {
  const headers = {};
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new NetworkError(method, path, err);
  }
}

/**
 * One call. `action: true` marks a change (operate scope): without a token the user is asked for a key
 * first; "try without a key" sends the call bare (a server started with --insecure-no-auth takes it, any
 * other refuses it with its reason, which is raised). Returns parsed JSON, or the Response with `raw`.
 */
export async function call(method, path, body, { action = false, raw = false } = {}) {
  let tok = action ? currentToken() : readToken();
  if (action && !tok && askForKey) {
    const answer = await ask(tokenName ? expiredWhy(method, path)
      : `${method} ${path.split('?')[0]} needs a key with the operate scope.`);
    if (answer === null) throw new ApiError(0, 'cancelled: no API key given, nothing was sent', path);
    tok = currentToken();
  }
  const holder = tokenName; // whose token this call carries (calls under way share it)
  let resp = await send(method, path, body, tok);
  let dropped = null; // the sign-in this call's token carried, when the server refused it
  if (resp.status === 401 && tok) {
    dropped = { name: holder, reason: await reasonOf(resp.clone()) };
    // expired, or from a restarted server (another secret): it opens nothing any more (unless another call
    // refused has dropped it already, or the operator has signed in again meanwhile)
    if (token === tok) { refused = dropped; forget(); }
    tok = null;
    // a read goes again bare: a loopback server answers it, and only a server that wants a key asks for one
    if (!action) resp = await send(method, path, body, null);
  }
  if (resp.status === 401 && askForKey && (dropped || (!action && !readsDeclined))) {
    const reason = await reasonOf(resp.clone());
    const why = dropped?.reason.startsWith('token expired')
      ? `Your sign-in as ${dropped.name} expired (the server says: ${dropped.reason}): give the key again.`
      : action ? `${reason} — give the key again.`
      : dropped ? `This server refused ${dropped.name}'s sign-in (${dropped.reason}) and does not open its reads `
        + `without a key: give the key again.`
      : `This server does not open its reads without a key (it is not on a loopback address): ${reason}`;
    const answer = await ask(why);
    if (answer === 'signed-in') resp = await send(method, path, body, action ? currentToken() : readToken());
    else if (!action) readsDeclined = true;
  }
  if (!resp.ok) throw new ApiError(resp.status, await reasonOf(resp), path);
  if (raw) return resp;
  return resp.status === 204 ? null : resp.json();
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body, { action: true, ...opts });
export const put = (path, body, opts) => call('PUT', path, body, { action: true, ...opts });
export const del = (path, opts) => call('DELETE', path, undefined, { action: true, ...opts });

/** A refusal as the operator reads it: "403 Forbidden: 'viewer' lacks scope 'operate' …". */
export function describeError(err) {
  if (!(err instanceof ApiError)) return String(err?.message || err);
  if (err.status === 0 || err instanceof NetworkError) return err.message;
  const names = { 401: 'not signed in', 403: 'not allowed', 404: 'not found', 409: 'conflict',
                  422: 'refused', 429: 'rate limited', 503: 'unavailable' };
  return `${err.status} ${names[err.status] || 'error'}: ${err.message}`;
}

/** What lies behind a described error, for a tooltip: the browser's own words for a network error, the
 * status and route of a refusal. */
export function errorDetail(err) {
  if (err instanceof NetworkError) return err.detail;
  if (err instanceof ApiError) return err.status ? `HTTP ${err.status} from ${err.path}` : '';
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

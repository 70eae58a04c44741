// HTTP to auth and calls on this origin; the session token in localStorage.
//
// Every error is an ApiError with the service's code, message and field
// ({"error": {"code", "message", "field"}}); a 401 on an authenticated request
// clears the session and calls the handler set with onUnauthorized (the app sends the
// person to the login page, keeping the page they were on).

const KEY = 'corecast.session';

export const session = {
  get: () => localStorage.getItem(KEY),
  set: (t) => localStorage.setItem(KEY, t),
  clear: () => localStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status; this.code = code; this.field = field;
  }
}

let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

// Turns a failed fetch into a message a person can act on.
export function networkError(e) {
  if (e && e.name === 'TimeoutError') return new ApiError(0, 'timeout', 'The server did not answer in time. Try again.');
  return new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
}

export async function errorOf(r) {
  const text = await r.text().catch(() => '');
  let body = null;
  try { body = JSON.parse(text); } catch { /* a router refusal is text/plain */ }
  const e = body && body.error;
  if (e) return new ApiError(r.status, e.code, e.message, e.field || null);
  if (r.status >= 500) return new ApiError(r.status, 'server', `The server had a problem (${r.status}). Try again in a moment.`);
  return new ApiError(r.status, 'refused', text.trim() || `Request refused (${r.status}).`);
}

// JSON request. opts: json (body), auth (default true), redirect (a 401 goes to the login
// page; default true), timeoutMs.
export async function api(method, path, { json, auth = true, redirect = true, timeoutMs = 10000 } = {}) {
  const headers = {};
  const token = session.get();
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json),
      signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) { throw networkError(e); }
  if (r.status === 401 && auth) {
    const err = await errorOf(r);
    session.clear();
    if (redirect) unauthorized(err);
    throw err;
  }
  if (!r.ok) throw await errorOf(r);
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

// Who am I (null when not signed in or the session expired; no redirect).
export async function me() {
  if (!session.get()) return null;
  try { return await api('GET', '/v1/me', { redirect: false }); } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

// The auth and calls HTTP API as the browser tests call it from Node: one request (a failed
// connection is a Fail naming it), and fresh users registered and logged in.
import { randomBytes } from 'node:crypto';
import { Fail, check } from './report.mjs';

export async function http(method, url, { token, json, body, type, timeoutMs = 10000 } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  else if (type) headers['Content-Type'] = type;
  let r;
  try { r = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) }); }
  catch (e) { throw new Fail(`${method} ${url}: ${e.cause ? e.cause.code || e.cause.message : e.message}`); }
  const text = await r.text();
  let data = null; try { data = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, data };
}

// `n` new users (login `${prefix}N-<tag>`), each logged in: [{ login, session }].
export async function freshUsers(auth, n, prefix) {
  const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.slice(-10);
  const users = [];
  for (let i = 1; i <= n; i++) {
    const login = `${prefix}${i}-${tag}`; const password = `${prefix}-password-${tag}`;
    const reg = await http('POST', `${auth}/v1/register`, { json: { login, email: `${login}@e2e.test`, name: `${prefix} ${i}`, password } });
    check(reg.status === 201 || reg.status === 409, `register ${login}: ${reg.status} ${reg.text.slice(0, 200)}`);
    const lg = await http('POST', `${auth}/v1/login`, { json: { login, password } });
    check(lg.status === 200 && lg.data?.session, `login ${login}: ${lg.status} ${lg.text.slice(0, 200)}`);
    users.push({ login, session: lg.data.session });
  }
  return users;
}

// A mock of corecast's auth and calls HTTP APIs with WHIP/WHEP, for checking webrtc-e2e.mjs
// itself before (or without) the real endpoints (`webrtc-e2e.mjs --mock`). The WebRTC side is a
// page in the same browser (pages/mock-sfu.html) that relays a publisher's tracks to viewers.
// Its HTTP answers follow control/openapi.json and the WHIP/WHEP contract the test assumes,
// including the CORS headers the pages need: a reference for the real calls service.
import { createServer } from 'node:http';
import { randomUUID, randomBytes } from 'node:crypto';

export const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, POST, DELETE, PATCH, OPTIONS',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type, If-Match',
  'Access-Control-Expose-Headers': 'Location, X-Participant-Id, Link, ETag',
  'Access-Control-Max-Age': '600',
};

export async function startMock(sfuPage) {
  const users = new Map(); // login -> { id, password }
  const sessions = new Map(); // token -> user id
  const calls = new Map(); // call id -> { owner, created_at, participants: Map(pid -> {user_id, role}) }
  const media = new Map(); // media session id -> { call, pid, user }
  let nextUser = 1;
  const send = (res, status, body, headers = {}) => {
    const h = { ...CORS, ...headers };
    if (body !== undefined && typeof body !== 'string') { h['Content-Type'] = 'application/json'; body = JSON.stringify(body); }
    res.writeHead(status, h).end(body);
  };
  const err = (res, status, code, message) => send(res, status, { error: { code, message } });
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      const chunks = []; for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'OPTIONS') return send(res, 204);
      const p = url.pathname;
      if (req.method === 'POST' && p === '/v1/register') {
        const b = JSON.parse(body);
        if (users.has(b.login)) return err(res, 409, 'taken', 'login taken');
        users.set(b.login, { id: nextUser++, password: b.password });
        return send(res, 201, { id: users.get(b.login).id });
      }
      if (req.method === 'POST' && p === '/v1/login') {
        const b = JSON.parse(body); const u = users.get(b.login);
        if (!u || u.password !== b.password) return err(res, 401, 'unauthorized', 'bad login');
        const tok = randomBytes(32).toString('base64url'); sessions.set(tok, u.id);
        return send(res, 200, { session: tok, expires_at: Date.now() + 3600e3 });
      }
      const user = sessions.get((req.headers.authorization || '').replace(/^Bearer /, ''));
      if (!user) return err(res, 401, 'unauthorized', 'no session');
      if (req.method === 'POST' && p === '/v1/calls') {
        const id = randomUUID(); calls.set(id, { owner: user, created_at: Date.now(), participants: new Map() });
        return send(res, 201, { call_id: id, router: 'mock' });
      }
      let m = /^\/v1\/calls\/([0-9a-f-]+)$/.exec(p);
      if (m) {
        const c = calls.get(m[1]); if (!c) return err(res, 404, 'not_found', 'no such call');
        if (req.method === 'GET') return send(res, 200, { call_id: m[1], owner: c.owner, created_at: c.created_at, router: 'mock',
          participants: [...c.participants].map(([pid, x]) => ({ participant_id: Number(pid), user_id: x.user_id, role: x.role })) });
        if (req.method === 'DELETE') { calls.delete(m[1]); return send(res, 204); }
      }
      m = /^\/v1\/calls\/([0-9a-f-]+)\/(whip|whep)$/.exec(p);
      if (m && req.method === 'POST') {
        const c = calls.get(m[1]); if (!c) return err(res, 404, 'not_found', 'no such call');
        if (!/^application\/sdp/.test(req.headers['content-type'] || '')) return err(res, 415, 'unsupported', 'want application/sdp');
        const pid = String(1 + Math.floor(Math.random() * 2 ** 40)); const sid = randomUUID();
        let answer;
        if (m[2] === 'whip') {
          answer = await sfuPage.evaluate(([s, x, o]) => sfu.publish(s, x, o), [sid, pid, body]);
          c.participants.set(pid, { user_id: user, role: 'publisher' });
        } else {
          const want = url.searchParams.get('participant');
          if (!want && url.searchParams.get('view') !== 'composite') return err(res, 400, 'bad_request', 'participant or view=composite');
          if (want && !c.participants.has(want)) return err(res, 404, 'not_found', 'no such participant');
          answer = await sfuPage.evaluate(([s, x, o]) => sfu.view(s, x, o), [sid, want, body]);
          c.participants.set(pid, { user_id: user, role: 'subscriber' });
        }
        media.set(sid, { call: m[1], pid, user });
        // Relative Location on purpose: the test must resolve it against the POSTed URL.
        return send(res, 201, answer, { 'Content-Type': 'application/sdp', Location: `/v1/calls/${m[1]}/sessions/${sid}`,
          'X-Participant-Id': pid });
      }
      m = /^\/v1\/calls\/([0-9a-f-]+)\/sessions\/([0-9a-f-]+)$/.exec(p);
      if (m && req.method === 'DELETE') {
        const s = media.get(m[2]); if (!s || s.user !== user) return err(res, 404, 'not_found', 'no such session');
        await sfuPage.evaluate((x) => sfu.close(x), m[2]);
        calls.get(s.call)?.participants.delete(s.pid); media.delete(m[2]);
        return send(res, 204);
      }
      return err(res, 404, 'not_found', 'no such route');
    } catch (e) {
      return err(res, 500, 'internal', String(e && e.message || e));
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { base, close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }) };
}

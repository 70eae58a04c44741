// A tiny static file server on 127.0.0.1 (ephemeral port) for the test pages, with an
// optional POST sink: POST /sink/NAME stores the body, `waitFor(NAME)` resolves with it.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, normalize, extname } from 'node:path';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.json': 'application/json', '.sdp': 'application/sdp' };

export async function serveStatic(root) {
  const posted = new Map();
  const waiters = new Map();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname.startsWith('/sink/')) {
      const name = decodeURIComponent(url.pathname.slice(6));
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks).toString('utf8');
      posted.set(name, body);
      (waiters.get(name) || []).forEach((f) => f(body));
      waiters.delete(name);
      res.writeHead(204, { 'Access-Control-Allow-Origin': '*' }).end();
      return;
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'POST, GET',
        'Access-Control-Allow-Headers': '*' }).end();
      return;
    }
    const rel = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
    if (rel.includes('..')) { res.writeHead(400).end(); return; }
    try {
      const body = await readFile(join(root, rel === '/' ? 'index.html' : rel));
      res.writeHead(200, { 'Content-Type': TYPES[extname(rel)] || 'application/octet-stream',
        'Cache-Control': 'no-store' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    waitFor(name, ms) {
      if (posted.has(name)) return Promise.resolve(posted.get(name));
      return new Promise((ok, fail) => {
        const t = setTimeout(() => fail(new Error(`nothing posted to /sink/${name} within ${ms} ms`)), ms);
        const list = waiters.get(name) || [];
        list.push((b) => { clearTimeout(t); ok(b); });
        waiters.set(name, list);
      });
    },
    close() { return new Promise((ok) => server.close(ok)); },
  };
}

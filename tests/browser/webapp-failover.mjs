#!/usr/bin/env node
// Failover of the web app in real headless Chromium (#16 item 3): two routers of its own (A and
// B, real corecast-router processes registering with calls; the system's own router is drained
// for the run so that the call goes to one of them), two people in one call through the pages;
// `kill -9` of the call's router; both pages re-join through calls on the other router by
// themselves (their legs drop, the ICE restart fails, new WHIP/WHEP sessions) and decode each
// other's video again within --bound seconds of the kill (the measured times are printed); then
// the call store (GET /v1/calls/{id}) lists exactly the two people's legs on the other router.
//
//   make web-e2e                      (runs it after webapp-e2e.mjs, on a system of its own)
//   E2E_TEST=webfailover bash tuning/scripts/browser-e2e.sh
//
// One line per step (PASS/FAIL/SKIP with its time), the summary as JSON, then
// "webapp-failover: N passed, N failed". Every wait is bounded; --timeout bounds the run. The
// routers' pids are written to --pid-file so that browser-e2e.sh stops them whatever happens.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { launchChromium } from './lib/chromium.mjs';
import { results, sleep, Fail, check, line, step, until, closeOutput } from './lib/report.mjs';
import { callStore, joinCall, openPage, pages, register, selfTile, tiles, usePages } from './lib/app-pages.mjs';

const HELP = `usage: webapp-failover.mjs --base URL --bin-dir DIR --secret-file FILE [--bound S] [--timeout S] [--artifacts DIR] [--pid-file FILE] [--json FILE]
  --base URL          the app's origin: the calls service (default $CORECAST_CALLS or http://127.0.0.1:8082)
  --bin-dir DIR       where corecast-router is (default $CORECAST_BIN_DIR or ./target/debug)
  --secret-file FILE  the router secret (default .run/data/router-secret)
  --bound S           kill to video decoding again on both pages, at most (default 10)
  --timeout S         whole run (default 120)
  --artifacts DIR     logs and screenshots (default .run/webapp-failover)
  --pid-file FILE     the routers' pids (default ARTIFACTS/routers.pid)
  --json FILE         also write the summary there`;
const opt = { base: process.env.CORECAST_CALLS || 'http://127.0.0.1:8082', bin: process.env.CORECAST_BIN_DIR || './target/debug',
  secretFile: '.run/data/router-secret', bound: 10, timeout: 120, artifacts: '.run/webapp-failover', pidFile: null, json: null };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i]; const v = () => process.argv[++i];
  if (a === '--base') opt.base = v().replace(/\/+$/, '');
  else if (a === '--bin-dir') opt.bin = v();
  else if (a === '--secret-file') opt.secretFile = v();
  else if (a === '--bound') opt.bound = Number(v());
  else if (a === '--timeout') opt.timeout = Number(v());
  else if (a === '--artifacts') opt.artifacts = v();
  else if (a === '--pid-file') opt.pidFile = v();
  else if (a === '--json') opt.json = v();
  else if (a === '-h' || a === '--help') { console.log(HELP); process.exit(0); } else { console.error(`unknown option ${a}\n${HELP}`); process.exit(2); }
}
opt.pidFile ||= join(opt.artifacts, 'routers.pid');
const t0 = Date.now();

// ---------------------------------------------------------------- routers of the test's own
const secret = () => readFileSync(opt.secretFile, 'utf8').trim();
async function admin(method, path, body) {
  const r = await fetch(`${opt.base}${path}`, { method, headers: { Authorization: `Bearer ${secret()}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? await r.json() : null };
}
// A port free for both UDP (media) and TCP (admin) on 127.0.0.1.
async function freePort() {
  for (;;) {
    const port = await new Promise((res) => { const u = createSocket('udp4'); u.bind(0, '127.0.0.1', () => { const p = u.address().port; u.close(() => res(p)); }); });
    const tcpFree = await new Promise((res) => { const s = createServer(); s.once('error', () => res(false)); s.listen(port, '127.0.0.1', () => s.close(() => res(true))); });
    if (tcpFree) return port;
  }
}
const routers = []; // { name, id, addr, admin, proc }
async function startRouter(name, tag, publicKey) {
  const [udp, tcp] = [await freePort(), await freePort()];
  const r = { name, id: `wf-${name.toLowerCase()}-${tag}`, addr: `127.0.0.1:${udp}`, admin: `127.0.0.1:${tcp}` };
  const log = openSync(join(opt.artifacts, `router-${name}.log`), 'w');
  r.proc = spawn(join(opt.bin, 'corecast-router'), ['--listen', r.addr, '--admin-listen', r.admin, '--calls-url', opt.base,
    '--router-id', r.id, '--public-key-hex', publicKey, '--router-secret-file', opt.secretFile, '--workers', '1',
    '--heartbeat-ms', '500', '--stats-interval', '0'], { stdio: ['ignore', 'ignore', log], env: { ...process.env, RUST_LOG: 'info' } });
  routers.push(r);
  writeFileSync(opt.pidFile, `${routers.map((x) => x.proc.pid).join('\n')}\n`);
  return r;
}
const stopRouters = () => { for (const r of routers) if (r.proc.exitCode === null) r.proc.kill('SIGKILL'); };
process.on('exit', stopRouters);

// ---------------------------------------------------------------- reading the pages
// The tiles of `name` on a page, by participant (the other's publisher): frames decoded. The
// codec pool serves only the system's own router, so the page must stay in HD (the person's
// "Back to HD" if the stalled-video rule moved it to SD).
async function decoded(page, name) {
  if (await page.locator('#back-to-hd').count()) await page.click('#back-to-hd', { timeout: 2000 }).catch(() => {});
  const out = new Map();
  for (const t of await tiles(page)) if (t.name === name) out.set(t.participant, Number(t.framesDecoded) || 0);
  return out;
}
// Waits until a tile of `name` whose participant is not in `old` decodes frames, increasing over
// two samples; returns when its first frame was seen (ms since `since`) and when it was confirmed.
async function decodingAgain(page, name, old, since, ms) {
  let first = null; let seen = null;
  return until(ms, async () => {
    for (const [pid, n] of await decoded(page, name)) {
      if (old.has(pid) || n <= 0) continue;
      if (first === null) first = Date.now() - since;
      if (seen && seen.pid === pid && n > seen.n) return { pid, firstMs: first, confirmedMs: Date.now() - since, frames: n };
      seen = { pid, n };
    }
    return null;
  }, `${name}'s video decoding again on a new leg`);
}

// ---------------------------------------------------------------- the scenario
async function scenario() {
  const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.slice(-8);
  const mk = (n, name) => ({ login: `fo${n}-${tag}`, email: `fo${n}-${tag}@e2e.test`, name, password: `pw-${tag}-secret` });
  const A = mk('a', `Ann ${tag.slice(-3)}`); const B = mk('b', `Ben ${tag.slice(-3)}`);
  const s = {};

  await step('routers', async () => {
    const keys = await (await fetch(`${opt.base}/v1/keys`, { signal: AbortSignal.timeout(5000) })).json();
    await startRouter('A', tag, keys.public_key_hex); await startRouter('B', tag, keys.public_key_hex);
    const listed = await until(20000, async () => {
      const r = await admin('GET', '/v1/routers');
      const ours = routers.map((x) => r.body?.routers?.find((y) => y.id === x.id));
      return ours.every((y) => y && y.live) ? r.body.routers : null;
    }, 'both routers registered and live');
    // Every other router (the system's own) drained for the run: the call goes to A or B.
    s.drained = listed.filter((y) => !routers.some((x) => x.id === y.id) && !y.draining).map((y) => y.id);
    for (const id of s.drained) check((await admin('PATCH', `/v1/routers/${encodeURIComponent(id)}`, { draining: true })).status === 200, `drain ${id}`);
    return { detail: `A ${routers[0].addr}, B ${routers[1].addr}; drained for the run: ${s.drained.join(', ') || 'none'}` };
  });

  await step('call', async () => {
    const pa = await openPage('A', { width: 640, height: 480 }); const pb = await openPage('B', { width: 640, height: 480 });
    await register(pa, A); await register(pb, B);
    await pa.click('#start-call'); await pa.waitForURL('**/c/*');
    s.call = (await pa.inputValue('#share-link')).split('/c/')[1];
    await joinCall(pa);
    await pb.goto(`/c/${s.call}`); await joinCall(pb);
    await until(15000, async () => Number((await selfTile(pa)).sentWidth) > 0 && Number((await selfTile(pb)).sentWidth) > 0, 'both sending');
    for (const [who, other] of [['A', B], ['B', A]]) await decodingAgain(pages[who].page, other.name, new Set(), Date.now(), 20000);
    const st = await callStore(pa, s.call);
    s.on = routers.find((r) => r.addr === st.body.router);
    check(s.on, `the call is on ${st.body.router}, not on A or B`);
    s.other = routers.find((r) => r !== s.on);
    s.before = new Set(st.body.participants.map((p) => p.participant_id));
    return { detail: `call ${s.call} on router ${s.on.name} (${s.on.addr}); both pages decode each other's video; ${s.before.size} legs in the store` };
  }, ['routers']);

  await step('failover', async () => {
    const both = [['A', B], ['B', A]];
    const old = {};
    for (const [who, other] of both) {
      old[who] = new Set((await decoded(pages[who].page, other.name)).keys());
      pages[who].log.push('--- failover step');
    }
    const killed = Date.now();
    s.on.proc.kill('SIGKILL');
    const back = {};
    await Promise.all(both.map(async ([who, other]) => {
      back[who] = await decodingAgain(pages[who].page, other.name, old[who], killed, Math.max(30000, opt.bound * 3000));
    }));
    const worst = Math.max(back.A.confirmedMs, back.B.confirmedMs);
    line(`# failover: kill -9 of router ${s.on.name} -> first frame on a new leg: A ${back.A.firstMs} ms, B ${back.B.firstMs} ms; decoding confirmed (two samples increasing): A ${back.A.confirmedMs} ms, B ${back.B.confirmedMs} ms`);
    check(worst <= opt.bound * 1000, `video decoding again ${worst} ms after the kill (bound ${opt.bound} s)`);
    const how = both.map(([who]) => {
      const l = pages[who].log.slice(pages[who].log.lastIndexOf('--- failover step')).filter((x) => x.includes('corecast:'));
      const moved = l.some((x) => /the call moved to another router/.test(x)) ? 'saw the call move' : 'did not see the call move';
      return `${who}: ${moved}, ${l.length} leg state changes, ${l.filter((x) => /ICE restart failed|still \w+ 8 s after/.test(x)).length} legs reopened after a failed ICE restart`;
    }).join(', ');
    s.killToDecodeMs = { A: back.A.confirmedMs, B: back.B.confirmedMs };
    return { detail: `first frames after ${back.A.firstMs} / ${back.B.firstMs} ms, confirmed after ${back.A.confirmedMs} / ${back.B.confirmedMs} ms (A / B; bound ${opt.bound} s); ${how}`, killToDecodeMs: s.killToDecodeMs };
  }, ['call']);

  await step('store', async () => {
    // Exactly the two people's legs, each one publisher and one subscriber, all opened after
    // the kill, on the other router (those that did not come back are dropped after the grace).
    const me = async (who) => (await pages[who].page.evaluate(async () => (await fetch('/v1/me', { headers: { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` } })).json())).id;
    const ids = { [await me('A')]: 'A', [await me('B')]: 'B' };
    let last = null;
    const t = Date.now();
    const st = await until(15000, async () => {
      last = (await callStore(pages.A.page, s.call)).body;
      const ps = last?.participants || [];
      const legs = ps.map((p) => `${ids[p.user_id] || p.user_id}:${p.role}`).sort().join();
      const fresh = ps.every((p) => !s.before.has(p.participant_id));
      return last?.router === s.other.addr && fresh && legs === 'A:publisher,A:subscriber,B:publisher,B:subscriber' ? last : null;
    }, 'the call store listing exactly the two people on the other router').catch((e) => { throw new Fail(`${e.message}: ${JSON.stringify(last)}`); });
    return { detail: `on ${s.other.name} (${st.router}) after ${Date.now() - t} ms more: ${st.participants.map((p) => `${p.participant_id} (${ids[p.user_id]} ${p.role})`).join(', ')}` };
  }, ['failover']);

  for (const id of s.drained || []) await admin('PATCH', `/v1/routers/${encodeURIComponent(id)}`, { draining: false }).catch(() => {});
}

// ---------------------------------------------------------------- main
let chromium = null;
async function main() {
  mkdirSync(opt.artifacts, { recursive: true });
  chromium = await launchChromium({});
  usePages(opt.base, chromium.browser);
  line(`# chromium ${chromium.version}, app ${opt.base}, routers from ${opt.bin}, bound ${opt.bound} s`);
  await scenario();
}
let finished = false;
const timer = setTimeout(() => { results.push({ step: 'timeout', ok: false, error: `over ${opt.timeout} s` }); line(`FAIL timeout: run took over ${opt.timeout} s`); finish(); }, opt.timeout * 1000);
async function finish() {
  if (finished) return; finished = true; clearTimeout(timer);
  const failed = results.filter((r) => r.ok === false);
  if (failed.length) {
    for (const [n, p] of Object.entries(pages)) {
      line(`# page ${n} at ${p.page.url()}; console (last 30): ${p.log.slice(-30).join(' | ')}`);
      await p.page.screenshot({ path: join(opt.artifacts, `failed-${n}.png`) }).catch(() => {});
    }
  }
  stopRouters();
  const passed = results.filter((r) => r.ok === true).length;
  const skipped = results.filter((r) => r.ok === null).length;
  const summary = { ok: failed.length === 0 && passed > 0, chromium: chromium?.version, base: opt.base, totalMs: Date.now() - t0, steps: results };
  if (opt.json) writeFileSync(opt.json, `${JSON.stringify(summary, null, 2)}\n`);
  line(JSON.stringify(summary));
  line(`webapp-failover: ${passed} passed, ${failed.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
  closeOutput();
  await Promise.race([(async () => {
    for (const p of Object.values(pages)) await p.ctx.close().catch(() => {});
    if (chromium) await chromium.close();
  })(), sleep(5000)]);
  process.exit(summary.ok ? 0 : 1);
}
main().then(finish, (e) => { results.push({ step: 'harness', ok: false, error: String(e && e.stack || e) }); line(`FAIL harness: ${e && e.stack || e}`); finish(); });

#!/usr/bin/env node
// The web app (web/, served by the calls service) in real headless Chromium: people register,
// log in, start, join, mute, switch to SD, leave and end calls through the pages themselves,
// as a person would (clicks and typing; the checks read the pages and, for the call store,
// GET /v1/calls/{id}).
//
//   node tests/browser/webapp-e2e.mjs --base http://127.0.0.1:8082      (against `make run`)
//   make web-e2e                                                        (starts the system too)
//
// One line per step (PASS/FAIL/SKIP with its time), the summary as JSON, then
// "webapp-e2e: N passed, N failed". Exit code 0 only if every step that ran passed. Every wait
// is bounded; --timeout bounds the run. Screenshots go to --artifacts (default
// .run/webapp-e2e); --doc-screenshot FILE also writes the 3-person call there (docs/call.png).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeSync, closeSync, renameSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './lib/chromium.mjs';

const HELP = `usage: webapp-e2e.mjs [--base URL] [--timeout S] [--artifacts DIR] [--doc-screenshot FILE] [--json FILE]
  --base URL             the app's origin: the calls service (default $CORECAST_CALLS or http://127.0.0.1:8082)
  --only S[,S]           steps to run (default all): ${'account,call,media,mute,offline,sd,screen,three,leave,end,ended-join,expired,denied,ice-restart,full'}
  --timeout S            whole run (default 170)
  --artifacts DIR        screenshots (default .run/webapp-e2e)
  --doc-screenshot FILE  also save the 3-person call there (the README's docs/call.png)
  --json FILE            also write the summary there`;
const opt = { base: process.env.CORECAST_CALLS || 'http://127.0.0.1:8082', timeout: 170, artifacts: '.run/webapp-e2e',
  doc: null, json: null, only: null };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i]; const v = () => process.argv[++i];
  if (a === '--base') opt.base = v().replace(/\/+$/, '');
  else if (a === '--timeout') opt.timeout = Number(v());
  else if (a === '--artifacts') opt.artifacts = v();
  else if (a === '--doc-screenshot') opt.doc = v();
  else if (a === '--json') opt.json = v();
  else if (a === '--only') opt.only = v().split(',');
  else if (a === '-h' || a === '--help') { console.log(HELP); process.exit(0); } else { console.error(`unknown option ${a}\n${HELP}`); process.exit(2); }
}

// ---------------------------------------------------------------- reporting (as webrtc-e2e.mjs)
const t0 = Date.now();
const results = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
class Fail extends Error {}
const check = (cond, msg) => { if (!cond) throw new Fail(msg); };
let closed = false;
const line = (s) => { if (!closed) process.stdout.write(`${s}\n`); };
async function step(name, fn, needs = []) {
  if (opt.only && !opt.only.includes(name)) return;
  const missing = needs.filter((n) => !results.find((r) => r.step === n && r.ok));
  if (missing.length) { results.push({ step: name, ok: null, skipped: `needs ${missing.join(', ')}` }); line(`SKIP ${name}: needs ${missing.join(', ')}`); return; }
  const s = Date.now();
  try {
    const info = (await fn()) || {};
    results.push({ step: name, ok: true, ms: Date.now() - s, ...info });
    line(`PASS ${name} (${Date.now() - s} ms)${info.detail ? `: ${info.detail}` : ''}`);
  } catch (e) {
    const msg = e instanceof Fail ? e.message : (e && e.stack) || String(e);
    results.push({ step: name, ok: false, ms: Date.now() - s, error: msg });
    line(`FAIL ${name} (${Date.now() - s} ms): ${msg}`);
  }
}
// Polls fn (returning a truthy value or null) every 200 ms until ms pass.
async function until(ms, fn, what) {
  const end = Date.now() + ms; let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Fail(`${what} not within ${ms} ms`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------- fake camera: 640x360 test pattern
function makeY4m(w = 640, h = 360) {
  const dir = join(tmpdir(), 'corecast-browser-y4m'); mkdirSync(dir, { recursive: true });
  const file = join(dir, `pattern-${w}x${h}.y4m`); const frames = 60;
  if (existsSync(file) && statSync(file).size >= 37 + frames * (6 + w * h * 1.5)) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  const r = existsSync('/usr/bin/ffmpeg') && spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
    `testsrc2=s=${w}x${h}:r=30`, '-frames:v', String(frames), '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', tmp], { stdio: 'ignore', timeout: 60000 });
  if (!(r && r.status === 0 && existsSync(tmp))) { // a moving bar, written here
    const fd = openSync(tmp, 'w'); writeSync(fd, `YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\n`);
    const y = Buffer.alloc(w * h); const uv = Buffer.alloc(w * h / 2, 128);
    for (let f = 0; f < frames; f++) {
      y.fill(90); const x0 = Math.floor(f * w / frames);
      for (let row = 0; row < h; row++) y.fill(235, row * w + x0, row * w + Math.min(w, x0 + 32));
      writeSync(fd, 'FRAME\n'); writeSync(fd, y); writeSync(fd, uv);
    }
    closeSync(fd);
  }
  renameSync(tmp, file);
  return file;
}

// ---------------------------------------------------------------- pages
let chromium = null;
const pages = {};
async function openPage(who, viewport) {
  const ctx = await chromium.browser.newContext({ viewport, baseURL: opt.base });
  const page = await ctx.newPage();
  const log = [];
  page.on('console', (m) => { log.push(`${m.type()}: ${m.text()}`); if (log.length > 100) log.shift(); });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(10000);
  pages[who] = { page, ctx, log };
  return page;
}
const text = async (page, sel) => (await page.locator(sel).first().textContent({ timeout: 10000 })).trim();
const token = (page) => page.evaluate(() => localStorage.getItem('corecast.session'));
async function callStore(page, call) {
  const r = await fetch(`${opt.base}/v1/calls/${call}`, { headers: { Authorization: `Bearer ${await token(page)}` }, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: r.status === 200 ? await r.json() : null };
}
// The remote tiles a page shows, with what their data-* say.
const tiles = (page) => page.$$eval('.tile:not(.self)', (els) => els.map((e) => ({ ...e.dataset, videoWidth: e.querySelector('video').videoWidth })));
// A tile of `name` decoding frames, at the sender's size: two samples 1.5 s apart.
async function playing(page, name, sent, ms = 20000) {
  const pick = async () => (await tiles(page)).find((t) => t.name === name && Number(t.framesDecoded) > 0);
  const a = await until(ms, pick, `a playing tile of ${name}`);
  await sleep(1500);
  const b = await pick();
  check(b && Number(b.framesDecoded) > Number(a.framesDecoded), `${name}'s tile: frames decoded not increasing (${a.framesDecoded} → ${b && b.framesDecoded})`);
  if (sent) check(`${b.frameWidth}x${b.frameHeight}` === `${sent.sentWidth}x${sent.sentHeight}`, `${name}: received ${b.frameWidth}x${b.frameHeight}, sent ${sent.sentWidth}x${sent.sentHeight}`);
  check(b.videoWidth > 0, `${name}: the video element shows no picture`);
  return b;
}
const selfTile = (page) => page.$eval('.tile.self', (e) => ({ ...e.dataset }));

async function register(page, u, { expectError } = {}) {
  await page.goto('/register');
  await page.fill('#login', u.login); await page.fill('#email', u.email); await page.fill('#name', u.name); await page.fill('#password', u.password);
  await page.click('button[type=submit]');
  if (expectError) { await page.locator(`${expectError}:not(:empty)`).waitFor(); return text(page, expectError); }
  await page.waitForURL((url) => url.pathname === '/' || url.pathname.startsWith('/c/'));
  return null;
}
async function login(page, u, password = u.password) {
  await page.fill('#login', u.login); await page.fill('#password', password);
  await page.click('button[type=submit]');
}
async function joinCall(page) {
  await page.click('#join');
  await page.locator('#leave').waitFor({ timeout: 20000 });
}

// ---------------------------------------------------------------- the scenario
async function scenario() {
  const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.slice(-8);
  const mk = (n, name) => ({ login: `w${n}-${tag}`, email: `w${n}-${tag}@e2e.test`, name, password: `pw-${tag}-secret` });
  const A = mk('a', `Alice ${tag.slice(-3)}`); const B = mk('b', `Bob ${tag.slice(-3)}`); const C = mk('c', `Carol ${tag.slice(-3)}`);
  const s = {};
  mkdirSync(opt.artifacts, { recursive: true });

  await step('account', async () => {
    const pa = await openPage('A', { width: 1280, height: 720 });
    const pb = await openPage('B', { width: 390, height: 844 }); // a phone
    // A: a validation error next to its field, then a good registration.
    const bad = await register(pa, { ...A, email: 'not-an-email' }, { expectError: '#email-error' });
    check(/email/i.test(bad), `bad email: ${bad}`);
    await pa.fill('#email', A.email); await pa.click('button[type=submit]');
    await pa.waitForURL((u) => u.pathname === '/');
    check((await text(pa, '#whoami')).includes(A.name), 'A: who am I shows the name');
    // B: A's login again is refused next to the login field; then B's own.
    const dup = await register(pb, { ...B, login: A.login }, { expectError: '#login-error' });
    check(/taken/i.test(dup), `duplicate registration: ${dup}`);
    await register(pb, B);
    // B logs out, a wrong password is refused, the right one logs in.
    await pb.click('#logout'); await pb.waitForURL('**/login');
    await login(pb, B, 'wrong-password');
    const wrong = await text(pb, '#form-error:not(:empty)');
    check(/wrong login or password/i.test(wrong), `wrong password: ${wrong}`);
    await login(pb, B); await pb.waitForURL((u) => u.pathname === '/');
    check((await text(pb, '#whoami')).includes(B.name), 'B: who am I after login');
    return { detail: `email "${bad}", duplicate "${dup}", wrong password "${wrong}"` };
  });

  await step('call', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pa.click('#start-call');
    await pa.waitForURL('**/c/*');
    s.link = await pa.inputValue('#share-link');
    s.call = s.link.split('/c/')[1];
    check(s.link === `${opt.base}/c/${s.call}`, `share link ${s.link}`);
    await joinCall(pa);
    await pb.goto(s.link);
    await joinCall(pb);
    return { detail: `call ${s.call}` };
  }, ['account']);

  await step('media', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await until(15000, async () => Number((await selfTile(pa)).sentWidth) > 0 && Number((await selfTile(pb)).sentWidth) > 0, 'both sending');
    const onB = await playing(pb, A.name, await selfTile(pa));
    const onA = await playing(pa, B.name, await selfTile(pb));
    const peopleA = await text(pa, '#people');
    check(peopleA.includes(B.name), `A's people list: ${peopleA}`);
    return { detail: `B shows ${A.name} at ${onB.frameWidth}x${onB.frameHeight} (${onB.framesDecoded} frames), A shows ${B.name} at ${onA.frameWidth}x${onA.frameHeight} (${onA.framesDecoded} frames)` };
  }, ['call']);

  await step('mute', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    const t = Date.now();
    await pa.click('#mic');
    check(await pa.getAttribute('#mic', 'aria-pressed') === 'true', 'A: the mic button is not pressed');
    await until(2000, async () => (await tiles(pb)).find((x) => x.name === A.name && x.audioMuted === 'true'), 'B shows A muted');
    const ms = Date.now() - t;
    await pa.click('#mic');
    await until(3000, async () => (await tiles(pb)).find((x) => x.name === A.name && x.audioMuted === 'false'), 'B shows A unmuted');
    return { detail: `B showed A muted ${ms} ms after the click` };
  }, ['media']);

  await step('offline', async () => {
    // A loses the network (HTTP; media keeps its own path): the page says so, and recovers.
    const { page: pa, ctx } = pages.A;
    await ctx.setOffline(true);
    let msg;
    try { msg = await text(pa, '#poll-error'); } finally { await ctx.setOffline(false); }
    check(/lost contact/i.test(msg), `offline: ${msg}`);
    await pa.locator('#poll-error').waitFor({ state: 'detached', timeout: 5000 });
    await playing(pa, B.name, null);
    return { detail: `"${msg}", then gone` };
  }, ['media']);

  await step('sd', async () => {
    const { page: pb } = pages.B;
    await pb.click('#view-sd');
    const c = await until(25000, async () => (await tiles(pb)).find((x) => x.participant === 'composite' && Number(x.framesDecoded) > 0), 'a composite frame');
    await sleep(1500);
    const c2 = (await tiles(pb)).find((x) => x.participant === 'composite');
    check(Number(c2.framesDecoded) > Number(c.framesDecoded), 'composite frames not increasing');
    check(!(await tiles(pb)).some((x) => x.name === A.name), 'SD still shows the per-person tile');
    await pb.click('#view-sd'); // back to HD
    await playing(pb, A.name, null);
    return { detail: `composite ${c2.frameWidth}x${c2.frameHeight}, ${c2.framesDecoded} frames; HD again` };
  }, ['media']);

  await step('screen', async () => {
    // A shares the screen (Chromium's fake screen, 30 fps; the app sends it with three
    // temporal layers): B receives it as a tile of its own; asking for at most 8 fps, B gets
    // no more than that while A sends more (the router drops the upper temporal layers).
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    const CAP = 8;
    await pa.click('#share-screen');
    await pa.locator('.tile.self.screen').waitFor({ timeout: 15000 });
    check(await pa.getAttribute('#share-screen', 'aria-pressed') === 'true', 'A: the share button is not pressed');
    const name = `${A.name}'s screen`;
    const full = await playing(pb, name, null, 25000);
    check(await pb.locator(`.tile.screen[data-name="${name}"]`).count() === 1, "B's screen tile is not marked as a screen share");
    // Frames A's screen sender sent and B's screen tile decoded over `ms`, per second.
    const rates = async (ms) => {
      const sent = async () => Number(await pa.$eval('.tile.self.screen', (e) => e.dataset.framesSent || 0));
      const got = async () => Number(((await tiles(pb)).find((t) => t.name === name) || {}).framesDecoded || 0);
      const [s0, g0] = [await sent(), await got()];
      await sleep(ms);
      const [s1, g1] = [await sent(), await got()];
      return { sent: (s1 - s0) * 1000 / ms, got: (g1 - g0) * 1000 / ms };
    };
    const before = await rates(3000);
    await pb.selectOption('#screen-fps', String(CAP));
    await until(20000, async () => Number(((await tiles(pb)).find((t) => t.name === name) || {}).framesDecoded || 0) > 0, "B's capped screen session decoding");
    await sleep(2000); // the router measures the layers' rates over its first second
    const capped = await rates(5000);
    const fmt = (r) => `${r.sent.toFixed(1)} fps sent, ${r.got.toFixed(1)} received`;
    check(capped.got > 0, `nothing received at the cap: ${fmt(capped)}`);
    check(capped.got <= CAP * 1.25, `asked for at most ${CAP} fps, received ${fmt(capped)}`);
    check(capped.sent >= 12, `A's screen sender made only ${capped.sent.toFixed(1)} fps: too few to show the cap (${fmt(capped)})`);
    check(capped.got <= capped.sent * 0.6, `the router did not thin the stream: ${fmt(capped)}`);
    await pb.selectOption('#screen-fps', '');
    await pa.click('#share-screen');
    await until(8000, async () => !(await tiles(pb)).some((t) => t.name === name), "B's screen tile gone after A stopped");
    check(await pa.locator('.tile.self.screen').count() === 0, "A's own screen tile still shown");
    return { detail: `B showed ${name} at ${full.frameWidth}x${full.frameHeight}; uncapped ${fmt(before)}; at most ${CAP} fps: ${fmt(capped)}` };
  }, ['media']);

  await step('three', async () => {
    const pc = await openPage('C', { width: 640, height: 480 });
    await register(pc, C);
    await pc.goto(s.link);
    await joinCall(pc);
    for (const [who, others] of [['A', [B, C]], ['B', [A, C]], ['C', [A, B]]]) {
      for (const o of others) await playing(pages[who].page, o.name, null, 25000);
    }
    await sleep(500);
    const shot = join(opt.artifacts, 'call-3-people.png');
    await pages.A.page.screenshot({ path: shot });
    if (opt.doc) copyFileSync(shot, opt.doc);
    await pages.B.page.screenshot({ path: join(opt.artifacts, 'call-3-people-phone.png'), fullPage: true });
    await pc.click('#leave');
    await until(5000, async () => (await tiles(pages.A.page)).length === 1, 'A shows C gone');
    return { detail: `screenshot ${shot}${opt.doc ? ` and ${opt.doc}` : ''}` };
  }, ['media']);

  await step('leave', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pb.click('#leave');
    await pb.locator('#rejoin').waitFor();
    await until(5000, async () => (await tiles(pa)).length === 0, "A's grid empty");
    const me = await pa.evaluate(async () => (await fetch('/v1/me', { headers: { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` } })).json());
    const st = await until(5000, async () => {
      const r = await callStore(pa, s.call);
      return r.status === 200 && r.body.participants.length > 0 && r.body.participants.every((p) => p.user_id === me.id) ? r : null;
    }, 'the call store listing only A');
    return { detail: `store: ${st.body.participants.map((p) => `${p.participant_id} (${p.role}, user ${p.user_id})`).join(', ')}` };
  }, ['media']);

  await step('end', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pb.click('#rejoin');
    await joinCall(pb);
    await playing(pa, B.name, null);
    await pa.click('#end');
    await pb.locator('#ended').waitFor({ timeout: 5000 });
    const h1 = await text(pb, '#ended h1');
    check(/the call has ended/i.test(h1), `B: ${h1}`);
    const r = await callStore(pa, s.call);
    check(r.status === 404, `the call store still has the call: ${r.status}`);
    return { detail: `B: "${h1}"; GET the call: 404` };
  }, ['leave']);

  await step('ended-join', async () => {
    const { page: pb } = pages.B;
    await pb.goto(s.link);
    await pb.click('#join');
    const msg = await text(pb, '#call-ended');
    check(/ended/i.test(msg), `joining an ended call: ${msg}`);
    return { detail: msg };
  }, ['end']);

  await step('expired', async () => {
    const { page: pb } = pages.B;
    await pb.evaluate(() => localStorage.setItem('corecast.session', 'A'.repeat(43)));
    const link = `${opt.base}/c/${s.call || '67e55044-10b1-426f-9247-bb680e5fe0c8'}`;
    await pb.goto(link);
    await pb.waitForURL('**/login?*');
    const u = new URL(pb.url());
    check(u.searchParams.get('next') === new URL(link).pathname, `next=${u.searchParams.get('next')}`);
    const notice = await text(pb, '.banner');
    await login(pb, B);
    await pb.waitForURL(link);
    return { detail: `"${notice}"; back at ${new URL(link).pathname} after logging in` };
  }, ['account']);

  await step('denied', async () => {
    // A second Chromium without --use-fake-ui-for-media-stream: headless, nobody answers the
    // permission prompt, so camera and microphone are refused as when a person blocks them.
    const { chromium: pw } = await import('playwright-core');
    const { chromiumArgs, CHROMIUM } = await import('./lib/chromium.mjs');
    const browser = await pw.launch({ executablePath: CHROMIUM, headless: true, ignoreDefaultArgs: ['--headless'],
      args: chromiumArgs({}).filter((a) => a !== '--use-fake-ui-for-media-stream'), timeout: 30000 });
    try {
      const ctx = await browser.newContext({ baseURL: opt.base });
      const page = await ctx.newPage();
      await page.goto(`/login?next=${encodeURIComponent(`/c/${s.call || '67e55044-10b1-426f-9247-bb680e5fe0c8'}`)}`);
      await login(page, B);
      const msg = await text(page, '#call-status .banner');
      check(/microphone is blocked/i.test(msg) && /camera is blocked/i.test(msg), `permission denied: ${msg}`);
      check(await page.locator('#media-retry').isVisible(), 'no "Try again" button');
      return { detail: msg };
    } finally { await browser.close().catch(() => {}); }
  }, ['account']);

  await step('ice-restart', async () => {
    // The app's own WHIP session (web/app/webrtc.js, imported by the page) restarts ICE by
    // PATCH against the real router: new credentials both ways, media flows on.
    const { page: pa } = pages.A;
    await pa.goto('/');
    const r = await pa.evaluate(async () => {
      const { Leg, getMedia } = await import('/app/webrtc.js');
      const auth = { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` };
      const call = (await (await fetch('/v1/calls', { method: 'POST', headers: auth })).json()).call_id;
      const { stream } = await getMedia();
      const leg = await new Leg({ callId: call, kind: 'whip', stream }).open();
      const connected = async () => { for (let i = 0; i < 100 && leg.pc.connectionState !== 'connected'; i++) await new Promise((ok) => setTimeout(ok, 100)); return leg.pc.connectionState; };
      const sent = async () => { let b = 0; (await leg.pc.getStats()).forEach((x) => { if (x.type === 'outbound-rtp') b += x.bytesSent; }); return b; };
      const ufrag = () => /a=ice-ufrag:(\S+)/.exec(leg.pc.remoteDescription.sdp)[1];
      // The selected candidate pair and its checks answered (a restart makes new pairs).
      const pair = async () => { const st = await leg.pc.getStats(); let p = null;
        st.forEach((x) => { if (x.type === 'transport' && x.selectedCandidatePairId) p = st.get(x.selectedCandidatePairId); });
        return p ? { id: p.id, responses: p.responsesReceived } : null; };
      const out = { first: await connected(), before: ufrag(), pairBefore: await pair() };
      await leg.restartIce();
      out.after = ufrag(); out.second = await connected();
      for (let i = 0; i < 50; i++) {
        out.pairAfter = await pair();
        if (out.pairAfter && out.pairAfter.id !== out.pairBefore?.id && out.pairAfter.responses > 0) break;
        await new Promise((ok) => setTimeout(ok, 100));
      }
      const b0 = await sent(); await new Promise((ok) => setTimeout(ok, 1500)); out.bytes = (await sent()) - b0;
      leg.close(); stream.getTracks().forEach((t) => t.stop());
      await fetch(`/v1/calls/${call}`, { method: 'DELETE', headers: auth });
      return out;
    });
    check(r.first === 'connected' && r.second === 'connected', `connection: ${r.first}, after the restart ${r.second}`);
    check(r.after !== r.before, `the router's ufrag did not change (${r.before})`);
    check(r.pairAfter && r.pairAfter.id !== r.pairBefore?.id && r.pairAfter.responses > 0,
      `no new candidate pair answered by the router after the restart: ${JSON.stringify([r.pairBefore, r.pairAfter])}`);
    check(r.bytes > 0, 'nothing sent after the restart');
    return { detail: `router ufrag ${r.before} → ${r.after}, new pair answered ${r.pairAfter.responses} checks, ${r.bytes} bytes sent in 1.5 s after` };
  }, ['account']);

  await step('full', async () => {
    // A new call filled to the service's cap with native joins of fresh users; B's join is refused.
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pa.goto('/'); await pa.click('#start-call'); await pa.waitForURL('**/c/*');
    const call = (await pa.inputValue('#share-link')).split('/c/')[1];
    let n = 0;
    for (; n < 40; n++) {
      const u = { login: `f${n}-${tag}`, password: 'filler-password' };
      const reg = await fetch(`${opt.base}/v1/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...u, email: `f${n}-${tag}@e2e.test`, name: `Filler ${n}` }) });
      check(reg.status === 201, `register filler: ${reg.status}`);
      const { session } = await (await fetch(`${opt.base}/v1/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(u) })).json();
      const j = await fetch(`${opt.base}/v1/calls/${call}/join`, { method: 'POST', headers: { Authorization: `Bearer ${session}` } });
      if (j.status === 409) break;
      check(j.status === 200, `filler join: ${j.status}`);
    }
    await pb.goto(`/c/${call}`);
    await pb.click('#join');
    const msg = await text(pb, '#call-full');
    check(/full/i.test(msg), `full call: ${msg}`);
    await pa.evaluate(async (id) => fetch(`/v1/calls/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` } }), call);
    return { detail: `after ${n} joins: "${msg}"` };
  }, ['account']);
}

// ---------------------------------------------------------------- main
async function main() {
  const y4m = makeY4m();
  chromium = await launchChromium({ y4m });
  line(`# chromium ${chromium.version}, app ${opt.base}, fake camera 640x360 (${y4m})`);
  await scenario();
}
let finished = false;
const timer = setTimeout(() => { results.push({ step: 'timeout', ok: false, error: `over ${opt.timeout} s` }); line(`FAIL timeout: run took over ${opt.timeout} s`); finish(); }, opt.timeout * 1000);
async function finish() {
  if (finished) return; finished = true; clearTimeout(timer);
  const failed = results.filter((r) => r.ok === false);
  if (failed.length) {
    for (const [n, p] of Object.entries(pages)) {
      line(`# page ${n} at ${p.page.url()}; console (last 10): ${p.log.slice(-10).join(' | ')}`);
      await p.page.screenshot({ path: join(opt.artifacts, `failed-${n}.png`) }).catch(() => {});
    }
  }
  const passed = results.filter((r) => r.ok === true).length;
  const skipped = results.filter((r) => r.ok === null).length;
  const summary = { ok: failed.length === 0 && passed > 0, chromium: chromium?.version, base: opt.base, totalMs: Date.now() - t0, steps: results };
  if (opt.json) writeFileSync(opt.json, `${JSON.stringify(summary, null, 2)}\n`);
  line(JSON.stringify(summary));
  line(`webapp-e2e: ${passed} passed, ${failed.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
  closed = true;
  await Promise.race([(async () => {
    for (const p of Object.values(pages)) await p.ctx.close().catch(() => {});
    if (chromium) await chromium.close();
  })(), sleep(5000)]);
  process.exit(summary.ok ? 0 : 1);
}
main().then(finish, (e) => { results.push({ step: 'harness', ok: false, error: String(e && e.stack || e) }); line(`FAIL harness: ${e && e.stack || e}`); finish(); });

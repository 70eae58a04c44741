#!/usr/bin/env node
// corecast's real-browser end-to-end test: headless Chromium publishes over WHIP and views over
// WHEP through the calls service and the router; or, with --selftest, two pages call each other
// over loopback with no corecast at all (proves the browser, its flags and the fake camera work).
//
//   node tests/browser/webrtc-e2e.mjs --calls http://127.0.0.1:8082 --auth http://127.0.0.1:8081
//   node tests/browser/webrtc-e2e.mjs --selftest
//   node tests/browser/webrtc-e2e.mjs --only whip-whep        (groups: whip-whep, composite, leave, svc)
//
// Prints one line per step (PASS/FAIL/SKIP, its time and numbers), then the summary as one JSON
// line, then "webrtc-e2e: N passed, N failed". Exit code 0 only if every step that ran passed.
// See --help for the options; tests/browser/README.md for what is assumed about the HTTP API.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeSync, closeSync, writeFileSync, statSync, renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './lib/server.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { http } from './lib/api.mjs';
import { Fail, check } from './lib/report.mjs';
import { startMock } from './lib/mock-corecast.mjs';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- options
const HELP = `usage: webrtc-e2e.mjs [options]
  --selftest            no corecast: two pages, loopback RTCPeerConnection pair, media checks
  --mock                the corecast scenario against an in-process mock of auth + calls whose
                        WHIP/WHEP media side is a relay page in the same browser (checks this
                        script, the pages and the CORS contract; not corecast)
  --calls URL           calls service (default $CORECAST_CALLS or http://127.0.0.1:8082)
  --auth URL            auth service (default $CORECAST_AUTH or http://127.0.0.1:8081)
  --only G[,G]          groups to run: whip-whep, composite, leave, svc (default: all four)
  --seconds N           media time before the checks (default 10)
  --codec C             av1 (default: AV1 first, then VP8, H.264), vp8, h264, none (browser's order)
  --picture P           busy (default: noise, so the encoder wants > 1 Mbps) or plain (flat, moving)
  --grain N             busy picture's block size in pixels (default 16)
  --size WxH            fake camera size (default 640x360)
  --signal S            page (default: the pages fetch WHIP/WHEP themselves, cross-origin, as a web
                        app would; needs CORS on calls) or node (the test POSTs; no CORS needed)
  --min-frames N        B's framesDecoded after --seconds (default 200, 100 with --mock; scaled
                        with --seconds)
  --min-kbps N          A's video send rate over the last 2.5 s (default 500; 0 with --picture plain)
  --composite-wait S    seconds for the composite viewer to decode a frame (default 20)
  --timeout S           whole run (default 150); a run over it fails and stops
  --json FILE           also write the summary there
  --keep-open S         keep the pages open S seconds after the checks (debugging)`;

function parseArgs(argv) {
  const o = { calls: process.env.CORECAST_CALLS || 'http://127.0.0.1:8082',
    auth: process.env.CORECAST_AUTH || 'http://127.0.0.1:8081', only: null, seconds: 10, codec: 'av1',
    picture: 'busy', grain: 16, size: '640x360', signal: 'page', minFrames: null, minKbps: null, compositeWait: 20,
    timeout: 150, json: null, keepOpen: 0, selftest: false, mock: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]; const v = () => { if (i + 1 >= argv.length) die(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--selftest': o.selftest = true; break;
      case '--mock': o.mock = true; break;
      case '--calls': o.calls = v(); break;
      case '--auth': o.auth = v(); break;
      case '--only': o.only = v().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--seconds': o.seconds = Number(v()); break;
      case '--codec': o.codec = v(); break;
      case '--picture': o.picture = v(); break;
      case '--size': o.size = v(); break;
      case '--grain': o.grain = Number(v()); break;
      case '--signal': o.signal = v(); break;
      case '--min-frames': o.minFrames = Number(v()); break;
      case '--min-kbps': o.minKbps = Number(v()); break;
      case '--composite-wait': o.compositeWait = Number(v()); break;
      case '--timeout': o.timeout = Number(v()); break;
      case '--json': o.json = v(); break;
      case '--keep-open': o.keepOpen = Number(v()); break;
      case '-h': case '--help': console.log(HELP); process.exit(0); break;
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  const m = /^(\d+)x(\d+)$/.exec(o.size); if (!m) die('--size is WxH');
  o.width = Number(m[1]); o.height = Number(m[2]);
  if (!['av1', 'vp8', 'h264', 'none'].includes(o.codec)) die('--codec: av1, vp8, h264 or none');
  if (!['busy', 'plain'].includes(o.picture)) die('--picture: busy or plain');
  if (!['page', 'node'].includes(o.signal)) die('--signal: page or node');
  // 200 frames in 10 s at 30 fps leaves ~3 s for connecting and the first key frame.
  // --mock relays through a page that decodes and re-encodes: half that (on 2 busy cores).
  if (o.minFrames === null) o.minFrames = Math.round((o.mock ? 100 : 200) * o.seconds / 10);
  if (o.minKbps === null) o.minKbps = o.picture === 'busy' ? 500 : 0;
  o.calls = o.calls.replace(/\/+$/, ''); o.auth = o.auth.replace(/\/+$/, '');
  return o;
}
function die(msg) { console.error(msg); process.exit(2); }
const opt = parseArgs(process.argv.slice(2));
const CODECS = { av1: ['video/av1', 'video/vp8', 'video/h264'], vp8: ['video/vp8'], h264: ['video/h264'], none: [] };

// ---------------------------------------------------------------- reporting
const t0 = Date.now();
const results = [];
const measured = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let closed = false; // set once the summary is out: nothing printed after it
function line(s) { if (!closed) process.stdout.write(s + '\n'); }

// Runs one step: PASS/FAIL line with its time; a failed step's dependants are skipped.
async function step(name, fn, needs = []) {
  const missing = needs.filter((n) => !results.find((r) => r.step === n && r.ok));
  if (missing.length) {
    results.push({ step: name, ok: null, skipped: `needs ${missing.join(', ')}` });
    line(`SKIP ${name}: needs ${missing.join(', ')}`);
    return;
  }
  const s = Date.now();
  try {
    const info = (await fn()) || {};
    const ms = Date.now() - s;
    results.push({ step: name, ok: true, ms, ...info });
    line(`PASS ${name} (${ms} ms)${info.detail ? ': ' + info.detail : ''}`);
  } catch (e) {
    const ms = Date.now() - s;
    const msg = e instanceof Fail ? e.message : (e && e.stack) || String(e);
    results.push({ step: name, ok: false, ms, error: msg });
    line(`FAIL ${name} (${ms} ms): ${msg}`);
  }
}

// ---------------------------------------------------------------- fake camera
// A y4m file for --use-file-for-fake-video-capture (Chromium loops it). busy: new random grey
// levels every frame in GRAINxGRAIN blocks (ffmpeg's geq when there is ffmpeg, else written
// here), so the encoder has bits to spend: 16x16 (or 8x8) blocks at 640x360 fill Chromium's
// 1.7 Mbps cap for 360p at 30 fps, 16x16 at a lower encode cost (per-pixel noise is so
// incompressible that the encoders drop to ~4 fps to hold their target); plain: a flat picture with a moving bar (~10 kbps, cheapest to encode).
function makeY4m(kind, w, h, grain = opt.grain) {
  const dir = join(tmpdir(), 'corecast-browser-y4m'); mkdirSync(dir, { recursive: true });
  const file = join(dir, kind === 'busy' ? `busy${grain}-${w}x${h}.y4m` : `${kind}-${w}x${h}.y4m`);
  const frames = 60; const want = 37 + frames * (6 + w * h * 1.5);
  if (existsSync(file) && statSync(file).size >= want) return { file, by: 'cache' };
  const tmp = `${file}.${process.pid}.tmp`; // written aside, renamed: runs at once never see half a file
  if (kind === 'busy' && existsSync('/usr/bin/ffmpeg')) {
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
      `nullsrc=s=${Math.ceil(w / grain)}x${Math.ceil(h / grain)}:r=30,geq=lum='random(1)*255':cb=128:cr=128,` +
      `scale=${w}:${h}:flags=neighbor`, '-frames:v', String(frames),
      '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', tmp], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 });
    if (r.status === 0 && existsSync(tmp)) { renameSync(tmp, file); return { file, by: 'ffmpeg' }; }
  }
  const fd = openSync(tmp, 'w');
  writeSync(fd, `YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\n`);
  const y = Buffer.alloc(w * h); const uv = Buffer.alloc(w * h / 2, 128);
  for (let f = 0; f < frames; f++) {
    if (kind === 'busy') {
      const bw = Math.ceil(w / grain); const lv = randomBytes(bw * Math.ceil(h / grain));
      for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) y[r * w + c] = lv[Math.floor(r / grain) * bw + Math.floor(c / grain)];
    }
    else { y.fill(90); const x0 = Math.floor(f * w / frames); for (let r = 0; r < h; r++) y.fill(235, r * w + x0, r * w + Math.min(w, x0 + 32)); }
    writeSync(fd, 'FRAME\n'); writeSync(fd, y); writeSync(fd, uv);
  }
  closeSync(fd);
  renameSync(tmp, file);
  return { file, by: 'node' };
}

// ---------------------------------------------------------------- pages
let chromium = null; let server = null; let mock = null;
const pages = {};
async function openPage(name) {
  const ctx = await chromium.browser.newContext({ viewport: { width: 360, height: 200 } });
  const page = await ctx.newPage();
  const consoleLines = [];
  page.on('console', (m) => { consoleLines.push(`${m.type()}: ${m.text()}`); if (consoleLines.length > 200) consoleLines.shift(); });
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${server.base}/peer.html?role=${name}`, { timeout: 15000 });
  pages[name] = { page, ctx, consoleLines };
  return page;
}
const ev = (name, fn, arg) => pages[name].page.evaluate(fn, arg);
const stats = (name) => ev(name, () => cc.stats());
async function waitConnected(name, ms) {
  const r = await ev(name, (m) => cc.waitConnected(m), ms);
  check(r.ok, `${name}: not connected within ${ms} ms (connection ${r.state}, ice ${r.ice}); page log: ` +
    (await ev(name, () => cc.log())).slice(-8).join(' | '));
  // From the answer being set, when the page saw it (the selftest's answerer sets none: its wait).
  return r.connectMs ?? r.ms;
}

// WHIP/WHEP POST of `sdp` from the page (or from here with --signal node), answer applied.
async function signal(name, url, token, sdp) {
  let r; const t = Date.now();
  if (opt.signal === 'page') {
    r = await ev(name, ([u, t, s]) => cc.signal(u, t, s), [url, token, sdp]);
    check(!r.error, r.error);
  } else {
    const h = await http('POST', url, { token, body: sdp, type: 'application/sdp' });
    r = { status: h.status, location: h.headers.get('location'), participantId: h.headers.get('x-participant-id'),
      contentType: h.headers.get('content-type'), body: h.text };
    if (h.status === 201) await ev(name, (s) => cc.answer(s), h.text);
  }
  check(r.status === 201, `POST ${url}: ${r.status} ${String(r.body).slice(0, 300)}`);
  check(r.location, `POST ${url}: 201 without Location${opt.signal === 'page' ? ' (or not exposed to the page: Access-Control-Expose-Headers)' : ''}`);
  check(/^v=0/.test(r.body), `POST ${url}: the answer is not SDP: ${String(r.body).slice(0, 200)}`);
  return { ...r, postMs: Date.now() - t, location: new URL(r.location, url).href };
}

// Two stats samples `gapMs` apart on the publisher: kbps of video sent in between.
async function sendRate(name, gapMs) {
  const a = await stats(name); await sleep(gapMs); const b = await stats(name);
  const kbps = Math.round(((b.outVideo?.bytesSent ?? 0) - (a.outVideo?.bytesSent ?? 0)) * 8 / (b.ts - a.ts));
  const fps = Math.round(((b.outVideo?.framesEncoded ?? 0) - (a.outVideo?.framesEncoded ?? 0)) * 10000 / (b.ts - a.ts)) / 10;
  return { kbps, fps, last: b };
}

// The media checks shared by the self test and WHIP→WHEP: after `seconds` of media,
// the viewer has decoded enough frames at the publisher's size and heard audio, and the
// publisher sends fast (it only ramps up with congestion feedback).
async function checkMedia(pub, view, startedAt) {
  const rateWindow = 2500;
  const wait = opt.seconds * 1000 - (Date.now() - startedAt) - rateWindow;
  if (process.env.E2E_TRACE) {
    for (let t = 0; t < wait; t += 500) {
      const v = (await stats(view)).inVideo || {}; const o = (await stats(pub)).outVideo || {};
      console.log(`# trace ${Date.now() - startedAt} ms: viewer packets ${v.packetsReceived} frames ${v.framesReceived}/${v.framesDecoded} key ${v.keyFramesDecoded} pli ${v.pliCount}; publisher frames ${o.framesEncoded} key ${o.keyFramesEncoded} pli ${o.pliCount}`);
      await sleep(500);
    }
  } else if (wait > 0) await sleep(wait);
  const { kbps, fps, last: a } = await sendRate(pub, rateWindow);
  const load = loadavg()[0].toFixed(1);
  const b = await stats(view);
  const m = {
    seconds: Math.round((Date.now() - startedAt) / 100) / 10,
    sendKbps: kbps, encodeFps: fps, loadAverage: Number(load), sent: a.outVideo, received: b.inVideo, audio: b.inAudio, rtt: b.pair?.rtt ?? null,
    availableOutgoingKbps: a.pair?.availableOutgoingBitrate ? Math.round(a.pair.availableOutgoingBitrate / 1000) : null,
  };
  const errs = [];
  const iv = b.inVideo || {}; const ov = a.outVideo || {};
  if (!((iv.framesDecoded ?? 0) >= opt.minFrames)) errs.push(`framesDecoded ${iv.framesDecoded ?? 'none'} < ${opt.minFrames}`);
  if (!(iv.frameWidth === ov.frameWidth && iv.frameHeight === ov.frameHeight && iv.frameWidth))
    errs.push(`received ${iv.frameWidth}x${iv.frameHeight} != sent ${ov.frameWidth}x${ov.frameHeight}`);
  if (!((b.inAudio?.packetsReceived ?? 0) > 0)) errs.push(`audio packetsReceived ${b.inAudio?.packetsReceived ?? 'none'}`);
  if (opt.minKbps > 0 && !(kbps > opt.minKbps)) errs.push(`video send rate ${kbps} kbps <= ${opt.minKbps} (limited by ${ov.qualityLimitationReason}; no congestion feedback?)`);
  const detail = `decoded ${iv.framesDecoded} frames ${iv.frameWidth}x${iv.frameHeight} (${iv.codec}, ${iv.decoder}), ` +
    `sent ${ov.frameWidth}x${ov.frameHeight} ${ov.framesEncoded} frames (${ov.codec}, ${ov.encoder}), ` +
    `send ${kbps} kbps at ${fps} fps (limit: ${ov.qualityLimitationReason}), audio ${b.inAudio?.packetsReceived ?? 0} packets, ` +
    `lost ${iv.packetsLost ?? '?'}, nacks ${iv.nackCount ?? '?'}, plis ${iv.pliCount ?? '?'}`;
  measured.media = m;
  // A publisher that encodes slowly is this machine's CPU (load average), not the SFU.
  if (errs.length) throw new Fail(`${errs.join('; ')} [${detail}; load average ${load}` +
    `${fps < 25 ? `: the publisher encodes only ${fps} fps, CPU-starved?` : ''}]`);
  return { detail, measured: m };
}

// ---------------------------------------------------------------- the self test
async function selftest() {
  const st = {};
  await step('selftest-pages', async () => {
    await openPage('A'); await openPage('B');
  });
  await step('selftest-connect', async () => {
    const { sdp, preferred } = await ev('A', (o) => cc.publisher(o), { width: opt.width, height: opt.height, codecs: CODECS[opt.codec] });
    const answer = await ev('B', (s) => cc.answerer(s), sdp);
    await ev('A', (s) => cc.answer(s), answer);
    st.started = Date.now();
    const ca = await waitConnected('A', 10000); const cb = await waitConnected('B', 10000);
    return { detail: `connected in ${Math.max(ca, cb)} ms, preferred ${preferred}`, preferred };
  }, ['selftest-pages']);
  await step('selftest-media', () => checkMedia('A', 'B', st.started), ['selftest-connect']);
}

// ---------------------------------------------------------------- the corecast scenario
const GROUPS = {
  'whip-whep': ['auth', 'call', 'whip', 'whep', 'media'],
  composite: ['auth', 'call', 'whip', 'composite'],
  leave: ['auth', 'call', 'whip', 'leave'],
  svc: ['auth', 'svc-whip', 'svc-whep', 'svc-media', 'svc-patch'],
};
async function scenario() {
  // (The mock's relay page does no SVC: not part of --mock's default.)
  const groups = opt.only || Object.keys(GROUPS).filter((g) => !(opt.mock && g === 'svc'));
  for (const g of groups) if (!GROUPS[g]) die(`--only: unknown group ${g} (${Object.keys(GROUPS).join(', ')})`);
  const want = new Set(groups.flatMap((g) => GROUPS[g]));
  const s = {}; // state shared by the steps

  if (want.has('auth')) await step('auth', async () => {
    const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.slice(-10);
    s.users = [];
    for (const n of [1, 2]) {
      const login = `e2e${n}-${tag}`; const password = `e2e-password-${tag}`;
      const reg = await http('POST', `${opt.auth}/v1/register`, { json: { login, email: `${login}@e2e.test`, name: `E2E ${n}`, password } });
      check(reg.status === 201 || reg.status === 409, `register ${login}: ${reg.status} ${reg.text.slice(0, 200)}`);
      const lg = await http('POST', `${opt.auth}/v1/login`, { json: { login, password } });
      check(lg.status === 200 && lg.data?.session, `login ${login}: ${lg.status} ${lg.text.slice(0, 200)}`);
      s.users.push({ login, id: reg.data?.id, session: lg.data.session });
    }
    return { detail: `${s.users.map((u) => u.login).join(', ')}` };
  });

  if (want.has('call')) await step('call', async () => {
    const r = await http('POST', `${opt.calls}/v1/calls`, { token: s.users[0].session });
    check(r.status === 201 && r.data?.call_id, `POST /v1/calls: ${r.status} ${r.text.slice(0, 200)}`);
    s.call = r.data.call_id;
    return { detail: `call ${s.call} on router ${r.data.router}`, call: s.call };
  }, ['auth']);

  if (want.has('whip')) await step('whip', async () => {
    await openPage('A');
    const { sdp, preferred } = await ev('A', (o) => cc.publisher(o), { width: opt.width, height: opt.height, codecs: CODECS[opt.codec] });
    const r = await signal('A', `${opt.calls}/v1/calls/${s.call}/whip`, s.users[0].session, sdp);
    check(r.participantId, 'WHIP 201 without X-Participant-Id' + (opt.signal === 'page' ? ' (or not exposed: Access-Control-Expose-Headers)' : ''));
    s.whip = r;
    const ms = await waitConnected('A', 10000);
    s.published = Date.now();
    return { detail: `participant ${r.participantId}, ${r.location}, POST ${r.postMs} ms, connected ${ms} ms after the answer, preferred ${preferred}`,
      participant: r.participantId, location: r.location, connectMs: ms };
  }, ['call']);

  if (want.has('whep')) await step('whep', async () => {
    await openPage('B');
    const { sdp } = await ev('B', () => cc.viewer());
    const r = await signal('B', `${opt.calls}/v1/calls/${s.call}/whep?participant=${encodeURIComponent(s.whip.participantId)}`, s.users[1].session, sdp);
    s.whep = r;
    const ms = await waitConnected('B', 10000);
    s.viewing = Date.now();
    return { detail: `${r.location}, POST ${r.postMs} ms, connected ${ms} ms after the answer`, location: r.location, connectMs: ms };
  }, ['whip']);

  if (want.has('media')) await step('media', () => checkMedia('A', 'B', s.viewing), ['whep']);

  if (want.has('composite')) await step('composite', async () => {
    await openPage('C');
    const { sdp } = await ev('C', () => cc.viewer());
    const r = await signal('C', `${opt.calls}/v1/calls/${s.call}/whep?view=composite`, s.users[1].session, sdp);
    s.composite = r;
    const ms = await waitConnected('C', 10000);
    const deadline = Date.now() + opt.compositeWait * 1000; let st;
    for (;;) {
      st = await stats('C');
      if ((st.inVideo?.framesDecoded ?? 0) > 0 || Date.now() > deadline) break;
      await sleep(250);
    }
    const iv = st.inVideo || {};
    measured.composite = { framesDecoded: iv.framesDecoded ?? 0, frameWidth: iv.frameWidth, frameHeight: iv.frameHeight, codec: iv.codec };
    check((iv.framesDecoded ?? 0) > 0, `no composite frame decoded within ${opt.compositeWait} s (received ${iv.framesReceived ?? 0} frames, ${iv.bytesReceived ?? 0} bytes)`);
    // The pool's mixed audio: one stream, played (200 ms of samples decoded from its packets,
    // not concealed), naming the publisher as a CSRC. Modest on purpose: in the debug build on
    // a busy machine the pool's worker spends most of its time on the composite, and audio
    // frames whose slot passed long ago are skipped (the mixer counts them). Headless Chromium
    // reports no inbound audio energy (for raw streams either): what the mix sounds like is
    // checked by the codec crate's tests.
    const played = (a) => (a?.totalSamplesReceived ?? 0) - (a?.concealedSamples ?? 0);
    const audioDeadline = Date.now() + 10000;
    for (;;) {
      st = await stats('C');
      if (process.env.E2E_TRACE) {
        const a = st.inAudio || {}; const o = (await stats('A')).outAudio || {};
        console.log(`# trace composite audio: packets ${a.packetsReceived} samples ${a.totalSamplesReceived} concealed ${a.concealedSamples}; publisher audio packets ${o.packetsSent}`);
      }
      if (played(st.inAudio) >= 9600 || Date.now() > audioDeadline) break;
      await sleep(250);
    }
    const ia = st.inAudio || {};
    const [src] = await ev('C', () => cc.audioSources());
    const pub = await stats('A'); const pubSsrc = pub.outAudio?.ssrc;
    measured.composite.audio = { ...ia, streams: st.inAudios?.length ?? 0, sources: src, publisherSsrc: pubSsrc,
      publisherSource: pub.sourceAudio };
    const samples = ia.totalSamplesReceived ?? 0;
    check((ia.packetsReceived ?? 0) > 0, `no composite audio received (inbound audio: ${JSON.stringify(st.inAudios ?? null)})`);
    check(/opus/i.test(ia.codec ?? ''), `composite audio codec ${ia.codec}, not Opus`);
    check(played(ia) >= 9600, `composite audio: only ${played(ia)} samples decoded from packets (${samples} played, ` +
      `${ia.concealedSamples} concealed) within 10 s of the first frame`);
    check((st.inAudios?.length ?? 0) === 1, `composite audio: ${st.inAudios?.length} inbound audio streams, want the mix only`);
    // (--mock sends a tone of its own, not a mix: no CSRCs there.)
    if (!opt.mock) check(src && pubSsrc && !src.ssrcs.includes(pubSsrc) && src.csrcs.includes(pubSsrc),
      `composite audio is not the mixer's mix of the publisher (SSRCs ${JSON.stringify(src)}, publisher ${pubSsrc})`);
    return { detail: `POST ${r.postMs} ms, connected ${ms} ms after the answer, decoded ${iv.framesDecoded} frames ${iv.frameWidth}x${iv.frameHeight} (${iv.codec}); ` +
      `mixed audio ${ia.packetsReceived} packets, ${samples} samples (${ia.concealedSamples} concealed), SSRC ${src?.ssrcs} with CSRCs ${src?.csrcs}`,
      measured: measured.composite };
  }, ['whip']);

  if (want.has('leave')) await step('leave', async () => {
    const d = await http('DELETE', s.whip.location, { token: s.users[0].session });
    check(d.status >= 200 && d.status < 300, `DELETE ${s.whip.location}: ${d.status} ${d.text.slice(0, 200)}`);
    const pid = String(s.whip.participantId);
    const deadline = Date.now() + 5000; let listed;
    for (;;) {
      const g = await http('GET', `${opt.calls}/v1/calls/${s.call}`, { token: s.users[0].session });
      // The owner may no longer be a participant but still sees the call; 404 once the call is gone is fine too.
      if (g.status === 404) { listed = []; break; }
      check(g.status === 200, `GET /v1/calls/${s.call}: ${g.status} ${g.text.slice(0, 200)}`);
      listed = (g.data.participants || []).map((p) => String(p.participant_id));
      if (!listed.includes(pid) || Date.now() > deadline) break;
      await sleep(200);
    }
    check(!listed.includes(pid), `participant ${pid} still listed 5 s after DELETE: ${listed.join(', ')}`);
    return { detail: `DELETE ${d.status}; participants now [${listed.join(', ')}]` };
  }, ['whip']);

  if (want.has('svc-whip')) await svcSteps(s);

  // Clean up what is left (not a checked step): the viewers' sessions, then the call.
  for (const [k, u] of [['whep', 1], ['composite', 1], ['svcWhip', 0], ['svcDd', 1], ['svcPlain', 1]]) {
    if (s[k]?.location) await http('DELETE', s[k].location, { token: s.users[u].session, timeoutMs: 3000 }).catch(() => {});
  }
  for (const c of [s.call, s.svcCall]) {
    if (c) await http('DELETE', `${opt.calls}/v1/calls/${c}`, { token: s.users[0].session, timeoutMs: 3000 }).catch(() => {});
  }
}

// ---------------------------------------------------------------- SVC (issue #13)
// A publisher sends AV1 with two spatial layers in one stream (scalabilityMode L2T3: 320x180 and
// 640x360 of a 640x360 canvas, cheap to encode so that no layer frame is skipped for want of
// bandwidth; Chromium makes L3T3 at this size L2T3 anyway), described by the
// Dependency Descriptor, in a call of its own. Viewer D negotiated the descriptor: the router
// forwards the publisher's (the two-byte header form for the template structure) and D decodes
// every layer, 640x360. Viewer P did not: Chromium decodes nothing of several spatial layers
// without it, so the router sends P the base layer only (read from the descriptor, never the
// payload), the marker bit on the last packet of each of its frames (the end of P's temporal
// unit), and P decodes 320x180.
const SVC_MODE = 'L2T3';
async function svcSteps(s) {
  await step('svc-whip', async () => {
    // The pages of the steps before are closed: three encoders and decoders at once starve 2 cores.
    for (const [n, p] of Object.entries(pages)) { await p.ctx.close().catch(() => {}); delete pages[n]; }
    const c = await http('POST', `${opt.calls}/v1/calls`, { token: s.users[0].session });
    check(c.status === 201 && c.data?.call_id, `POST /v1/calls: ${c.status} ${c.text.slice(0, 200)}`);
    s.svcCall = c.data.call_id;
    await openPage('S');
    const { sdp } = await ev('S', (o) => cc.publisher(o), { width: opt.width, height: opt.height,
      codecs: ['video/av1'], onlyCodecs: true, scalabilityMode: SVC_MODE, canvas: true });
    check(/dependency-descriptor/.test(sdp), 'the publisher offered no Dependency Descriptor');
    s.svcWhip = await signal('S', `${opt.calls}/v1/calls/${s.svcCall}/whip`, s.users[0].session, sdp);
    const ms = await waitConnected('S', 10000);
    return { detail: `call ${s.svcCall}, participant ${s.svcWhip.participantId}, connected ${ms} ms after the answer` };
  }, ['auth']);
  await step('svc-whep', async () => {
    const url = `${opt.calls}/v1/calls/${s.svcCall}/whep?participant=${encodeURIComponent(s.svcWhip.participantId)}`;
    for (const [name, key, dd] of [['D', 'svcDd', true], ['P', 'svcPlain', false]]) {
      await openPage(name);
      const { sdp } = await ev(name, (o) => cc.viewer(o), { codecs: ['video/av1'], dd });
      s[key] = await signal(name, url, s.users[1].session, sdp);
      const answered = /dependency-descriptor/.test(s[key].body);
      check(answered === dd, `viewer ${name}: the answer ${answered ? 'takes' : 'leaves'} the Dependency Descriptor`);
      await waitConnected(name, 10000);
    }
    s.svcViewing = Date.now();
    return { detail: 'viewers D (descriptor) and P (none)' };
  }, ['svc-whip']);
  await step('svc-media', async () => {
    const seconds = Math.max(6, opt.seconds - 2);
    await sleep(Math.max(0, seconds * 1000 - (Date.now() - s.svcViewing) - 2000));
    const first = { D: await stats('D'), P: await stats('P'), S: await stats('S') };
    // The heights each viewer decodes over the last 2 s (a frame the encoder skipped on the top
    // layer shows as the lower size for a moment).
    const heights = { D: new Set(), P: new Set() };
    for (let i = 0; i < 8; i++) {
      for (const n of ['D', 'P']) heights[n].add((await stats(n)).inVideo?.frameHeight);
      await sleep(250);
    }
    const pub = (await stats('S')).outVideo || {};
    const pubRecent = (pub.framesEncoded ?? 0) - (first.S.outVideo?.framesEncoded ?? 0);
    const errs = []; const parts = [];
    const minFrames = Math.round(opt.minFrames * 0.2 * seconds / opt.seconds);
    for (const [n, height] of [['D', opt.height], ['P', opt.height / 2]]) {
      const a = first[n].inVideo || {}; const b = (await stats(n)).inVideo || {};
      const recent = (b.framesDecoded ?? 0) - (a.framesDecoded ?? 0);
      parts.push(`${n}: ${b.framesDecoded} frames ${b.frameWidth}x${b.frameHeight} (${recent} in the last 2 s; ` +
        `received ${b.framesReceived}, dropped ${b.framesDropped}, ${b.packetsReceived} packets), ` +
        `freezes ${b.freezeCount ?? '?'} (${b.totalFreezesDuration ?? '?'} s), lost ${b.packetsLost}, plis ${b.pliCount}`);
      if (!((b.framesDecoded ?? 0) >= minFrames)) errs.push(`${n}: framesDecoded ${b.framesDecoded ?? 'none'} < ${minFrames}`);
      const seen = [...heights[n]].filter(Boolean);
      if (Math.max(...seen, 0) !== height) errs.push(`${n}: decodes ${seen.join('/') || 'nothing'} lines high, not ${height}`);
      // The encoder skips frames of a layer when its rate runs short: a stall, not a rate, is checked.
      if (!(recent >= 6)) errs.push(`${n}: only ${recent} frames decoded in the last 2 s (stalled?)`);
    }

    if (pub.scalabilityMode && pub.scalabilityMode !== SVC_MODE) errs.push(`the publisher encodes ${pub.scalabilityMode}, not ${SVC_MODE}`);
    const detail = `publisher ${pub.frameWidth}x${pub.frameHeight} ${pub.scalabilityMode ?? '?'} (${pub.codec}, ${pub.encoder}), ` +
      `${pub.framesEncoded} frames (${pubRecent} in the last 2 s, ${pub.framesPerSecond} fps, limited by ${pub.qualityLimitationReason}); ${parts.join('; ')}`;
    measured.svc = { publisher: pub, detail };
    if (errs.length) throw new Fail(`${errs.join('; ')} [${detail}; load average ${loadavg()[0].toFixed(1)}]`);
    return { detail };
  }, ['svc-whep']);
  // D's requested size changed while it plays (JSON PATCH on its session): down to S0 (180
  // lines) within the next allocation, then lifted (0): back to 360 lines at the keyframe the
  // router asks the publisher for. A WHIP session takes no preferences (409).
  await step('svc-patch', async () => {
    const prefs = (location, json, user = 1) => http('PATCH', location, { token: s.users[user].session, json });
    const decodesAt = async (height, ms) => {
      const deadline = Date.now() + ms; let st;
      for (;;) {
        st = (await stats('D')).inVideo || {};
        if (st.frameHeight === height || Date.now() > deadline) break;
        await sleep(200);
      }
      const a = st.framesDecoded ?? 0; await sleep(1000);
      const b = (await stats('D')).inVideo || {};
      check(b.frameHeight === height && (b.framesDecoded ?? 0) > a,
        `D decodes ${b.frameWidth}x${b.frameHeight} (${(b.framesDecoded ?? 0) - a} frames in 1 s), not ${height} lines high, ${ms} ms after the PATCH`);
    };
    const t0 = Date.now();
    let r = await prefs(s.svcDd.location, { max_height: opt.height / 2 });
    check(r.status === 204, `PATCH {max_height: ${opt.height / 2}}: ${r.status} ${r.text.slice(0, 200)}`);
    await decodesAt(opt.height / 2, 6000);
    const down = Date.now() - t0;
    const t1 = Date.now();
    r = await prefs(s.svcDd.location, { max_height: 0 });
    check(r.status === 204, `PATCH {max_height: 0}: ${r.status} ${r.text.slice(0, 200)}`);
    await decodesAt(opt.height, 8000);
    const up = Date.now() - t1;
    r = await prefs(s.svcDd.location, { max_height: 5 });
    check(r.status === 400, `PATCH {max_height: 5}: ${r.status}, want 400`);
    r = await prefs(s.svcWhip.location, { max_height: 180 }, 0);
    check(r.status === 409, `PATCH on the WHIP session: ${r.status}, want 409`);
    return { detail: `down to ${opt.height / 2} lines within ${down} ms, back to ${opt.height} within ${up} ms (each includes 1 s of decoding at it)` };
  }, ['svc-media']);
}

// ---------------------------------------------------------------- main
async function main() {
  const y4m = makeY4m(opt.picture, opt.width, opt.height);
  server = await serveStatic(join(here, 'pages'));
  chromium = await launchChromium({ y4m: y4m.file });
  if (opt.mock) {
    const ctx = await chromium.browser.newContext();
    const sfuPage = await ctx.newPage();
    await sfuPage.goto(`${server.base}/mock-sfu.html`, { timeout: 15000 });
    mock = await startMock(sfuPage);
    opt.calls = opt.auth = mock.base;
  }
  line(`# chromium ${chromium.version}, fake camera ${opt.width}x${opt.height} ${opt.picture} (${y4m.by}), ` +
    `codec ${opt.codec}, ${opt.selftest ? 'selftest' : `${opt.mock ? 'MOCK corecast, ' : ''}calls ${opt.calls}, auth ${opt.auth}, signalling from ${opt.signal}`}`);
  if (opt.selftest) await selftest(); else await scenario();
  if (opt.keepOpen) await sleep(opt.keepOpen * 1000);
}

let timedOut = false;
const timer = setTimeout(() => { timedOut = true; finish(); }, opt.timeout * 1000);
let finished = false;
async function finish() {
  if (finished) return; finished = true;
  clearTimeout(timer);
  if (timedOut) results.push({ step: 'timeout', ok: false, error: `run took over ${opt.timeout} s` }), line(`FAIL timeout: run took over ${opt.timeout} s`);
  const failed = results.filter((r) => r.ok === false);
  for (const f of failed) {
    for (const [n, p] of Object.entries(pages)) {
      if (p.consoleLines.length) line(`# page ${n} console (last 10): ${p.consoleLines.slice(-10).join(' | ')}`);
    }
    break;
  }
  const passed = results.filter((r) => r.ok === true).length;
  const skipped = results.filter((r) => r.ok === null).length;
  const summary = { ok: failed.length === 0 && passed > 0, mode: opt.selftest ? 'selftest' : opt.mock ? 'mock' : 'corecast',
    chromium: chromium?.version, codec: opt.codec, picture: opt.picture, size: `${opt.width}x${opt.height}`,
    seconds: opt.seconds, totalMs: Date.now() - t0, steps: results, measured };
  if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2) + '\n');
  line(JSON.stringify(summary));
  line(`webrtc-e2e: ${passed} passed, ${failed.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
  closed = true;
  await Promise.race([(async () => {
    for (const p of Object.values(pages)) await p.ctx.close().catch(() => {});
    if (mock) await mock.close();
    if (chromium) await chromium.close();
    if (server) await server.close();
  })(), sleep(5000)]);
  process.exit(summary.ok ? 0 : 1);
}
main().then(finish, (e) => { results.push({ step: 'harness', ok: false, error: String(e && e.stack || e) }); line(`FAIL harness: ${e && e.stack || e}`); finish(); });

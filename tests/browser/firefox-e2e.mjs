#!/usr/bin/env node
// Firefox ESR (Debian's firefox-esr, headless) against corecast over WHIP and WHEP, with
// headless Chromium on the other end: Firefox publishes and a Chromium page watches it, then a
// Chromium page publishes and Firefox watches it. Each side decodes the other's video at the
// size it was sent and receives its audio: ICE-lite, DTLS-SRTP with Firefox's NSS as the DTLS
// client, Firefox's offers answered (VP8 from Firefox, which encodes no AV1; AV1 to it).
// playwright-core cannot drive a stock Firefox, so its page (pages/ff-peer.html) does its work
// on load and reports to this script's HTTP server every 500 ms. Run by `make firefox-e2e`
// (tuning/scripts/browser-e2e.sh with E2E_TEST=firefox) against the system as `make run`
// starts it; by hand: node tests/browser/firefox-e2e.mjs --calls URL --auth URL.
// Prints PASS/FAIL/SKIP per step, then "firefox-e2e: N passed, N failed"; exit 0 when none failed.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './lib/server.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { launchFirefox, firefoxAvailable, FIREFOX } from './lib/firefox.mjs';
import { results, step, check, until, sleep, line, closeOutput, Fail } from './lib/report.mjs';
import { http, freshUsers } from './lib/api.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const opt = {
  calls: arg('--calls', 'http://127.0.0.1:8082').replace(/\/+$/, ''),
  auth: arg('--auth', 'http://127.0.0.1:8081').replace(/\/+$/, ''),
  seconds: Number(arg('--seconds', '8')),
  timeout: Number(arg('--timeout', '150')),
};
// Frames each viewer decodes within --seconds: a fifth of 30 fps (Firefox's fake camera and the
// 2-core machine's encoders run slow when busy; a stall, not a rate, is what this is about).
const MIN_FRAMES = Math.round(opt.seconds * 6);

// A plain moving picture for Chromium's camera (cheap to encode beside two Firefox processes).
function plainY4m(w, h) {
  const dir = join(tmpdir(), 'corecast-browser-y4m'); mkdirSync(dir, { recursive: true });
  const file = join(dir, `plain-${w}x${h}.y4m`);
  if (existsSync(file)) return file;
  const frames = 30; const y = Buffer.alloc(w * h); const uv = Buffer.alloc(w * h / 2, 128);
  const parts = [Buffer.from(`YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < frames; f++) {
    y.fill(90); const x0 = Math.floor(f * w / frames);
    for (let r = 0; r < h; r++) y.fill(235, r * w + x0, r * w + Math.min(w, x0 + 32));
    parts.push(Buffer.from('FRAME\n'), Buffer.from(y), uv);
  }
  const tmp = `${file}.${process.pid}.tmp`; // written aside, renamed: runs at once never see half a file
  writeFileSync(tmp, Buffer.concat(parts)); renameSync(tmp, file);
  return file;
}

const s = {};
const firefoxes = [];
let chromium = null; let server = null;

// The Firefox page's latest report (it posts every 500 ms).
const ffReport = async (sink) => JSON.parse(await server.waitFor(sink, 2000).catch(() => 'null'));
function openFirefox(params) {
  const ff = launchFirefox(`${server.base}/ff-peer.html?${new URLSearchParams(params)}`);
  firefoxes.push(ff);
  return ff;
}
async function firefoxConnected(sink, ff) {
  let last = null;
  try {
    return await until(15000, async () => {
      const r = last = await ffReport(sink);
      if (r?.error) check(false, `Firefox (${sink}): ${r.error}`);
      if (ff.child.exitCode !== null) check(false, `Firefox exited (${ff.child.exitCode}): ${ff.stderr().slice(-300)}`);
      return r?.state === 'connected' ? r : null;
    }, `Firefox's ${sink} connected`);
  } catch (e) {
    const { answer, ...seen } = last || {};
    throw new Fail(`${e.message}; its last report: ${last ? JSON.stringify(seen) : 'none'}`);
  }
}

async function scenario() {
  await step('auth', async () => {
    s.users = await freshUsers(opt.auth, 2, 'ff');
    const c = await http('POST', `${opt.calls}/v1/calls`, { token: s.users[0].session });
    check(c.status === 201 && c.data?.call_id, `POST /v1/calls: ${c.status} ${c.text.slice(0, 200)}`);
    s.call = c.data.call_id;
    return { detail: `call ${s.call}` };
  });

  await step('firefox-whip', async () => {
    const ff = openFirefox({ role: 'publish', sink: 'pub', calls: opt.calls, call: s.call, token: s.users[0].session });
    const r = await firefoxConnected('pub', ff);
    s.ffPub = r;
    const codec = /a=rtpmap:\d+ (\w+)\/90000/.exec(r.answer.split('m=video')[1] || '')?.[1];
    return { detail: `${r.ua.match(/Firefox\/[\d.]+/)?.[0]}: participant ${r.participantId}, connected; answer's video ${codec}` };
  }, ['auth']);

  await step('chromium-views-firefox', async () => {
    const ctx = await chromium.browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${server.base}/peer.html?role=cv`, { timeout: 15000 });
    const { sdp } = await page.evaluate(() => cc.viewer());
    const r = await page.evaluate(([u, t, o]) => cc.signal(u, t, o),
      [`${opt.calls}/v1/calls/${s.call}/whep?participant=${s.ffPub.participantId}`, s.users[1].session, sdp]);
    check(r.status === 201, `WHEP POST: ${r.status} ${String(r.body).slice(0, 200)}`);
    s.cvLocation = new URL(r.location, opt.calls).href;
    const c = await page.evaluate((ms) => cc.waitConnected(ms), 10000);
    check(c.ok, `Chromium viewer not connected (${c.state})`);
    await sleep(opt.seconds * 1000);
    const st = await page.evaluate(() => cc.stats());
    const ff = await ffReport('pub');
    const iv = st.inVideo || {}; const ov = ff.outVideo || {};
    const detail = `Chromium decoded ${iv.framesDecoded} frames ${iv.frameWidth}x${iv.frameHeight} (${iv.codec}), ` +
      `audio ${st.inAudio?.packetsReceived ?? 0} packets; Firefox sent ${ov.framesEncoded} frames ${ov.frameWidth}x${ov.frameHeight} (${ov.codec})`;
    check((iv.framesDecoded ?? 0) >= MIN_FRAMES, `framesDecoded ${iv.framesDecoded} < ${MIN_FRAMES} [${detail}]`);
    check(iv.frameWidth === ov.frameWidth && iv.frameHeight === ov.frameHeight, `size differs [${detail}]`);
    check((st.inAudio?.packetsReceived ?? 0) > 0, `no audio from Firefox [${detail}]`);
    await ctx.close();
    return { detail };
  }, ['firefox-whip']);

  await step('chromium-whip', async () => {
    const ctx = await chromium.browser.newContext();
    s.cpub = await ctx.newPage();
    await s.cpub.goto(`${server.base}/peer.html?role=cp`, { timeout: 15000 });
    const { sdp } = await s.cpub.evaluate(() => cc.publisher({ codecs: ['video/av1', 'video/vp8', 'video/h264'] }));
    const r = await s.cpub.evaluate(([u, t, o]) => cc.signal(u, t, o), [`${opt.calls}/v1/calls/${s.call}/whip`, s.users[1].session, sdp]);
    check(r.status === 201 && r.participantId, `WHIP POST: ${r.status} ${String(r.body).slice(0, 200)}`);
    s.cpubId = r.participantId;
    s.cpubLocation = new URL(r.location, opt.calls).href;
    const c = await s.cpub.evaluate((ms) => cc.waitConnected(ms), 10000);
    check(c.ok, `Chromium publisher not connected (${c.state})`);
    return { detail: `participant ${s.cpubId}` };
  }, ['auth']);

  await step('firefox-views-chromium', async () => {
    const ff = openFirefox({ role: 'view', sink: 'view', calls: opt.calls, call: s.call, token: s.users[0].session,
      participant: s.cpubId });
    await firefoxConnected('view', ff);
    await sleep(opt.seconds * 1000);
    const r = await ffReport('view');
    const ov = (await s.cpub.evaluate(() => cc.stats())).outVideo || {};
    const iv = r.inVideo || {};
    const detail = `Firefox decoded ${iv.framesDecoded} frames ${iv.frameWidth}x${iv.frameHeight} (${iv.codec}), ` +
      `lost ${iv.packetsLost}, nacks ${iv.nackCount}, plis ${iv.pliCount}, audio ${r.inAudio?.packetsReceived ?? 0} packets; ` +
      `Chromium sent ${ov.frameWidth}x${ov.frameHeight} (${ov.codec})`;
    check((iv.framesDecoded ?? 0) >= MIN_FRAMES, `framesDecoded ${iv.framesDecoded} < ${MIN_FRAMES} [${detail}]`);
    check(iv.frameWidth === ov.frameWidth && iv.frameHeight === ov.frameHeight, `size differs [${detail}]`);
    check((r.inAudio?.packetsReceived ?? 0) > 0, `no audio from Chromium [${detail}]`);
    return { detail };
  }, ['chromium-whip']);

  // The sessions end as a user would end them; then the call.
  for (const [loc, u] of [[s.cvLocation, 1], [s.cpubLocation, 1]]) {
    if (loc) await http('DELETE', loc, { token: s.users[u].session, timeoutMs: 3000 }).catch(() => {});
  }
  if (s.call) await http('DELETE', `${opt.calls}/v1/calls/${s.call}`, { token: s.users[0].session, timeoutMs: 3000 }).catch(() => {});
}

let finished = false;
async function finish(timedOut = false) {
  if (finished) return; finished = true;
  if (timedOut) { results.push({ step: 'timeout', ok: false }); line(`FAIL timeout: run took over ${opt.timeout} s`); }
  const failed = results.filter((r) => r.ok === false).length;
  const passed = results.filter((r) => r.ok === true).length;
  if (failed) for (const [i, f] of firefoxes.entries()) line(`# firefox ${i} stderr (last 400): ${f.stderr().slice(-400).replace(/\n/g, ' | ')}`);
  line(`firefox-e2e: ${passed} passed, ${failed} failed`);
  closeOutput();
  await Promise.race([(async () => {
    for (const f of firefoxes) await f.close();
    if (chromium) await chromium.close();
    if (server) await server.close();
  })(), sleep(8000)]);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

async function main() {
  if (!firefoxAvailable()) { line(`SKIP firefox-e2e: no ${FIREFOX} (tuning/scripts/install-deps.sh firefox)`); process.exit(0); }
  server = await serveStatic(join(here, 'pages'));
  chromium = await launchChromium({ y4m: plainY4m(640, 360) });
  line(`# chromium ${chromium.version}, firefox ${FIREFOX}, calls ${opt.calls}`);
  await scenario();
}
setTimeout(() => finish(true), opt.timeout * 1000).unref();
main().then(() => finish(), (e) => { results.push({ step: 'harness', ok: false }); line(`FAIL harness: ${e && e.stack || e}`); finish(); });

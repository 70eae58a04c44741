#!/usr/bin/env node
// Issue #13's real-browser simulcast check: a Chromium publisher sends 3 simulcast layers
// (rids q, h, f) over WHIP; a second Chromium, inside a network namespace this test shapes
// (lib/netns.mjs: tbf rate cap + nftables random loss on the router -> receiver direction),
// watches it over WHEP (`?participant=`). It should keep decoding on the low layer while shaped
// and climb back once the shaping is removed. Run by `make simulcast-e2e`
// (tuning/scripts/browser-e2e.sh with E2E_TEST=simulcast), which creates the namespace BEFORE
// starting the router on 0.0.0.0 (the router lists its interfaces' addresses as ICE host
// candidates when it starts) and deletes it afterwards, whatever happened.
//
// Results: PASS / FAIL / SKIP / PEND. PEND is a check that cannot hold yet for a reason outside
// this test, said in the line (e.g. the router has no bandwidth estimate for the receiver);
// it does not fail the run. Exit code 0 when nothing FAILed. See tests/browser/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './lib/chromium.mjs';
import { http } from './lib/api.mjs';
import { Fail, check } from './lib/report.mjs';
import { Netns, netnsProblem, downOnExit } from './lib/netns.mjs';
import { parseArgs } from './lib/simulcast-args.mjs';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- options (lib/simulcast-args.mjs)
const opt = parseArgs(process.argv.slice(2));
const LAYERS = [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f', scaleResolutionDownBy: 1 }]
  .map((l, i) => ({ ...l, maxBitrate: opt.kbps[i] * 1000 }));

// ---------------------------------------------------------------- reporting
const t0 = Date.now();
const results = [];
const measured = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let closed = false;
function line(s) { if (!closed) process.stdout.write(s + '\n'); }
class Pending extends Error {}

// One step: PASS/FAIL/PEND line with its time; a step whose prerequisite did not pass is skipped.
async function step(name, fn, needs = []) {
  const missing = needs.filter((n) => !results.find((r) => r.step === n && r.ok === true));
  if (missing.length) {
    results.push({ step: name, ok: null, skipped: `needs ${missing.join(', ')}` });
    line(`SKIP ${name}: needs ${missing.join(', ')}`);
    return;
  }
  const s = Date.now();
  try {
    const info = (await fn()) || {};
    results.push({ step: name, ok: true, ms: Date.now() - s, ...info });
    line(`PASS ${name} (${Date.now() - s} ms)${info.detail ? ': ' + info.detail : ''}`);
  } catch (e) {
    const ms = Date.now() - s;
    if (e instanceof Pending) {
      results.push({ step: name, ok: null, pending: e.message, ms });
      line(`PEND ${name} (${ms} ms): ${e.message}`);
      return;
    }
    const msg = e instanceof Fail ? e.message : (e && e.stack) || String(e);
    results.push({ step: name, ok: false, ms, error: msg });
    line(`FAIL ${name} (${ms} ms): ${msg}`);
  }
}

// ---------------------------------------------------------------- fake camera
// Busy enough that each layer fills its maxBitrate (so that the layers' rates differ as the
// allocation needs): new random grey levels every frame in 16x16 blocks (ffmpeg when there is
// one, else a moving bar: the layers are then too cheap to tell apart by rate).
function makeY4m(w, h) {
  const dir = join(tmpdir(), 'corecast-browser-y4m'); mkdirSync(dir, { recursive: true });
  const file = join(dir, `busy16-${w}x${h}.y4m`); // the same file webrtc-e2e.mjs makes
  const want = 37 + 60 * (6 + w * h * 1.5);
  if (existsSync(file) && statSync(file).size >= want) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
    `nullsrc=s=${Math.ceil(w / 16)}x${Math.ceil(h / 16)}:r=30,geq=lum='random(1)*255':cb=128:cr=128,scale=${w}:${h}:flags=neighbor`,
    '-frames:v', '60', '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', tmp], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 });
  if (r.status !== 0 || !existsSync(tmp)) throw new Error(`ffmpeg (fake camera): ${r.stderr || r.error}`);
  renameSync(tmp, file);
  return file;
}

// ---------------------------------------------------------------- HTTP
let secret = null;
const admin = async (path) => {
  const r = await http('GET', `${opt.admin}${path}`, { token: secret, timeoutMs: 5000 });
  check(r.status === 200 && r.data, `GET ${opt.admin}${path}: ${r.status} ${r.text.slice(0, 200)}`);
  return r.data;
};
// The router's counters summed over its workers.
async function routerCounters() {
  const d = await admin('/v1/stats');
  const sum = (k) => (d.workers || []).reduce((a, w) => a + (w[k] || 0), 0);
  const sub = (o, k) => (d.workers || []).reduce((a, w) => a + (w[o]?.[k] || 0), 0);
  return { layer_switches: sum('layer_switches'), layers_skipped: sum('layers_skipped'), keyframe_requests: sum('keyframe_requests'),
    nack_answered: sum('nack_answered'), retransmitted: sum('retransmitted'), forwarded_rtp: sum('forwarded_rtp'),
    not_sent: sub('webrtc', 'not_sent'), send_errors: sub('io', 'send_errors'), nacks: sum('nacks'), nack_missed: sum('nack_missed'),
    nack_throttled: sum('nack_throttled'), retransmit_refused: sum('retransmit_refused'), keyframe_throttled: sub('dropped', 'keyframe_throttled'),
    twcc_feedback: sum('twcc_feedback'), probes_sent: sum('probes_sent'), keyframes_for_loss: sum('keyframes_for_loss'),
    nack_left_behind: sum('nack_left_behind'), paced: sum('paced'), pacer_overdue: sum('pacer_overdue'), pacer_withdrawn: sum('pacer_withdrawn') };
}
// The router's view of the call's participants: { [participant_id]: details }.
async function routerParticipants(callId) {
  const d = await admin('/v1/calls');
  const c = (d.calls || []).find((x) => String(x.call_id) === String(callId));
  return Object.fromEntries((c?.details || []).map((p) => [String(p.participant_id), p]));
}

// ---------------------------------------------------------------- the pages' server
// Serves pages/ and passes /v1/* to calls, on the veth's host address: the receiver in the
// namespace reaches calls through it (calls listens on 127.0.0.1), and both pages signal
// same-origin (no CORS involved; webrtc-e2e.mjs checks calls' CORS).
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript' };
async function servePages(host) {
  const server = createServer(async (req, res) => {
    try {
      if (req.url.startsWith('/v1/')) {
        const chunks = []; for await (const c of req) chunks.push(c);
        const headers = {};
        for (const h of ['authorization', 'content-type']) if (req.headers[h]) headers[h] = req.headers[h];
        const r = await fetch(`${opt.calls}${req.url}`, { method: req.method, headers,
          body: chunks.length ? Buffer.concat(chunks) : undefined, signal: AbortSignal.timeout(15000) });
        const out = {};
        for (const h of ['content-type', 'location', 'x-participant-id']) if (r.headers.get(h)) out[h] = r.headers.get(h);
        res.writeHead(r.status, out).end(Buffer.from(await r.arrayBuffer()));
        return;
      }
      const name = new URL(req.url, 'http://x').pathname.replace(/^\/+/, '');
      if (!/^[a-z-]+\.(html|js)$/.test(name)) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'Content-Type': TYPES[extname(name)], 'Cache-Control': 'no-store' })
        .end(readFileSync(join(here, 'pages', name)));
    } catch (e) { res.writeHead(502).end(String(e)); }
  });
  await new Promise((ok, fail) => { server.once('error', fail); server.listen(0, host, ok); });
  return { base: `http://${host}:${server.address().port}`, close: () => new Promise((ok) => server.close(ok)) };
}
// The publisher's pages on 127.0.0.1 (getUserMedia needs a secure context: loopback is one), the
// receiver's on the veth's address (RTCPeerConnection needs none).
const pagesServers = {};

// ---------------------------------------------------------------- pages
const browsers = []; const pages = {};
const baseOf = (name) => pagesServers[name === 'A' ? 'loopback' : 'veth'].base;
async function openPage(name, browser) {
  const ctx = await browser.browser.newContext({ viewport: { width: 360, height: 200 } });
  const page = await ctx.newPage();
  const consoleLines = [];
  page.on('console', (m) => { consoleLines.push(`${m.type()}: ${m.text()}`); if (consoleLines.length > 100) consoleLines.shift(); });
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${baseOf(name)}/peer.html?role=${name}`, { timeout: 15000 });
  pages[name] = { page, ctx, consoleLines };
}
const ev = (name, fn, arg) => pages[name].page.evaluate(fn, arg);
const stats = (name) => ev(name, () => cc.stats());
async function signal(name, path, token, sdp) {
  const r = await ev(name, ([u, t, s]) => cc.signal(u, t, s), [`${baseOf(name)}${path}`, token, sdp]);
  check(!r.error, r.error);
  check(r.status === 201 && /^v=0/.test(r.body), `POST ${path}: ${r.status} ${String(r.body).slice(0, 300)}`);
  return r;
}
async function waitConnected(name, ms) {
  const r = await ev(name, (m) => cc.waitConnected(m), ms);
  check(r.ok, `${name}: not connected within ${ms} ms (connection ${r.state}, ice ${r.ice}); page log: ` +
    (await ev(name, () => cc.log())).slice(-8).join(' | '));
  return r.connectMs ?? r.ms;
}
// Without transport-cc (rtcp-fb and the header extension), Chromium's receiver sends REMB.
const withoutTransportCc = (sdp) => sdp.split('\r\n')
  .filter((l) => !/^a=rtcp-fb:\d+ transport-cc/.test(l) && !/^a=extmap:\d+ .*transport-wide-cc/.test(l)).join('\r\n');

const kbps = (bytesA, bytesB, msA, msB) => Math.round(((bytesB ?? 0) - (bytesA ?? 0)) * 8 / Math.max(1, msB - msA));

// ---------------------------------------------------------------- the scenario
async function scenario(ns) {
  const s = {};
  await step('auth', async () => {
    const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.slice(-10);
    s.users = [];
    for (const n of [1, 2]) {
      const login = `sim${n}-${tag}`; const password = `sim-password-${tag}`;
      const reg = await http('POST', `${opt.auth}/v1/register`, { json: { login, email: `${login}@e2e.test`, name: `Sim ${n}`, password } });
      check(reg.status === 201 || reg.status === 409, `register ${login}: ${reg.status} ${reg.text.slice(0, 200)}`);
      const lg = await http('POST', `${opt.auth}/v1/login`, { json: { login, password } });
      check(lg.status === 200 && lg.data?.session, `login ${login}: ${lg.status} ${lg.text.slice(0, 200)}`);
      s.users.push({ login, session: lg.data.session });
    }
    const c = await http('POST', `${opt.calls}/v1/calls`, { token: s.users[0].session });
    check(c.status === 201 && c.data?.call_id, `POST /v1/calls: ${c.status} ${c.text.slice(0, 200)}`);
    s.call = c.data.call_id;
    return { detail: `${s.users.map((u) => u.login).join(', ')}; call ${s.call}` };
  });

  // 3 layers sent by Chromium (each rid's bytesSent growing) and learned by the router.
  await step('publish', async () => {
    await openPage('A', browsers[0]);
    const { sdp } = await ev('A', (o) => cc.publisher(o), { width: opt.width, height: opt.height,
      codecs: [`video/${opt.codec}`], onlyCodecs: true, simulcast: LAYERS });
    check(/a=simulcast:send/.test(sdp), 'the offer has no a=simulcast:send line');
    const r = await signal('A', `/v1/calls/${s.call}/whip`, s.users[0].session, sdp);
    check(/a=simulcast:recv/.test(r.body), `the WHIP answer has no a=simulcast:recv: ${r.body.slice(0, 400)}`);
    s.publisher = String(r.participantId);
    const ms = await waitConnected('A', 10000);
    const sim = (sdp) => sdp.split(/\r?\n/).filter((l) => /^a=(simulcast|rid):/.test(l)).join(' ');
    if (process.env.E2E_TRACE) line(`# offer: ${sim(sdp)}\n# answer: ${sim(r.body)}\n# answer SDP:\n${r.body}`);
    return { detail: `participant ${s.publisher}, connected ${ms} ms after the answer; answer ${sim(r.body)}` };
  }, ['auth']);

  await step('layers', async () => {
    // Chromium enables a layer once its congestion controller allows it: up to 30 s.
    const deadline = Date.now() + 30000; let prev = await stats('A'); let growing = {}; let rates = {};
    for (;;) {
      await sleep(1000);
      const cur = await stats('A');
      for (const o of cur.outVideos || []) {
        const p = (prev.outVideos || []).find((x) => x.rid === o.rid);
        const k = p ? kbps(p.bytesSent, o.bytesSent, p.timestamp, o.timestamp) : 0;
        growing[o.rid] = k > 0 ? (growing[o.rid] || 0) + 1 : 0; rates[o.rid] = k;
      }
      prev = cur;
      if (process.env.E2E_TRACE) line(`# layers: ${JSON.stringify(rates)} available ${cur.pair?.availableOutgoingBitrate} ` +
        `${JSON.stringify((cur.outVideos || []).map((o) => [o.rid, o.frameWidth, o.targetBitrate, o.qualityLimitationReason]))}`);
      // Every layer flowing for 3 s, and the publisher ramped up (each at half its maxBitrate at least): a
      // receiver that joins earlier sends the router a low estimate (it receives little) the router never
      // gets past (no probing).
      const ramped = LAYERS.every((l) => (rates[l.rid] ?? 0) >= l.maxBitrate / 2000);
      if ((LAYERS.every((l) => growing[l.rid] >= 3) && ramped) || Date.now() > deadline) break;
    }
    const outs = Object.fromEntries((prev.outVideos || []).map((o) => [o.rid, o]));
    const desc = LAYERS.map((l) => `${l.rid} ${outs[l.rid]?.frameWidth ?? '?'}x${outs[l.rid]?.frameHeight ?? '?'} ${rates[l.rid] ?? 0} kbps`).join(', ');
    measured.layers = LAYERS.map((l) => ({ rid: l.rid, ssrc: outs[l.rid]?.ssrc, frameWidth: outs[l.rid]?.frameWidth,
      frameHeight: outs[l.rid]?.frameHeight, kbps: rates[l.rid] ?? 0, limit: outs[l.rid]?.qualityLimitationReason,
      encoder: outs[l.rid]?.encoder }));
    check(LAYERS.every((l) => growing[l.rid] >= 3), `Chromium does not send all 3 layers within 30 s: ${desc} ` +
      `(limited by ${LAYERS.map((l) => outs[l.rid]?.qualityLimitationReason).join('/')}; the publisher's available outgoing ` +
      `bitrate ${Math.round((prev.pair?.availableOutgoingBitrate ?? 0) / 1000)} kbps; load ${loadavg()[0].toFixed(1)})`);
    s.widths = LAYERS.map((l) => outs[l.rid].frameWidth);
    const slow = LAYERS.filter((l) => !((rates[l.rid] ?? 0) >= l.maxBitrate / 2000));
    if (slow.length) line(`# the publisher did not ramp up within 30 s (${slow.map((l) => l.rid).join(', ')} under half its maxBitrate: ` +
      `load ${loadavg()[0].toFixed(1)}): the receiver may start below the top layer`);
    // The router learned each layer's SSRC (from the RID header extension): they are the publisher's producers.
    let mine; const rdl = Date.now() + 5000;
    for (;;) {
      mine = (await routerParticipants(s.call))[s.publisher];
      if ((mine && LAYERS.every((l) => mine.ssrcs.includes(outs[l.rid].ssrc))) || Date.now() > rdl) break;
      await sleep(250);
    }
    check(mine, `the router does not list the publisher ${s.publisher} in call ${s.call}`);
    const missing = LAYERS.filter((l) => !mine.ssrcs.includes(outs[l.rid].ssrc)).map((l) => `${l.rid} (ssrc ${outs[l.rid].ssrc})`);
    check(!missing.length, `the router did not learn layer(s) ${missing.join(', ')}: its producers ${JSON.stringify(mine.ssrcs)}`);
    measured.routerPublisher = { ssrcs: mine.ssrcs, bitrate_bps: mine.bitrate_bps };
    return { detail: `${desc}; the router's producers ${JSON.stringify(mine.ssrcs)} at ${Math.round(mine.bitrate_bps / 1000)} kbps` };
  }, ['publish']);

  await step('receive', async () => {
    await openPage('B', browsers[1]);
    // VP8 only: the router answers a viewer with its own codec preference (AV1 first), not the publisher's codec.
    let { sdp } = await ev('B', (o) => cc.viewer(o), { codecs: [`video/${opt.codec}`], onlyCodecs: true });
    if (opt.feedback === 'remb') sdp = withoutTransportCc(sdp);
    const r = await signal('B', `/v1/calls/${s.call}/whep?participant=${encodeURIComponent(s.publisher)}`, s.users[1].session, sdp);
    const cands = r.body.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
    check(cands.some((l) => l.includes(` ${ns.hostAddr} `)), `the WHEP answer has no candidate on ${ns.hostAddr} (the router must ` +
      `listen on 0.0.0.0 and start after the namespace exists: make simulcast-e2e does both): ${cands.join(' | ')}`);
    const ms = await waitConnected('B', 10000);
    s.receiver = (await http('GET', `${opt.calls}/v1/calls/${s.call}`, { token: s.users[1].session })).data?.participants
      ?.map((p) => String(p.participant_id)).find((p) => p !== s.publisher) ?? null;
    return { detail: `connected ${ms} ms after the answer (from ${ns.nsAddr} in ${ns.name}), feedback ${opt.feedback}, receiver ${s.receiver}` };
  }, ['layers']);

  // The router names the publisher (the only one heard: Chromium's fake microphone beeps) the
  // call's dominant speaker; the calls service shows it to every participant.
  await step('dominant-speaker', async () => {
    const deadline = Date.now() + 8000; let v;
    do {
      v = (await http('GET', `${opt.calls}/v1/calls/${s.call}`, { token: s.users[1].session })).data;
      if (String(v?.dominant_speaker) === s.publisher) break;
      await sleep(250);
    } while (Date.now() < deadline);
    check(String(v?.dominant_speaker) === s.publisher, `GET /v1/calls/{id}: dominant_speaker ${v?.dominant_speaker}, not the publisher ${s.publisher}`);
    return { detail: `dominant_speaker ${v.dominant_speaker} (the publisher)` };
  }, ['receive']);

  // A sampler: the receiver's inbound video every 250 ms.
  const sample = async () => {
    const st = await stats('B'); const iv = st.inVideo || {};
    return { t: Date.now(), frames: iv.framesDecoded ?? 0, width: iv.frameWidth ?? 0, height: iv.frameHeight ?? 0,
      bytes: iv.bytesReceived ?? 0, lost: iv.packetsLost ?? 0, freezes: iv.freezeCount ?? 0, nacks: iv.nackCount ?? 0,
      plis: iv.pliCount ?? 0, incoming: st.pair?.availableIncomingBitrate ?? null,
      // Chromium's own freeze measure (rendered frames standing still), exact where the
      // 250 ms sampling of framesDecoded is not: NaN when the browser does not give it.
      freezeMs: Math.round(Number(iv.totalFreezesDuration ?? NaN) * 1000) };
  };
  const estimate = async () => (s.receiver ? (await routerParticipants(s.call).catch(() => ({})))[s.receiver]?.estimate_bps ?? null : null);
  // Watches for `ms`: the longest time without a newly decoded frame (from `from`, or once
  // `settled(sample)` first held), the widths seen, the receive rate.
  async function watch(ms, settled = () => true, estEvery = 8) {
    const out = []; const end = Date.now() + ms; const est = []; const rc = [];
    while (Date.now() < end) {
      out.push(await sample());
      if (out.length % estEvery === 1) {
        const p = s.receiver ? (await routerParticipants(s.call).catch(() => ({})))[s.receiver] : null;
        est.push({ t: Date.now(), bps: p?.estimate_bps ?? null, loss: p?.twcc_loss_permille ?? null });
      }
      rc.push({ t: Date.now(), c: await routerCounters().catch(() => null) });
      await sleep(250);
    }
    let gap = 0; let settledAt = null; let lastNew = null; let gapAll = 0; let gapAt = null; let lastAll = out[0].t;
    const a = out[0]; const b = out[out.length - 1];
    // What happened when (ms from the start): width changes, gaps over 500 ms, estimate changes over 10 %.
    const timeline = [[0, `width ${a.width}`]];
    for (let i = 1; i < out.length; i++) {
      if (out[i].width !== out[i - 1].width) timeline.push([out[i].t - a.t, `width ${out[i].width}`]);
      if (out[i].frames > out[i - 1].frames) {
        if (out[i].t - lastAll > 500) timeline.push([lastAll - a.t, `no new frame for ${out[i].t - lastAll} ms`]);
        if (out[i].t - lastAll > gapAll) { gapAll = out[i].t - lastAll; gapAt = lastAll - a.t; }
        lastAll = out[i].t;
      }
      if (settledAt === null && settled(out[i])) { settledAt = out[i].t; lastNew = out[i].t; continue; }
      if (settledAt !== null && out[i].frames > out[i - 1].frames) { gap = Math.max(gap, out[i].t - lastNew); lastNew = out[i].t; }
    }
    if (b.t - lastAll > gapAll) { gapAll = b.t - lastAll; gapAt = lastAll - a.t; }
    // Once settled: the share of samples still so, and how often it left.
    const after = settledAt === null ? [] : out.filter((x) => x.t >= settledAt);
    const settledShare = after.length ? Math.round(100 * after.filter((x) => settled(x)).length / after.length) : null;
    const left = after.filter((x, i) => i > 0 && settled(after[i - 1]) && !settled(x)).length;
    if (settledAt !== null) gap = Math.max(gap, b.t - lastNew);
    let prevEst = null;
    for (const e of est) {
      const loss = e.loss ? ` (loss ${e.loss.last}/${e.loss.recent} per mille)` : '';
      if (e.bps !== null && (prevEst === null || Math.abs(e.bps - prevEst) > 0.1 * prevEst)) timeline.push([e.t - a.t, `estimate ${Math.round(e.bps / 1000)} kbps${loss}`]);
      if (e.bps !== null) prevEst = e.bps;
    }
    // The router's probes, switches and keyframe requests, the receiver's PLIs, when they happened.
    const said = { probes_sent: 'probe packets', layer_switches: 'layer switch', keyframe_requests: 'keyframe requests' };
    for (let i = 1; i < rc.length; i++) {
      for (const [k, what] of Object.entries(said)) {
        const d = rc[i].c && rc[i - 1].c ? rc[i].c[k] - rc[i - 1].c[k] : 0;
        if (d > 0) timeline.push([rc[i].t - a.t, `+${d} ${what}`]);
      }
    }
    for (let i = 1; i < out.length; i++) if (out[i].plis > out[i - 1].plis) timeline.push([out[i].t - a.t, `receiver PLI`]);
    // getStats()'s freezes: each sample's growth of totalFreezesDuration (the freezes that ended
    // in that 250 ms; more than one in a sample counts as one as long as their sum).
    const freezeStats = out.every((x) => Number.isFinite(x.freezeMs));
    let maxFreezeMs = freezeStats ? 0 : null; let maxFreezeAtMs = null;
    for (let i = 1; freezeStats && i < out.length; i++) {
      if (out[i].freezes <= out[i - 1].freezes) continue;
      const d = out[i].freezeMs - out[i - 1].freezeMs;
      timeline.push([out[i].t - a.t, `getStats freeze ${d} ms`]);
      if (d > maxFreezeMs) { maxFreezeMs = d; maxFreezeAtMs = out[i].t - a.t; }
    }
    timeline.sort((x, y) => x[0] - y[0]);
    const tail = out.filter((x) => x.t >= b.t - 3000);
    return { samples: out.length, frames: b.frames - a.frames, fps: Math.round((b.frames - a.frames) * 10000 / (b.t - a.t)) / 10,
      kbps: kbps(a.bytes, b.bytes, a.t, b.t), tailKbps: kbps(tail[0].bytes, b.bytes, tail[0].t, b.t),
      widths: [...new Set(out.map((x) => x.width))], endWidth: b.width, endHeight: b.height, maxGapMs: gapAll, maxGapAtMs: gapAt,
      maxFreezeMs, maxFreezeAtMs,
      settledAfterMs: settledAt === null ? null : settledAt - a.t, maxGapSettledMs: settledAt === null ? null : gap, settledShare, left,
      lost: b.lost - a.lost, nacks: b.nacks - a.nacks, plis: b.plis - a.plis, freezes: b.freezes - a.freezes,
      estimates: est.filter((_, i) => i % Math.max(1, Math.round(8 / estEvery)) === 0).map((e) => e.bps), timeline,
      incomingKbps: b.incoming === null ? null : Math.round(b.incoming / 1000) };
  }
  const timeline = (w) => w.timeline.map(([t, what]) => `${(t / 1000).toFixed(1)}s ${what}`).join(', ');
  const fmt = (w) => `${w.frames} frames (${w.fps} fps), widths seen ${w.widths.join('/')}, ending ${w.endWidth}x${w.endHeight}, ` +
    `${w.kbps} kbps (last 3 s ${w.tailKbps}), longest gap ${w.maxGapMs} ms, lost ${w.lost}, nacks ${w.nacks}, plis ${w.plis}, ` +
    `router's estimate ${JSON.stringify(w.estimates.map((e) => (e === null ? null : Math.round(e / 1000))))} kbps`;

  // Unshaped: the best layer, decoding.
  await step('top', async () => {
    const deadline = Date.now() + 20000; let x;
    for (;;) {
      x = await sample();
      if ((x.width === s.widths[2] && x.frames > 30) || Date.now() > deadline) break;
      await sleep(250);
    }
    const w = await watch(4000);
    measured.top = w;
    const est = w.estimates.filter((e) => e !== null);
    if (w.endWidth !== s.widths[2] && est.length) {
      throw new Pending(`unshaped, the receiver gets ${w.endWidth}, not the top layer's ${s.widths[2]}: the router's estimate ` +
        `for it (${est.map((e) => Math.round(e / 1000)).join('/')} kbps) does not cover it [${fmt(w)}]`);
    }
    if (!w.frames) w.router = await routerCounters();
    check(w.endWidth === s.widths[2], `unshaped, the receiver decodes ${w.endWidth}x${w.endHeight}, not the top layer's width ${s.widths[2]} [${fmt(w)}${w.router ? `; router ${JSON.stringify(w.router)}` : ''}]`);
    check(w.frames > 30, `unshaped, only ${w.frames} frames decoded in 4 s [${fmt(w)}]`);
    // Then the receiver's first estimate (REMB, or the router's own from transport-cc feedback): the router
    // allocates by it from then on; the shaping starts from that state (up to 15 s, 2 s after it).
    const ed = Date.now() + 15000; let e = await estimate();
    while (e === null && Date.now() < ed) { await sleep(500); e = await estimate(); }
    if (e !== null) await sleep(2000);
    x = await sample(); e = await estimate();
    w.withEstimate = { estimateKbps: e === null ? null : Math.round(e / 1000), width: x.width };
    return { detail: `${fmt(w)}; then with the router's estimate ${w.withEstimate.estimateKbps ?? 'none (15 s)'} kbps: ${x.width} wide`, measured: w };
  }, ['receive']);

  // Shaped: keeps decoding, on the low layer, the router having switched.
  await step('shaped', async () => {
    const before = await routerCounters();
    ns.shape({ rateKbit: opt.shapeKbit, lossPct: opt.loss, routerPorts: [opt.routerPort] });
    s.shaped = true;
    const w = await watch(opt.shapedSeconds * 1000, (x) => x.width === s.widths[0], 2);
    const after = await routerCounters();
    w.router = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
    w.shaper = ns.counters();
    measured.shaped = w;
    const detail = `${opt.shapeKbit} kbit/s, ${opt.loss}% loss: ${fmt(w)}; router: +${w.router.layer_switches} layer switches, ` +
      `+${w.router.keyframe_requests} keyframe requests (+${w.router.keyframe_throttled} throttled), NACKed packets: ` +
      `+${w.router.nack_answered} resent, +${w.router.nack_missed} not in its buffer, +${w.router.nack_throttled} throttled, ` +
      `+${w.router.retransmit_refused} refused, +${w.router.twcc_feedback} transport-cc feedback, +${w.router.probes_sent} probes, ` +
      `+${w.router.keyframes_for_loss} keyframes for loss, +${w.router.nack_left_behind} NACKed of a layer left, paced +${w.router.paced} (+${w.router.pacer_overdue} overdue, +${w.router.pacer_withdrawn} withdrawn); tbf dropped ${w.shaper.tbfDropped}, nft dropped ${w.shaper.lossDropped}; ` +
      `timeline from the shaping: ${timeline(w)}`;
    check(w.frames > 0, `no frame decoded in ${opt.shapedSeconds} s under shaping [${detail}]`);
    if (w.settledAfterMs === null) {
      const est = w.estimates.filter((e) => e !== null);
      if (!est.length) {
        throw new Pending(`the receiver stays on ${w.endWidth}x${w.endHeight} (the low layer is ${s.widths[0]} wide): the router has no ` +
          `bandwidth estimate for it (estimate_bps null: neither REMB nor an estimate of its own from transport-cc feedback; ` +
          `--feedback remb makes Chromium send REMB) [${detail}]`);
      }
      throw new Fail(`the receiver is not on the low layer (${w.endWidth} wide, want ${s.widths[0]}) although the router's ` +
        `estimate is ${est.map((e) => Math.round(e / 1000)).join('/')} kbps [${detail}]`);
    }
    check(w.router.layer_switches > 0, `on the low layer but the router counted no layer switch [${detail}]`);
    // How long the picture stands still is the no-freeze step's (pending while the router freezes it).
    return { detail: `${detail}; on the low layer after ${w.settledAfterMs} ms, then no gap over ${w.maxGapSettledMs} ms; ` +
      `on it in ${w.settledShare} % of the samples since (left it ${w.left} times)`, measured: w };
  }, ['top']);

  // Stays on the low layer while shaped (90 % of the samples once there). Pending (FAIL with
  // --strict) otherwise: the router's estimate rose above the link's rate (say the timeline).
  await step('low-layer', async () => {
    const w = measured.shaped;
    const detail = `on the low layer in ${w.settledShare} % of the samples once there (from ${w.settledAfterMs} ms), ` +
      `left it ${w.left} times; timeline: ${timeline(w)}`;
    if (w.settledShare < 90) {
      const msg = `the receiver does not stay on the low layer under shaping: ${detail}. It moves up when the router's ` +
        `estimate rises above the ${opt.shapeKbit} kbit/s the link has (in these runs: probes, whose short bursts the tbf's ` +
        `16 kB bucket lets through at line rate), then freezes and moves down again`;
      if (opt.strict) throw new Fail(msg);
      throw new Pending(msg);
    }
    return { detail };
  }, ['shaped']);

  // The done-when's "no freeze over 1 s", from the moment the link is shaped (the move down
  // included). Pending (FAIL with --strict) when it does not hold: what the router does is said.
  await step('no-freeze', async () => {
    const w = measured.shaped; const r = w.router;
    const where = w.settledAfterMs !== null && w.maxGapAtMs >= w.settledAfterMs ? 'on the low layer' : 'while moving down';
    const freeze = w.maxFreezeMs === null ? 'getStats() gives no freeze figures' :
      `longest getStats() freeze ${w.maxFreezeMs} ms (ended ${w.maxFreezeAtMs} ms after the shaping)`;
    const detail = `${freeze}; longest time without a new decoded frame, sampled every ~250 ms: ${w.maxGapMs} ms (${where}: from ${w.maxGapAtMs} ms after the ` +
      `shaping; on the low layer from ${w.settledAfterMs} ms); router meanwhile: NACKed packets +${r.nack_answered} resent, ` +
      `+${r.nack_missed} not in its buffer, +${r.nack_throttled} throttled, +${r.retransmit_refused} refused, ` +
      `+${r.keyframe_requests} keyframe requests; receiver: lost ${w.lost}, nacks ${w.nacks}, plis ${w.plis}; timeline: ${timeline(w)}`;
    // The rule is getStats()'s own freeze measure (the done-when's); the sampled gap, which
    // can read up to a sampling period long, decides only where the browser gives none.
    const worst = w.maxFreezeMs ?? w.maxGapMs;
    if (worst > opt.maxGapMs) {
      const msg = `a freeze over ${opt.maxGapMs} ms under shaping: ${detail}. The router moves the receiver only once its ` +
        `estimate for the receiver has dropped, then waits for a keyframe of the low layer; a loss it cannot repair ` +
        `(see the NACK counters) stalls the decoder until the next keyframe`;
      if (opt.strict) throw new Fail(msg);
      throw new Pending(msg);
    }
    return { detail };
  }, ['shaped']);

  // Shaping removed: climbs back.
  await step('climb', async () => {
    const before = await routerCounters();
    ns.unshape(); s.shaped = false;
    const deadline = Date.now() + opt.climbWait * 1000; const trace = []; let x; let x0 = null; let n = 0; let w;
    // Up and still up 3 s later; a climb the estimate takes back (up, then down again) is
    // counted and waited out while the deadline allows.
    let fellBack = 0;
    for (;;) {
      x = await sample();
      if (n++ % 8 === 0) trace.push({ s: Math.round((x.t - deadline) / 1000 + opt.climbWait), width: x.width, est: await estimate() });
      const up = x.width > s.widths[0] && x.frames > (x0 ?? x).frames;
      if (up || Date.now() > deadline) {
        w = await watch(3000);
        if (!up || w.endWidth > s.widths[0] || Date.now() > deadline) break;
        fellBack += 1; x0 = null;
        continue;
      }
      x0 = x0 ?? x;
      await sleep(250);
    }
    w.fellBack = fellBack;
    const after = await routerCounters();
    w.router = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
    w.trace = trace; measured.climb = w;
    const took = Math.round((x.t - (deadline - opt.climbWait * 1000)) / 100) / 10;
    const detail = `${fmt(w)}; ${fellBack} climb(s) taken back first; router +${w.router.layer_switches} layer switches, +${w.router.probes_sent} probes sent, ` +
      `+${w.router.twcc_feedback} transport-cc feedback; ` +
      `width/estimate(kbps) every 2 s: ${trace.map((t) => `${t.width}/${t.est === null ? '-' : Math.round(t.est / 1000)}`).join(' ')}`;
    if (!(x.width > s.widths[0])) {
      // The next layer needs its rate on top of the low layer's and the audio's: an estimate that
      // never gets there (a receiver's REMB stays near 1.5x what it receives) needs the router to
      // probe (padding), which it does not do here: pending, not a failure of this test.
      const est = trace.map((t) => t.est).concat(w.estimates).filter((e) => e !== null);
      const maxEst = est.length ? Math.max(...est) : null;
      const needKbps = (measured.layers?.[1]?.kbps ?? opt.kbps[1]) + 50;
      w.maxEstimateKbps = maxEst === null ? null : Math.round(maxEst / 1000); w.needKbps = needKbps;
      if (maxEst === null || maxEst / 1000 < needKbps) {
        throw new Pending(`no climb within ${opt.climbWait} s after the shaping was removed: the router's estimate for the ` +
          `receiver ${maxEst === null ? 'is missing' : `only reached ${Math.round(maxEst / 1000)} kbps`}, the middle layer needs ` +
          `~${needKbps} kbps (its rate + audio); a receiver's REMB grows to ~1.5x what it receives, so climbing needs the router ` +
          `to probe the link and its own estimate from transport-cc feedback to rise (${w.router.probes_sent ? `${w.router.probes_sent} probes sent` : 'no probe sent'}) [${detail}]`);
      }
      throw new Fail(`no climb within ${opt.climbWait} s after the shaping was removed: still ${x.width} wide [${detail}]`);
    }
    check(w.frames > 0, `climbed to ${x.width} but decodes nothing [${detail}]`);
    check(w.endWidth > s.widths[0], `climbed to ${x.width} but is back on ${w.endWidth} 3 s later [${detail}]`);
    return { detail: `decoding ${x.width} wide ${took} s after the shaping was removed, ${w.endWidth} wide 3 s later; ${detail}`, measured: w };
  }, ['shaped']);

  // A second viewer asks for small video (WHEP &max_height= the middle layer's height): whatever
  // its bandwidth, it decodes that layer or the low one, never the top.
  await step('requested-size', async () => {
    const cap = measured.layers?.[1]?.frameHeight;
    check(cap > 0, 'the middle layer\'s height is not known');
    await openPage('C', browsers[1]);
    const { sdp } = await ev('C', (o) => cc.viewer(o), { codecs: [`video/${opt.codec}`], onlyCodecs: true });
    const q = `participant=${encodeURIComponent(s.publisher)}&max_height=${cap}`;
    await signal('C', `/v1/calls/${s.call}/whep?${q}`, s.users[1].session, sdp);
    await waitConnected('C', 10000);
    const inVideo = async () => (await stats('C')).inVideo || {};
    // The router applies the size at its first rate sweep after the layer's keyframe.
    const deadline = Date.now() + 10000; let v = await inVideo();
    while (!((v.framesDecoded ?? 0) > 0 && v.frameHeight <= cap) && Date.now() < deadline) { await sleep(250); v = await inVideo(); }
    const from = v.framesDecoded ?? 0; const heights = [];
    for (const end = Date.now() + 3000; Date.now() < end;) { await sleep(250); v = await inVideo(); heights.push(v.frameHeight ?? 0); }
    const leg = Object.values(await routerParticipants(s.call)).find((p) => p.max_height === cap);
    const detail = `cap ${cap} px (layers ${s.widths.join('/')} wide), heights decoded over 3 s: ${[...new Set(heights)].join('/')}, ` +
      `${(v.framesDecoded ?? 0) - from} frames; the router's leg ${leg ? `max_height ${leg.max_height}` : 'not found'}`;
    check(leg, `the router holds no leg with max_height ${cap} [${detail}]`);
    check((v.framesDecoded ?? 0) > from, `decodes nothing [${detail}]`);
    check(heights.every((h) => h > 0 && h <= cap), `decoded frames taller than ${cap} [${detail}]`);
    return { detail };
  }, ['layers']);

  measured.router = await routerCounters().catch((e) => ({ error: String(e.message || e) }));
  if (s.shaped) ns.unshape();
  if (s.call) await http('DELETE', `${opt.calls}/v1/calls/${s.call}`, { token: s.users[0].session, timeoutMs: 3000 }).catch(() => {});
}

// ---------------------------------------------------------------- main
let ns = null;
async function main() {
  const problem = netnsProblem();
  // Without root (or ip/tc/nft) nothing here can run: SKIP, as webapp-e2e.mjs skips its impairment steps.
  if (problem) { results.push({ step: 'netns', ok: null, skipped: problem }); line(`SKIP netns: ${problem}`); return; }
  ns = new Netns();
  if (!ns.exists() || !ns.hostUp()) {
    ns.up();
    line(`# created ${ns.name} now: a router started before it lists no candidate on ${ns.hostAddr} (make simulcast-e2e creates it first)`);
    if (!opt.keepNetns) downOnExit(ns);
  } else {
    // Not ours to delete (the runner's trap does): the shaping is, whatever happens.
    process.on('exit', () => ns.unshape());
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) process.on(sig, () => { ns.unshape(); process.exit(code); });
  }
  try { secret = readFileSync(opt.secretFile, 'utf8').trim(); } catch { secret = null; }
  const y4m = makeY4m(opt.width, opt.height);
  pagesServers.loopback = await servePages('127.0.0.1');
  pagesServers.veth = await servePages(ns.hostAddr);
  // The publisher on the host (3 layers need the simulcast layer limit off below 960x540).
  const fieldTrials = '--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/';
  browsers.push(await launchChromium({ y4m, allowHosts: [ns.hostAddr], extraArgs: [fieldTrials] }));
  browsers.push(await launchChromium({ allowHosts: [ns.hostAddr], netns: ns.name }));
  line(`# chromium ${browsers[0].version}; publisher ${opt.width}x${opt.height} ${opt.codec} layers ` +
    `${LAYERS.map((l) => `${l.rid}:/${l.scaleResolutionDownBy}@${l.maxBitrate / 1000}k`).join(' ')}; receiver in ${ns.name} ` +
    `(${ns.nsAddr}); pages and calls via ${pagesServers.loopback.base} and ${pagesServers.veth.base}; shaping ${opt.shapeKbit} kbit/s + ${opt.loss}% loss on ${ns.hostIf}`);
  await scenario(ns);
}

const timer = setTimeout(() => { results.push({ step: 'timeout', ok: false, error: `run took over ${opt.timeout} s` }); line(`FAIL timeout: run took over ${opt.timeout} s`); finish(); }, opt.timeout * 1000);
let finished = false;
async function finish() {
  if (finished) return; finished = true;
  clearTimeout(timer);
  const failed = results.filter((r) => r.ok === false);
  if (failed.length) for (const [n, p] of Object.entries(pages)) if (p.consoleLines.length) line(`# page ${n} console (last 10): ${p.consoleLines.slice(-10).join(' | ')}`);
  const passed = results.filter((r) => r.ok === true).length;
  const pending = results.filter((r) => r.pending).length;
  const skipped = results.filter((r) => r.ok === null && !r.pending).length;
  const summary = { ok: failed.length === 0 && (passed > 0 || results.some((r) => r.step === 'netns')), chromium: browsers[0]?.version, codec: opt.codec, size: `${opt.width}x${opt.height}`,
    feedback: opt.feedback, shaping: { kbit: opt.shapeKbit, loss: opt.loss }, loadAverage: loadavg()[0], totalMs: Date.now() - t0, steps: results, measured };
  if (opt.json) writeFileSync(opt.json, JSON.stringify(summary, null, 2) + '\n');
  line(JSON.stringify(summary));
  line(`simulcast-e2e: ${passed} passed, ${failed.length} failed${pending ? `, ${pending} pending` : ''}${skipped ? `, ${skipped} skipped` : ''}`);
  closed = true;
  if (ns) ns.unshape();
  await Promise.race([(async () => {
    for (const p of Object.values(pages)) await p.ctx.close().catch(() => {});
    for (const b of browsers) await b.close();
    for (const x of Object.values(pagesServers)) await x.close();
  })(), sleep(5000)]);
  process.exit(summary.ok ? 0 : 1);
}
main().then(finish, (e) => { results.push({ step: 'harness', ok: false, error: String(e && e.stack || e) }); line(`FAIL harness: ${e && e.stack || e}`); finish(); });

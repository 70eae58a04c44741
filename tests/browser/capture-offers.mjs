#!/usr/bin/env node
// Captures real SDP offers from headless Chromium and Firefox ESR for corecast-proto's SDP
// parser tests (router/proto/tests/fixtures/sdp/). Each offer is built by pages/offer.html
// (no ICE servers; ICE gathering complete) and POSTed back to a local HTTP server.
//
// Addresses are made documentation-only: every host address other than loopback and 0.0.0.0
// becomes 192.0.2.N / 2001:db8::N (the same address the same N), so no machine's address is
// committed. Everything else (line order, CRLF, ufrag/pwd, fingerprints, SSRCs) is as sent.
//
// Usage: node tests/browser/capture-offers.mjs [--out DIR] [--only chromium|firefox]
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './lib/server.mjs';
import { launchChromium } from './lib/chromium.mjs';
import { launchFirefox, firefoxAvailable, FIREFOX } from './lib/firefox.mjs';
import { execFileSync } from 'node:child_process';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const out = resolve(opt('--out', join(here, '../../router/proto/tests/fixtures/sdp')));
const only = opt('--only', null);
mkdirSync(out, { recursive: true });

function sanitize(sdp) {
  const v4 = new Map(); const v6 = new Map();
  const map = (a) => {
    if (a === '0.0.0.0' || a.startsWith('127.') || a === '::1' || a === '::' || a.endsWith('.local')) return a;
    if (a.includes(':')) { if (!v6.has(a)) v6.set(a, `2001:db8::${v6.size + 1}`); return v6.get(a); }
    if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) { if (!v4.has(a)) v4.set(a, `192.0.2.${v4.size + 1}`); return v4.get(a); }
    return a;
  };
  return sdp.split('\r\n').map((line) => {
    if (line.startsWith('a=candidate:')) {
      const f = line.split(' ');
      f[4] = map(f[4]);
      const r = f.indexOf('raddr'); if (r > 0) f[r + 1] = map(f[r + 1]);
      return f.join(' ');
    }
    if (line.startsWith('c=IN ') || line.startsWith('a=rtcp:')) {
      const f = line.split(' '); f[f.length - 1] = map(f[f.length - 1]); return f.join(' ');
    }
    return line;
  }).join('\r\n');
}

const KINDS = [
  ['whip', 'whip-offer'], ['whip-av1', 'whip-av1-offer'], ['whep', 'whep-offer'], ['whip-screen', 'whip-screen-offer'],
];
const versions = {};
const srv = await serveStatic(join(here, 'pages'));
let failures = 0;

function save(name, sdp) {
  if (sdp.startsWith('ERROR')) { console.log(`FAIL ${name}: ${sdp}`); failures++; return; }
  writeFileSync(join(out, name), sanitize(sdp));
  const m = sdp.split('\r\n').filter((l) => l.startsWith('m=')).map((l) => l.split(' ')[0].slice(2));
  console.log(`ok   ${name} (${sdp.length} bytes, m= ${m.join(',')}, ${sdp.split('a=candidate:').length - 1} candidates)`);
}

if (only !== 'firefox') {
  const c = await launchChromium();
  versions.chromium = c.version;
  try {
    for (const [kind, base] of KINDS) {
      const ctx = await c.browser.newContext();
      const page = await ctx.newPage();
      const sink = `chromium-${base}`;
      await page.goto(`${srv.base}/offer.html?kind=${kind}&sink=${sink}`);
      save(`${sink}.sdp`, await srv.waitFor(sink, 15000));
      versions.chromiumUA = await srv.waitFor(`${sink}.ua`, 5000);
      await ctx.close();
    }
  } finally { await c.close(); }
}

if (only !== 'chromium') {
  if (!firefoxAvailable()) { console.log(`skip firefox: no ${FIREFOX}`); }
  else {
    versions.firefox = execFileSync(FIREFOX, ['--version'], { encoding: 'utf8' }).trim();
    for (const [kind, base] of KINDS) {
      if (kind === 'whip-av1') continue; // Firefox offers AV1 only where it can encode it; not a separate case
      const sink = `firefox-esr-${base}`;
      const ff = launchFirefox(`${srv.base}/offer.html?kind=${kind}&sink=${sink}`);
      try {
        save(`${sink}.sdp`, await srv.waitFor(sink, 45000));
        versions.firefoxUA = await srv.waitFor(`${sink}.ua`, 5000);
      } catch (e) {
        console.log(`FAIL ${sink}: ${e.message}\n${ff.stderr().slice(-2000)}`); failures++;
      } finally { await ff.close(); }
    }
  }
}
await srv.close();
console.log(JSON.stringify(versions, null, 1));
process.exit(failures ? 1 : 0);

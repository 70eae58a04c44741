// The web app's pages as the test drives and reads them: one browser context each, the
// tiles' data-* (what the app's network indicator shows), the people list, the messages, and
// the account and call actions a person takes.
import { until, sleep, check, Fail } from './report.mjs';

// The open pages by who uses them: { page, ctx, log }.
export const pages = {};
let base = null; let browser = null;
// The app's origin and the browser the pages open in.
export function usePages(appBase, chromiumBrowser) { base = appBase; browser = chromiumBrowser; }

export async function openPage(who, viewport) {
  const ctx = await browser.newContext({ viewport, baseURL: base });
  const page = await ctx.newPage();
  const log = [];
  page.on('console', (m) => { log.push(`${m.type()}: ${m.text()}`); if (log.length > 100) log.shift(); });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) log.push(`http: ${r.request().method()} ${new URL(r.url()).pathname} → ${r.status()}`); });
  page.setDefaultTimeout(10000);
  pages[who] = { page, ctx, log };
  return page;
}
export const text = async (page, sel) => (await page.locator(sel).first().textContent({ timeout: 10000 })).trim();
export const token = (page) => page.evaluate(() => localStorage.getItem('corecast.session'));
export async function callStore(page, call) {
  const r = await fetch(`${base}/v1/calls/${call}`, { headers: { Authorization: `Bearer ${await token(page)}` }, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: r.status === 200 ? await r.json() : null };
}
// The remote tiles a page shows, with what their data-* say.
export const tiles = (page) => page.$$eval('.tile:not(.self)', (els) => els.map((e) => ({ ...e.dataset, videoWidth: e.querySelector('video').videoWidth })));
// A tile of `name` decoding frames, at the sender's size: two samples 1.5 s apart. sender: the
// sender's page, whose own tile's sent size is read again until the received size matches it
// (within 5 s: on a loaded machine Chromium's encoder lowers and raises the size now and then).
// On 2 loaded cores the stalled-video rule may move the page to SD by itself, which hides the
// tiles: then the person's "Back to HD" (#back-to-hd, only shown after an automatic move).
export async function playing(page, name, sender, ms = 20000) {
  const pick = async () => {
    if (await page.locator('#back-to-hd').count()) await page.click('#back-to-hd', { timeout: 2000 }).catch(() => {});
    return (await tiles(page)).find((t) => t.name === name && Number(t.framesDecoded) > 0);
  };
  let a = null;
  let b = await until(ms + 1500, async () => {
    const x = await pick();
    if (a && x && Number(x.framesDecoded) > Number(a.framesDecoded)) return x;
    a = x; if (a) await sleep(1500);
    return null;
  }, `a playing tile of ${name}`).catch(() => {
    throw new Fail(a ? `${name}'s tile: frames decoded not increasing (${a.framesDecoded} over 1.5 s)` : `a playing tile of ${name} not within ${ms} ms`);
  });
  if (sender) {
    let sent;
    await until(5000, async () => {
      sent = await selfTile(sender); b = await pick();
      return b && `${b.frameWidth}x${b.frameHeight}` === `${sent.sentWidth}x${sent.sentHeight}`;
    }, `${name}'s tile at the sent size`).catch(() => { throw new Fail(`${name}: received ${b && b.frameWidth}x${b && b.frameHeight}, sent ${sent.sentWidth}x${sent.sentHeight}`); });
  }
  check(b.videoWidth > 0, `${name}: the video element shows no picture`);
  return b;
}
export const selfTile = (page) => page.$eval('.tile.self', (e) => ({ ...e.dataset }));
// The other's video plays on a page: their tile in HD, the composite in SD (on 2 loaded cores
// the stalled-video rule may move a page to SD by itself at any time: that is the app working).
export const inSd = async (page) => await page.getAttribute('#view-sd', 'aria-pressed') === 'true';
export async function videoPlays(page, name, ms = 25000) {
  const pick = async () => {
    const view = (await inSd(page)) ? 'SD' : 'HD';
    const t = (await tiles(page)).find((x) => x.name === (view === 'SD' ? 'Everyone (SD composite)' : name) && Number(x.framesDecoded) > 0);
    return t ? { ...t, view } : null;
  };
  let a = null;
  return until(ms, async () => { // two samples 1.5 s apart of the same tile, frames increasing
    const b = await pick();
    const ok = a && b && a.view === b.view && Number(b.framesDecoded) > Number(a.framesDecoded);
    if (!ok) { a = b; if (a) await sleep(1500); }
    return ok ? b : null;
  }, `${name}'s video (or the SD composite) playing`);
}
// Back to HD for the steps that follow (the person's choice: the SD button again).
export async function hd(page) { if (await inSd(page)) await page.click('#view-sd'); }
// The network indicator of each remote tile: its word, what it says in full (title, aria-label).
export const indicators = (page) => page.$$eval('.tile:not(.self)', (els) => els.map((e) => {
  const n = e.querySelector('.net');
  return { name: e.dataset.name, grade: n.textContent, title: n.title, label: n.getAttribute('aria-label') };
}));
// Who is highlighted as speaking on a page: tiles (class) and the people list's tag.
export const speaking = (page) => page.evaluate(() => ({
  tiles: [...document.querySelectorAll('.tile.speaking:not(.self)')].map((e) => e.dataset.name),
  people: [...document.querySelectorAll('#people li')].filter((li) => li.querySelector('.tag.speaking')).map((li) => li.firstChild.textContent),
}));
// A message (banner) by id: its words, without its buttons; null when not shown.
export const note = (page, id) => page.evaluate((i) => {
  const b = document.getElementById(i);
  return b ? (b.querySelector('.banner-text') || b).textContent.trim() : null;
}, id);

export async function register(page, u, { expectError } = {}) {
  await page.goto('/register');
  await page.fill('#login', u.login); await page.fill('#email', u.email); await page.fill('#name', u.name); await page.fill('#password', u.password);
  await page.click('button[type=submit]');
  if (expectError) { await page.locator(`${expectError}:not(:empty)`).waitFor(); return text(page, expectError); }
  await page.waitForURL((url) => url.pathname === '/' || url.pathname.startsWith('/c/'));
  return null;
}
export async function login(page, u, password = u.password) {
  await page.fill('#login', u.login); await page.fill('#password', password);
  await page.click('button[type=submit]');
}
export async function joinCall(page) {
  await page.click('#join');
  await page.locator('#leave').waitFor({ timeout: 20000 });
}

// A page's "Video of" the 1 most active speaker: the silent one's tile shows paused and
// decodes nothing for 2 s while the speaker's goes on; "everyone" again: it decodes again.
// inHd(): whether the page is (back) in HD.
export async function speakersOnly(page, inHd, { speaker, silent }) {
  const tile = async (name) => (await tiles(page)).find((t) => t.name === name);
  const frames = async (name) => Number((await tile(name))?.framesDecoded || 0);
  await page.selectOption('#last-n', '1');
  await until(15000, async () => await inHd() && (await tile(silent))?.paused === 'true' && (await tile(speaker))?.paused === 'false',
    `the tile of the silent ${silent} paused, ${speaker}'s not`);
  const before = { silent: await frames(silent), speaker: await frames(speaker) };
  await sleep(2000);
  const after = { silent: await frames(silent), speaker: await frames(speaker) };
  check(after.silent === before.silent, `${silent}'s video paused: ${before.silent} → ${after.silent} frames in 2 s`);
  check(after.speaker > before.speaker, `${speaker}'s video goes on: ${before.speaker} → ${after.speaker} frames in 2 s`);
  await page.selectOption('#last-n', '0');
  const t0 = Date.now();
  await until(15000, async () => await inHd() && (await frames(silent)) > after.silent && (await tile(silent))?.paused === 'false',
    `the tile of ${silent} decoding again with everyone's video`);
  return `with the 1 most active speaker: ${silent}'s video paused (${before.silent} → ${after.silent} frames in 2 s), ` +
    `${speaker}'s on (${before.speaker} → ${after.speaker}); everyone: ${silent} decoding again after ${Date.now() - t0} ms`;
}

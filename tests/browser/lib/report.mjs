// The web app test's reporting: one line per step (PASS/FAIL/SKIP with its time and what it
// saw), the results for the summary, bounded waits. As in webrtc-e2e.mjs.
export const results = [];
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export class Fail extends Error {}
export class Skip extends Error {} // the machine cannot run the step (e.g. no root for nftables)
export const check = (cond, msg) => { if (!cond) throw new Fail(msg); };
let closed = false; // set once the summary is out: nothing printed after it
let only = null;
// Runs only these steps (null: all).
export function onlySteps(list) { only = list; }
// The summary is out: nothing more is printed.
export function closeOutput() { closed = true; }
export const line = (s) => { if (!closed) process.stdout.write(`${s}\n`); };
export async function step(name, fn, needs = []) {
  if (only && !only.includes(name)) return;
  const missing = needs.filter((n) => !results.find((r) => r.step === n && r.ok));
  if (missing.length) { results.push({ step: name, ok: null, skipped: `needs ${missing.join(', ')}` }); line(`SKIP ${name}: needs ${missing.join(', ')}`); return; }
  const s = Date.now();
  try {
    const info = (await fn()) || {};
    results.push({ step: name, ok: true, ms: Date.now() - s, ...info });
    line(`PASS ${name} (${Date.now() - s} ms)${info.detail ? `: ${info.detail}` : ''}`);
  } catch (e) {
    if (e instanceof Skip) { results.push({ step: name, ok: null, skipped: e.message }); line(`SKIP ${name}: ${e.message}`); return; }
    const msg = e instanceof Fail ? e.message : (e && e.stack) || String(e);
    results.push({ step: name, ok: false, ms: Date.now() - s, error: msg });
    line(`FAIL ${name} (${Date.now() - s} ms): ${msg}`);
  }
}
// Polls fn (returning a truthy value or null) every 200 ms until ms pass.
export async function until(ms, fn, what) {
  const end = Date.now() + ms; let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Fail(`${what} not within ${ms} ms`);
    await sleep(200);
  }
}

// The web app's automatic HD → SD rule (web/app/quality.js), with synthetic seconds:
// node --test tests/browser/quality.test.mjs (part of `make web-e2e`; no browser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QualityGovernor } from '../../web/app/quality.js';

const run = (g, samples, t0 = 0) => samples.map((s, i) => ({ t: t0 + i * 1000, ...g.feed({ ...s, nowMs: t0 + i * 1000 }) }));
const good = { lossPct: 0, fps: [30, 29] };
const lossy = { lossPct: 9, fps: [25, 24] };

test('a short burst of loss does not move to SD', () => {
  const g = new QualityGovernor();
  const out = run(g, [lossy, lossy, lossy, good, lossy, lossy, lossy, good]);
  assert.ok(out.every((o) => o.mode === 'hd'));
});

test('four lossy seconds in a row move to SD, with the reason', () => {
  const g = new QualityGovernor();
  const out = run(g, [good, lossy, lossy, lossy, lossy]);
  assert.deepEqual(out.map((o) => o.mode), ['hd', 'hd', 'hd', 'hd', 'sd']);
  assert.ok(out[4].changed);
  assert.match(out[4].reason, /9% .*lost/);
});

test('stalled videos (median fps) count as bad, one slow video does not', () => {
  const one = new QualityGovernor();
  assert.ok(run(one, Array(6).fill({ lossPct: 0, fps: [2, 30, 30] })).every((o) => o.mode === 'hd'));
  const all = new QualityGovernor();
  assert.equal(run(all, Array(4).fill({ lossPct: 0, fps: [3, 4, 30] })).at(-1).mode, 'sd');
});

test('back to HD only after the hold of clean seconds; a relapse doubles the hold', () => {
  const g = new QualityGovernor({ holdMs: 10_000 });
  run(g, Array(4).fill(lossy));
  assert.equal(g.mode, 'sd');
  // 9 clean seconds: still SD; a lossy second restarts the count.
  let out = run(g, [...Array(9).fill(good), lossy, ...Array(9).fill(good)], 4000);
  assert.ok(out.every((o) => o.mode === 'sd'));
  out = run(g, Array(3).fill(good), 23_000);
  assert.equal(out.at(-1).mode, 'hd');
  const upAt = out.findIndex((o) => o.changed) * 1000 + 23_000;
  // Bad again within a minute: down again, and now it takes 20 s to come back.
  out = run(g, Array(4).fill(lossy), upAt + 1000);
  assert.equal(out.at(-1).mode, 'sd');
  const downAt = upAt + 4000;
  out = run(g, Array(15).fill(good), downAt + 1000);
  assert.ok(out.every((o) => o.mode === 'sd'), 'the doubled hold');
  out = run(g, Array(8).fill(good), downAt + 16_000);
  assert.equal(out.at(-1).mode, 'hd');
});

test('a choice by the person resets the counters', () => {
  const g = new QualityGovernor();
  run(g, [lossy, lossy, lossy]);
  g.reset('hd', 3000);
  assert.equal(run(g, [lossy], 4000)[0].mode, 'hd', 'counting starts over');
});

// Video of the most active speakers only (web/app/lastn.js):
// node --test tests/browser/lastn.test.mjs (part of `make web-e2e`; no browser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPEAKER_CHOICES, PAUSE_MS, lastNFor, withLastN, watchPause } from '../../web/app/lastn.js';

test('everyone by default: no last_n asked', () => {
  assert.equal(SPEAKER_CHOICES[0], 0);
  assert.equal(lastNFor(0, true), 0);
  assert.equal(withLastN('participant=7&max_height=360', 0, true), 'participant=7&max_height=360');
});

test('a publishing viewer asks for one more: its own camera has a place among the speakers', () => {
  assert.equal(lastNFor(2, true), 3);
  assert.equal(lastNFor(2, false), 2);
  assert.equal(withLastN('participant=7', 4, true), 'participant=7&last_n=5');
  assert.equal(withLastN('participant=7', 1, false), 'participant=7&last_n=1');
  // Within the router's range (1..=255) for every choice.
  for (const n of SPEAKER_CHOICES.filter((n) => n > 0)) assert.ok(lastNFor(n, true) <= 255);
});

test('a limited camera that decodes no new frame for PAUSE_MS shows as paused, and not before', () => {
  let w = watchPause(undefined, 100, 0, true);
  assert.equal(w.paused, false);
  w = watchPause(w, 100, PAUSE_MS - 1, true);
  assert.equal(w.paused, false, 'not yet');
  w = watchPause(w, 100, PAUSE_MS, true);
  assert.equal(w.paused, true);
  // A new frame: playing again at once.
  w = watchPause(w, 101, PAUSE_MS + 1000, true);
  assert.equal(w.paused, false);
});

test('not limited (everyone, a camera off, a leg not connected): never paused', () => {
  let w = watchPause(undefined, 5, 0, false);
  w = watchPause(w, 5, 10 * PAUSE_MS, false);
  assert.equal(w.paused, false);
  // Limited again after a long still time: paused at once (nothing came all that while).
  assert.equal(watchPause(w, 5, 10 * PAUSE_MS + 1, true).paused, true);
});

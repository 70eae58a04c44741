// The camera's simulcast layers and the size a viewer asks for (web/app/layers.js):
// node --test tests/browser/layers.test.mjs (part of `make web-e2e`; no browser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cameraEncodings, tileMaxHeight, HEIGHT_STEPS } from '../../web/app/layers.js';

const plan = (e) => e && e.map((l) => `${l.rid}/${l.scaleResolutionDownBy}@${l.maxBitrate / 1000}k`).join(' ');

test('a 640x360 camera: three layers q/h/f at 4/2/1 and 150k/500k/1.5M, lowest first', () => {
  assert.equal(plan(cameraEncodings({ width: 640, height: 360 })), 'q/4@150k h/2@500k f/1@1500k');
  // Without a scalabilityMode Chromium sends only the first encoding of AV1.
  assert.ok(cameraEncodings({ width: 640, height: 360 }).every((l) => l.scalabilityMode === 'L1T1'));
});

test('720p and 1080p: three layers, the top ones with more bits', () => {
  assert.equal(plan(cameraEncodings({ width: 1280, height: 720 })), 'q/4@500k h/2@1500k f/1@2500k');
  assert.equal(plan(cameraEncodings({ width: 1920, height: 1080 })), 'q/4@800k h/2@1500k f/1@4000k');
});

test('small captures get fewer layers, the smallest none (one plain encoding)', () => {
  assert.equal(plan(cameraEncodings({ width: 320, height: 240 })), 'h/2@150k f/1@500k');
  assert.equal(plan(cameraEncodings({ width: 320, height: 180 })), 'h/2@150k f/1@500k');
  assert.equal(cameraEncodings({ width: 240, height: 160 }), undefined);
  assert.equal(cameraEncodings({ width: 160, height: 90 }), undefined);
});

test('a portrait capture is planned by its short side', () => {
  assert.equal(plan(cameraEncodings({ width: 360, height: 640 })), 'q/4@150k h/2@500k f/1@1500k');
});

test('no size known (no camera, no settings): no simulcast', () => {
  assert.equal(cameraEncodings({}), undefined);
  assert.equal(cameraEncodings(), undefined);
  assert.equal(cameraEncodings({ width: 640 }), undefined);
});

test('a tile asks for its device pixels rounded up to a step', () => {
  assert.equal(tileMaxHeight(146), 180); // the grid's smallest tile (260 px wide, 16:9)
  assert.equal(tileMaxHeight(180), 180);
  assert.equal(tileMaxHeight(181), 360);
  assert.equal(tileMaxHeight(265), 360);
  assert.equal(tileMaxHeight(265, 2), 540); // a retina screen: twice the pixels
  assert.equal(tileMaxHeight(400, 1.5), 720);
  assert.equal(tileMaxHeight(40), 90);
  assert.equal(tileMaxHeight(5000, 2), HEIGHT_STEPS.at(-1));
});

test('a tile not laid out asks for nothing', () => {
  assert.equal(tileMaxHeight(0), null);
  assert.equal(tileMaxHeight(undefined), null);
  assert.equal(tileMaxHeight(100, 0), 180, 'an unknown ratio counts as 1');
});

test('every step is a valid max_height for the calls service (16..=4320)', () => {
  for (const s of HEIGHT_STEPS) assert.ok(s >= 16 && s <= 4320 && Number.isInteger(s));
});

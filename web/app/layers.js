// Simulcast for the camera, and the size each viewer asks for. Pure (no DOM): unit-tested by
// tests/browser/layers.test.mjs.
//
// The camera is published as up to three simulcast encodings (RIDs q, h, f at a quarter, half
// and full size, lowest first, as the router ranks them: router/PROTOCOL.md § WebRTC legs); a
// layer under MIN_LAYER_HEIGHT pixels is not worth its bits, so a small capture has fewer.
// Each WHEP viewer asks (`max_height`) for the height its tile shows, rounded up to a step, so
// that the router sends the best layer that fits rather than the full size.

// A layer's short side below this is too small to be worth sending.
export const MIN_LAYER_HEIGHT = 90;

// The quarter, half and full layers, lowest first (RFC 8853 RIDs; the names mediasoup and
// ion-sfu use).
const LAYERS = [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f', scaleResolutionDownBy: 1 }];

// A layer's bitrate cap by its short side (pixels): 160x90 at 150 kbit/s, 320x180 at 500,
// 640x360 at 1.5 Mbit/s (as tests/browser/simulcast-e2e.mjs sends), 720p at 2.5, 1080p at 4.
export function layerBitrate(height) {
  if (height <= 120) return 150_000;
  if (height <= 240) return 500_000;
  if (height <= 300) return 800_000;
  if (height <= 540) return 1_500_000;
  if (height <= 720) return 2_500_000;
  return 4_000_000;
}

// The camera's sendEncodings for a capture of width × height (the track's settings), or
// undefined for one plain encoding (no simulcast: a capture too small to split, or unknown).
// Each layer names its scalabilityMode: without one, Chromium does no simulcast for AV1 or VP9
// (the codec the router answers with: AV1 first) and sends only the first encoding.
export function cameraEncodings({ width, height } = {}) {
  const short = Math.min(width || 0, height || 0);
  if (!(short > 0)) return undefined;
  const layers = LAYERS.filter((l) => short / l.scaleResolutionDownBy >= MIN_LAYER_HEIGHT)
    .map((l) => ({ ...l, maxBitrate: layerBitrate(Math.round(short / l.scaleResolutionDownBy)), scalabilityMode: 'L1T1' }));
  return layers.length >= 2 ? layers : undefined;
}

// What a viewer asks for is rounded up to one of these (pixels high): the layers of the usual
// captures (180p, 360p, 720p, 1080p, each halved and quartered), so that a tile a few pixels
// larger or smaller asks for the same thing and does not open a new session.
export const HEIGHT_STEPS = [90, 180, 360, 540, 720, 1080, 1440, 2160];

// The `max_height` for a tile shown cssHeight CSS pixels high on a screen of devicePixelRatio
// dpr: the device pixels it covers, rounded up to a step (the tallest step above them all);
// null when the tile is not laid out (hidden, 0 high): then nothing is asked.
export function tileMaxHeight(cssHeight, dpr = 1) {
  const px = Math.ceil((cssHeight || 0) * (dpr > 0 ? dpr : 1));
  if (!(px > 0)) return null;
  return HEIGHT_STEPS.find((s) => s >= px) ?? HEIGHT_STEPS.at(-1);
}

// Video of the most active speakers only (Last-N: router/PROTOCOL.md, the WHEP `last_n`). In a
// large call a person can ask for the cameras of the N people who spoke most lately; the
// router pauses the other cameras' video to them (their audio goes on), and resumes one with a
// key frame when its person speaks up. Pure (no DOM): unit-tested by tests/browser/lastn.test.mjs.

// The choices offered: 0 is everyone's video.
export const SPEAKER_CHOICES = [0, 1, 2, 4, 9];

// A camera whose video decoded no new frame for this long, while the person's choice limits
// the video and their camera is on, is shown as paused.
export const PAUSE_MS = 1500;

// The `last_n` a camera's WHEP session asks for when the person wants the video of the `n`
// most active speakers (0: none asked). The router ranks every publisher of the call, this
// person's own camera among them, so one more while they publish: their own place on the
// stage is not a tile here.
export function lastNFor(n, publishing) {
  return n > 0 ? n + (publishing ? 1 : 0) : 0;
}

// The WHEP query of a camera: `base` with the `last_n` above, when one is asked.
export function withLastN(base, n, publishing) {
  const k = lastNFor(n, publishing);
  return k > 0 ? `${base}&last_n=${k}` : base;
}

// One camera tile's pause watch, fed an inbound() sample (stats.js) at `nowMs`: `limited` when
// the person's choice limits the video and the camera is on and connected. Returns the new
// state ({ frames, since, paused }): paused once no new frame was decoded for PAUSE_MS.
export function watchPause(prev, framesDecoded, nowMs, limited) {
  const moved = !prev || framesDecoded !== prev.frames;
  const since = moved ? nowMs : prev.since;
  return { frames: framesDecoded, since, paused: Boolean(limited) && nowMs - since >= PAUSE_MS };
}

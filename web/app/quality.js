// The automatic HD → SD move, with hysteresis. Pure (no DOM, no clock of its own):
// feed it one sample per second, it says which view fits.
//
// In HD (every participant's video) a second is "bad" when the grid loses packets
// (>= downLossPct over all streams) or its videos stall (median decoded frame rate below
// downFps while frames are expected). downAfter bad seconds in a row move to SD (the
// server's one composite). Back to HD only after `holdMs` of good SD seconds (loss below
// upLossPct) since the move; a new move down within `flapMs` of going back up doubles the
// hold (up to maxHoldMs), so a link at the edge does not flap.

export const DEFAULTS = {
  downLossPct: 5, downFps: 8, downAfter: 4, upLossPct: 1,
  holdMs: 30_000, flapMs: 60_000, maxHoldMs: 300_000,
};

export class QualityGovernor {
  constructor(opts = {}) {
    this.o = { ...DEFAULTS, ...opts };
    this.mode = 'hd'; this.bad = 0; this.hold = this.o.holdMs;
    this.since = 0; this.goodSince = null; this.upAt = -Infinity; this.reason = '';
  }

  // sample: { lossPct, fps: [decoded fps per remote video], nowMs }. Returns
  // { mode, changed, reason }.
  feed({ lossPct = 0, fps = [], nowMs }) {
    let changed = false;
    if (this.mode === 'hd') {
      const sorted = [...fps].sort((a, b) => a - b);
      const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
      const lossy = lossPct >= this.o.downLossPct;
      const stalled = median !== null && median < this.o.downFps;
      this.bad = lossy || stalled ? this.bad + 1 : 0;
      if (this.bad >= this.o.downAfter) {
        if (nowMs - this.upAt < this.o.flapMs) this.hold = Math.min(this.hold * 2, this.o.maxHoldMs);
        this.mode = 'sd'; this.since = nowMs; this.goodSince = null; this.bad = 0; changed = true;
        this.reason = lossy ? `${lossPct}% of the video was lost` : `the videos stalled (${median} fps)`;
      }
    } else {
      if (lossPct < this.o.upLossPct) { if (this.goodSince === null) this.goodSince = nowMs; } else this.goodSince = null;
      if (this.goodSince !== null && nowMs - this.goodSince >= this.hold && nowMs - this.since >= this.hold) {
        this.mode = 'hd'; this.upAt = nowMs; changed = true; this.reason = 'the network recovered';
      }
    }
    return { mode: this.mode, changed, reason: this.reason };
  }

  // The person chose a view: start over from it (an explicit HD keeps the backoff).
  reset(mode, nowMs) {
    this.mode = mode; this.bad = 0; this.since = nowMs; this.goodSince = null;
  }
}

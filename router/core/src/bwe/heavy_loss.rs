//! The fast path down: a feedback that reports most of a burst lost means
//! a queue overflowing now (a link whose capacity just fell under what is
//! sent: a policer, a handover), not the random loss the loss-based rate
//! weighs over its 300 ms intervals. Waiting for that interval, and then
//! cutting by half the loss per interval, takes a second or more to come
//! down from an HD layer to a link a fifth of it; meanwhile everything the
//! receiver gets is in pieces and its picture stands still.
//!
//! So when one feedback (at least [`MIN_PACKETS`] packets) reports
//! [`HEAVY_LOSS`] or more lost, the estimate is cut at once to
//! [`BETA`] × what arrived lately — over the last
//! [`RATE_WINDOW_US`] of the receiver's clock, which on an overflowing link
//! is the link's own rate — and then not cut this way again for
//! [`HOLD`] (the packets already queued or in flight when it cut are lost
//! too; they are not a new signal). libwebrtc's loss-based v2 does the
//! like with its "instant upper bound" from the acknowledged rate.
//!
//! The queue the overflow filled is still there when the cut is made: what
//! is sent next waits behind it, or is dropped at its tail — a keyframe
//! for the lower layer the cut moves the receiver to would be, and then
//! repaired by retransmissions through the same lossy queue. So each cut
//! also says how long that queue takes to drain ([`HeavyLoss::queue_delay`]:
//! the newest arrival's one-way delay above the lowest seen lately), and
//! the leg holds its video for that long (`webrtc::pacing`).
//!
//! A queue can also say it overflows before any loss does: a policer or a
//! shaper with a deep buffer (`tc tbf` with 100 ms of latency holds half a
//! second at 300 kbit/s) delays what it lets through long before it drops,
//! and a loss shows only when a packet behind it has come through that
//! queue. So a feedback whose newest arrival waited [`QUEUE_CUT`] or more,
//! in a queue that grew by [`QUEUE_GROWTH_US`] over the window's queued
//! arrivals while those came at under [`QUEUE_FRACTION`] of the estimate,
//! cuts as an overflow does: to [`BETA`] × the rate they came at (a busy
//! link's own rate: each of them waited, so the link never idled between
//! them). Keyframe bursts on a link that fits the estimate arrive at the
//! link's rate, above that fraction; a route whose delay steps up does not
//! keep growing.

use std::time::{Duration, Instant};

use super::aimd::BETA;

/// A feedback reporting this fraction lost, or more, is an overflow.
pub(crate) const HEAVY_LOSS: f64 = 0.3;
/// ... when it reports this many packets at least.
const MIN_PACKETS: u32 = 8;
/// No second cut within this long of one.
pub(crate) const HOLD: Duration = Duration::from_millis(300);
/// The arrivals the rate is measured over, µs of the receiver's clock.
const RATE_WINDOW_US: i64 = 150_000;
/// Arrivals kept (a ring: no allocation).
const KEPT: usize = 32;
/// Arrivals this close (µs) to the window's first came with it (transport-cc
/// tells arrival times in steps of 250 µs).
const SAME_INSTANT_US: i64 = 250;
/// The longest a cut's drain may be (a larger measured delay is a
/// receiver clock jump, or a queue not worth waiting for).
pub(crate) const MAX_DRAIN: Duration = Duration::from_millis(600);
/// The lowest delay is kept over two windows this long (so it follows a
/// route change, and clock drift, within twice this).
const BASE_WINDOW: Duration = Duration::from_secs(10);
/// No rate from fewer arrivals than this, or a shorter span.
const MIN_ARRIVALS: usize = 3;
const MIN_SPAN_US: i64 = 10_000;
/// A standing queue cuts when the newest arrival waited this long ...
pub(crate) const QUEUE_CUT: Duration = Duration::from_millis(100);
/// ... the queue grew this much (µs) over the window's queued arrivals ...
const QUEUE_GROWTH_US: i64 = 50_000;
/// ... and those came at under this fraction of the estimate.
const QUEUE_FRACTION: f64 = 0.5;
/// An arrival that waited this long (µs) came off a busy link.
const QUEUED_US: i64 = 10_000;
/// Queued arrivals a rate is measured from, at least, and their span (µs).
const QUEUED_ARRIVALS: usize = 4;
const QUEUED_SPAN_US: i64 = 20_000;

/// The overflow detector (see the module's text).
#[derive(Debug)]
pub(crate) struct HeavyLoss {
    /// The last arrivals: (arrival µs, bytes, one-way delay µs), a ring.
    arrivals: [(i64, u32, i64); KEPT],
    len: usize,
    next: usize,
    last_cut: Option<Instant>,
    /// The newest arrival's one-way delay (arrival − send, µs, across clocks).
    delay_us: Option<i64>,
    /// The lowest delay in the current window and in the one before, and
    /// when the current window began.
    base_us: (Option<i64>, Option<i64>),
    base_since: Option<Instant>,
}

impl Default for HeavyLoss {
    fn default() -> Self {
        HeavyLoss {
            arrivals: [(0, 0, 0); KEPT],
            len: 0,
            next: 0,
            last_cut: None,
            delay_us: None,
            base_us: (None, None),
            base_since: None,
        }
    }
}

impl HeavyLoss {
    /// A packet of `size` bytes sent at `sent_us` (router clock) arrived at
    /// `arrival_us` (receiver clock), reported at `now`.
    pub fn on_arrival(&mut self, now: Instant, sent_us: i64, arrival_us: i64, size: u32) {
        let d = arrival_us.saturating_sub(sent_us);
        self.arrivals[self.next] = (arrival_us, size, d);
        self.next = (self.next + 1) % KEPT;
        self.len = (self.len + 1).min(KEPT);
        self.delay_us = Some(d);
        let since = *self.base_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= BASE_WINDOW {
            self.base_us = (None, self.base_us.0);
            self.base_since = Some(now);
        }
        self.base_us.0 = Some(self.base_us.0.map_or(d, |b| b.min(d)));
    }

    /// How long the newest reported packet queued on the way: its delay
    /// above the lowest of the last [`BASE_WINDOW`]s, at most [`MAX_DRAIN`].
    pub fn queue_delay(&self) -> Duration {
        let Some(base) = self.base() else { return Duration::ZERO };
        let queued = self.delay_us.map_or(0, |d| d.saturating_sub(base)).max(0) as u64;
        Duration::from_micros(queued).min(MAX_DRAIN)
    }

    /// The lowest delay of the last [`BASE_WINDOW`]s.
    fn base(&self) -> Option<i64> {
        match self.base_us {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        }
    }

    /// Over the arrivals within [`RATE_WINDOW_US`] of the newest (those that
    /// waited `min_queue_us` or more above the lowest delay): their number,
    /// span (µs), rate (bits/s) and how much the queue grew across them (µs).
    ///
    /// The rate is the bytes that crossed the link within the span over it:
    /// - those that came with the first (a GSO send the shaper let through as
    ///   one, a batch the receiver read at once) crossed it before the span
    ///   began, unless
    /// - the first of the queued ones waited longer than the time since the
    ///   arrival before it: it was in the queue then, so the link was busy
    ///   from that arrival on, and the span begins there (the first queued
    ///   arrivals after a shaper's bucket ran dry can all come at one instant).
    fn window(&self, min_queue_us: Option<i64>) -> Option<(usize, i64, u64, i64)> {
        let base = self.base();
        let floor = match min_queue_us {
            Some(q) => base?.saturating_add(q),
            None => i64::MIN,
        };
        let kept = &self.arrivals[..self.len];
        let newest = kept.iter().map(|a| a.0).max()?;
        let within = || kept.iter().filter(|a| newest - a.0 <= RATE_WINDOW_US && a.2 >= floor);
        let first = within().min_by_key(|a| a.0)?;
        let last = within().max_by_key(|a| a.0)?;
        let busy_since = min_queue_us
            .and(base)
            .and_then(|base| kept.iter().map(|a| a.0).filter(|&t| t < first.0).max().map(|prev| (prev, base)))
            .filter(|&(prev, base)| first.0 - prev <= first.2 - base)
            .map(|(prev, _)| prev);
        let (start, counted) = match busy_since {
            Some(prev) => (prev, i64::MIN),
            None => (first.0, first.0 + SAME_INSTANT_US),
        };
        let (n, bytes) =
            within().fold((0usize, 0u64), |(n, b), a| (n + 1, b + if a.0 > counted { u64::from(a.1) } else { 0 }));
        let span = last.0 - start;
        let bps = if span > 0 { bytes * 8_000_000 / span as u64 } else { 0 };
        Some((n, span, bps, last.2 - first.2))
    }

    /// The rate of the arrivals within [`RATE_WINDOW_US`] of the newest,
    /// bits/s: the bytes that came after the first instant over their span.
    pub fn recent_bps(&self) -> Option<u64> {
        let (n, span, bps, _) = self.window(None)?;
        (n >= MIN_ARRIVALS && span >= MIN_SPAN_US).then_some(bps)
    }

    /// The link's own rate as the window's arrivals tell it, bits/s: those
    /// that queued, if two did at least (each waited, so the link never
    /// idled between them: a steep fall has said already that the link is
    /// full, so two are enough), else all of them.
    pub fn link_bps(&self) -> Option<u64> {
        let queued = self.queued_rate(2, MIN_SPAN_US).map(|q| q.0);
        match (queued, self.recent_bps()) {
            (Some(q), Some(r)) => Some(q.min(r)),
            (q, r) => q.or(r),
        }
    }

    /// The rate of the window's arrivals that queued ([`QUEUED_US`]), and
    /// how much the queue grew across them: from `min_arrivals` of them
    /// over `min_span_us` at least.
    fn queued_rate(&self, min_arrivals: usize, min_span_us: i64) -> Option<(u64, i64)> {
        let (n, span, bps, growth) = self.window(Some(QUEUED_US))?;
        (n >= min_arrivals && span >= min_span_us).then_some((bps, growth))
    }

    /// One feedback reported `lost` of `total` with the estimate at
    /// `estimate_bps`: the rate to cut to now, if it is an overflow (most of
    /// a burst lost, or a standing queue that grows while the link carries a
    /// fraction of the estimate) and no cut was made within [`HOLD`].
    pub fn on_feedback(&mut self, now: Instant, lost: u32, total: u32, estimate_bps: u64) -> Option<u64> {
        if self.last_cut.is_some_and(|t| now.saturating_duration_since(t) < HOLD) {
            return None;
        }
        let bps = if total >= MIN_PACKETS && f64::from(lost) >= HEAVY_LOSS * f64::from(total) {
            self.recent_bps()?
        } else {
            let (bps, growth) = self.queued_rate(QUEUED_ARRIVALS, QUEUED_SPAN_US)?;
            let standing = self.queue_delay() >= QUEUE_CUT && growth >= QUEUE_GROWTH_US;
            if !standing || bps as f64 >= QUEUE_FRACTION * estimate_bps as f64 {
                return None;
            }
            bps
        };
        self.last_cut = Some(now);
        Some((BETA * bps as f64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_rate_is_over_the_last_150_ms_of_arrivals() {
        let t0 = Instant::now();
        let mut h = HeavyLoss::default();
        assert_eq!(h.recent_bps(), None);
        // 1200 bytes every 32 ms: 300 kbit/s.
        for k in 0..20 {
            h.on_arrival(t0, k * 32_000, k * 32_000, 1200);
        }
        assert_eq!(h.recent_bps(), Some(300_000));
        // Older, faster arrivals fall out of the window.
        let mut h = HeavyLoss::default();
        for k in 0..10 {
            h.on_arrival(t0, k * 6_400, k * 6_400, 1200); // 1.5 Mbit/s
        }
        for k in 0..8 {
            h.on_arrival(t0, 400_000 + k * 32_000, 400_000 + k * 32_000, 1200);
        }
        assert_eq!(h.recent_bps(), Some(300_000));
    }

    #[test]
    fn a_heavy_loss_cuts_once_per_hold_and_light_or_thin_feedback_does_not() {
        let t0 = Instant::now();
        let mut h = HeavyLoss::default();
        for k in 0..20 {
            h.on_arrival(t0, k * 32_000, k * 32_000, 1200);
        }
        assert_eq!(h.on_feedback(t0, 2, 20, 300_000), None, "10%: the loss-based rate's business");
        assert_eq!(h.on_feedback(t0, 5, 7, 300_000), None, "too few packets to tell");
        assert_eq!(h.on_feedback(t0, 6, 20, 300_000), Some(255_000));
        assert_eq!(h.on_feedback(t0 + Duration::from_millis(299), 16, 20, 300_000), None);
        assert_eq!(h.on_feedback(t0 + HOLD, 16, 20, 300_000), Some(255_000));
    }

    #[test]
    fn the_queue_delay_is_the_newest_delay_above_the_lowest_of_late() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut h = HeavyLoss::default();
        assert_eq!(h.queue_delay(), Duration::ZERO);
        // Clocks 5 s apart; 20 ms one way, then a queue builds to 250 ms.
        h.on_arrival(ms(0), 0, 5_020_000, 1200);
        h.on_arrival(ms(100), 100_000, 5_120_000, 1200);
        assert_eq!(h.queue_delay(), Duration::ZERO);
        h.on_arrival(ms(400), 300_000, 5_570_000, 1200);
        assert_eq!(h.queue_delay(), Duration::from_millis(250));
        // Capped.
        h.on_arrival(ms(500), 400_000, 6_420_000, 1200);
        assert_eq!(h.queue_delay(), MAX_DRAIN);
        // A lowest delay two windows old is forgotten: the route's delay rose for good.
        h.on_arrival(ms(10_500), 10_000_000, 15_120_000, 1200);
        h.on_arrival(ms(20_600), 20_000_000, 25_120_000, 1200);
        assert_eq!(h.queue_delay(), Duration::ZERO);
    }

    #[test]
    fn a_standing_queue_that_grows_cuts_before_any_loss_and_a_burst_or_a_longer_route_does_not() {
        let t0 = Instant::now();
        let at = |us: i64| t0 + Duration::from_micros(us as u64);
        // A 20 ms path for a second: the lowest delay.
        let mut h = HeavyLoss::default();
        for k in 0..50 {
            h.on_arrival(at(k * 20_000), k * 20_000, k * 20_000 + 20_000, 1200);
        }
        assert_eq!(h.on_feedback(at(1_000_000), 0, 20, 2_500_000), None, "a clean link");
        // Then 1.5 Mbit/s into a 300 kbit/s shaper: one packet out every 32 ms,
        // each sent 6.4 ms after the one before; none lost yet.
        let mut cut = None;
        for k in 0..12 {
            let sent = 1_000_000 + k * 6_400;
            let arrival = 1_020_000 + k * 32_000;
            h.on_arrival(at(arrival), sent, arrival, 1200);
            if let Some(bps) = h.on_feedback(at(arrival), 0, 1, 2_500_000) {
                cut = Some((k, bps));
                break;
            }
        }
        let (k, bps) = cut.expect("a cut");
        assert_eq!(bps, 255_000, "to 0.85 x the shaper's rate");
        assert!(
            h.queue_delay() >= QUEUE_CUT && k <= 6,
            "at the first feedback over {QUEUE_CUT:?} of queue: packet {k}"
        );

        // A keyframe burst on a link that fits the estimate: 40 packets sent at
        // once, arriving at 2.5 Mbit/s (a queue of 150 ms at its end).
        let mut h = HeavyLoss::default();
        for k in 0..50 {
            h.on_arrival(at(k * 20_000), k * 20_000, k * 20_000 + 20_000, 1200);
        }
        for k in 0..40 {
            let arrival = 1_020_000 + k * 3_840;
            h.on_arrival(at(arrival), 1_000_000, arrival, 1200);
            assert_eq!(h.on_feedback(at(arrival), 0, 1, 2_500_000), None, "a burst at the link's rate");
        }
        // A route 150 ms longer for good, the receiver getting a low layer
        // (300 kbit/s against an estimate of 2.5 Mbit/s): a queue that does not grow.
        let mut h = HeavyLoss::default();
        for k in 0..50 {
            h.on_arrival(at(k * 32_000), k * 32_000, k * 32_000 + 20_000, 1200);
        }
        for k in 50..80 {
            let sent = k * 32_000;
            h.on_arrival(at(sent + 170_000), sent, sent + 170_000, 1200);
            assert_eq!(h.on_feedback(at(sent + 170_000), 0, 1, 2_500_000), None, "a longer route");
        }
    }

    #[test]
    fn no_cut_without_a_measured_rate() {
        let mut h = HeavyLoss::default();
        h.on_arrival(Instant::now(), 0, 0, 1200);
        assert_eq!(h.on_feedback(Instant::now(), 18, 20, 300_000), None);
    }

    #[test]
    fn arrivals_that_come_together_are_counted_once_from_the_first_instant() {
        let t0 = Instant::now();
        // GSO sends of three 1200-byte datagrams that a 300 kbit/s shaper
        // lets through as one: three at once every 96 ms, each waiting longer.
        let mut h = HeavyLoss::default();
        h.on_arrival(t0, 0, 0, 1200);
        for k in 0..4 {
            for _ in 0..3 {
                h.on_arrival(t0, 20_000 + k * 10_000, 20_000 + 96_000 + k * 96_000, 1200);
            }
        }
        // Not 5 datagrams over 96 ms (500 kbit/s): those that came with the
        // first crossed the link before the span.
        let bps = h.recent_bps().unwrap();
        assert!((290_000..=310_000).contains(&bps), "{bps}");
        assert!(h.link_bps().is_some_and(|b| (290_000..=310_000).contains(&b)), "{:?}", h.link_bps());
    }

    #[test]
    fn the_first_queued_arrivals_at_one_instant_tell_the_rate_when_the_link_was_busy_before_them() {
        let t0 = Instant::now();
        let unqueued = |h: &mut HeavyLoss| {
            for k in 0..10 {
                h.on_arrival(t0, k * 5_000, k * 5_000 + 1_000, 1200);
            }
        };
        // A shaper's bucket ran dry: a send of six made at 30 ms came
        // through 192 ms after the last arrival (at 46 ms), all at once,
        // having waited 207 ms. It was queued all that while, so the link
        // carried it in those 192 ms.
        let mut h = HeavyLoss::default();
        unqueued(&mut h);
        for _ in 0..6 {
            h.on_arrival(t0, 30_000, 238_000, 1200);
        }
        assert_eq!(h.recent_bps(), None, "one instant: no span");
        let bps = h.link_bps().unwrap();
        assert!((290_000..=310_000).contains(&bps), "{bps}");
        // The same six at the same instant having waited only 99 ms: the
        // link may have idled before them, so they tell no rate.
        let mut h = HeavyLoss::default();
        unqueued(&mut h);
        for _ in 0..6 {
            h.on_arrival(t0, 138_000, 238_000, 1200);
        }
        assert_eq!(h.link_bps(), None);
    }
}

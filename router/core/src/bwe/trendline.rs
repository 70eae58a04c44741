//! The delay-based overuse detector of Google congestion control
//! (draft-ietf-rmcat-gcc-02 §5, as libwebrtc's TrendlineEstimator does it):
//!
//! 1. packets are grouped by send time (a group spans at most 5 ms of
//!    sending; a burst that arrives within 5 ms joins the group it follows);
//! 2. between consecutive groups, the one-way delay variation is
//!    `arrival delta − send delta`; its running sum (the accumulated queueing
//!    delay) is smoothed, and a line is fitted over the last
//!    [`WINDOW`] groups: its slope says whether queues are growing;
//! 3. the slope, scaled, is compared with an adaptive threshold: above it
//!    for more than 10 ms (and still rising) is overuse, below its negative
//!    underuse, else normal. The threshold follows the signal slowly so that
//!    a competing loss-based flow does not starve the estimate.
//!
//! Times are µs in, ms inside (the constants are libwebrtc's, in ms).

/// What the delay says of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum BandwidthUsage {
    /// Queues neither grow nor drain.
    #[default]
    Normal,
    /// Queues grow: sending above capacity.
    Overusing,
    /// Queues drain.
    Underusing,
}

/// Longest span of sending in one group, µs.
const GROUP_SPAN_US: i64 = 5_000;
/// Arrivals closer than this (with a negative propagation delta) are one burst.
const BURST_US: i64 = 5_000;
/// Arrivals this far apart (µs) are a clock jump: the grouping starts over.
const CLOCK_JUMP_US: i64 = 3_000_000;
/// Groups the slope is fitted over.
pub(crate) const WINDOW: usize = 20;
/// Smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// Gain on the slope before it is compared with the threshold.
const THRESHOLD_GAIN: f64 = 4.0;
/// The slope's weight grows with the number of deltas up to this.
const MAX_DELTAS: u32 = 60;
/// Overuse must last this long (ms) before it is signalled.
const OVERUSE_TIME_MS: f64 = 10.0;
/// Threshold adaptation rates (up, down) per ms, its bounds and start.
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const THRESHOLD_START: f64 = 12.5;

/// A group of packets sent close together.
#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: i64,
    last_send: i64,
    last_arrival: i64,
}

/// Deltas between two complete groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupDelta {
    pub send_us: i64,
    pub arrival_us: i64,
    /// The later group's last arrival.
    pub at_us: i64,
}

/// Groups packets and yields the deltas between complete groups.
#[derive(Debug, Default)]
pub(crate) struct InterArrival {
    current: Option<Group>,
    prev: Option<Group>,
}

impl InterArrival {
    /// Adds a received packet (send and arrival time, µs); the deltas of the
    /// group it completes, if it starts a new one.
    pub fn add(&mut self, send_us: i64, arrival_us: i64) -> Option<GroupDelta> {
        let Some(cur) = self.current.as_mut() else {
            self.current = Some(Group { first_send: send_us, last_send: send_us, last_arrival: arrival_us });
            return None;
        };
        if (arrival_us - cur.last_arrival).abs() > CLOCK_JUMP_US {
            // The receiver's clock jumped (or a feedback lied): start over
            // rather than compare times across the jump forever.
            *self = InterArrival::default();
            return self.add(send_us, arrival_us);
        }
        if send_us < cur.first_send {
            // Reordered into an older group: ignored, as libwebrtc does.
            return None;
        }
        let arrival_delta = arrival_us - cur.last_arrival;
        let propagation = arrival_delta - (send_us - cur.last_send);
        let burst = arrival_delta < BURST_US && propagation < 0;
        if send_us - cur.first_send <= GROUP_SPAN_US || burst {
            cur.last_send = cur.last_send.max(send_us);
            cur.last_arrival = cur.last_arrival.max(arrival_us);
            return None;
        }
        let done = *cur;
        *cur = Group { first_send: send_us, last_send: send_us, last_arrival: arrival_us };
        let delta = self.prev.map(|p| GroupDelta {
            send_us: done.last_send - p.last_send,
            arrival_us: done.last_arrival - p.last_arrival,
            at_us: done.last_arrival,
        });
        self.prev = Some(done);
        // An arrival going backwards (the receiver's clock reset): no delta.
        delta.filter(|d| d.arrival_us >= 0 && d.send_us >= 0)
    }
}

/// The trendline overuse detector.
#[derive(Debug)]
pub(crate) struct Trendline {
    deltas: u32,
    accumulated_ms: f64,
    smoothed_ms: f64,
    first_arrival_us: Option<i64>,
    /// (arrival ms since the first, smoothed delay ms), the last [`WINDOW`].
    window: [(f64, f64); WINDOW],
    len: usize,
    head: usize,
    prev_trend: f64,
    threshold: f64,
    last_threshold_update_us: Option<i64>,
    time_over_using_ms: f64,
    overuse_count: u32,
    usage: BandwidthUsage,
}

impl Default for Trendline {
    fn default() -> Self {
        Trendline {
            deltas: 0,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            first_arrival_us: None,
            window: [(0.0, 0.0); WINDOW],
            len: 0,
            head: 0,
            prev_trend: 0.0,
            threshold: THRESHOLD_START,
            last_threshold_update_us: None,
            time_over_using_ms: -1.0,
            overuse_count: 0,
            usage: BandwidthUsage::Normal,
        }
    }
}

impl Trendline {
    /// The current signal.
    pub fn usage(&self) -> BandwidthUsage {
        self.usage
    }

    /// The adaptive threshold (for tests and stats).
    #[cfg(test)]
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// One group delta; the signal after it.
    pub fn update(&mut self, d: GroupDelta) -> BandwidthUsage {
        let send_ms = d.send_us as f64 / 1000.0;
        let delta_ms = (d.arrival_us - d.send_us) as f64 / 1000.0;
        self.deltas = (self.deltas + 1).min(1000);
        self.accumulated_ms += delta_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        let first = *self.first_arrival_us.get_or_insert(d.at_us);
        let x = (d.at_us - first) as f64 / 1000.0;
        self.window[self.head] = (x, self.smoothed_ms);
        self.head = (self.head + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
        let mut trend = self.prev_trend;
        if self.len == WINDOW {
            if let Some(slope) = slope(&self.window) {
                trend = slope;
            }
        }
        self.detect(trend, send_ms, d.at_us);
        self.usage
    }

    fn detect(&mut self, trend: f64, send_delta_ms: f64, now_us: i64) {
        if self.deltas < 2 {
            self.usage = BandwidthUsage::Normal;
            return;
        }
        let modified = f64::from(self.deltas.min(MAX_DELTAS)) * trend * THRESHOLD_GAIN;
        if modified > self.threshold {
            if self.time_over_using_ms < 0.0 {
                // Assume the overuse started half-way through this delta.
                self.time_over_using_ms = send_delta_ms / 2.0;
            } else {
                self.time_over_using_ms += send_delta_ms;
            }
            self.overuse_count += 1;
            if self.time_over_using_ms > OVERUSE_TIME_MS && self.overuse_count > 1 && trend >= self.prev_trend {
                self.time_over_using_ms = 0.0;
                self.overuse_count = 0;
                self.usage = BandwidthUsage::Overusing;
            }
        } else if modified < -self.threshold {
            self.time_over_using_ms = -1.0;
            self.overuse_count = 0;
            self.usage = BandwidthUsage::Underusing;
        } else {
            self.time_over_using_ms = -1.0;
            self.overuse_count = 0;
            self.usage = BandwidthUsage::Normal;
        }
        self.prev_trend = trend;
        self.update_threshold(modified, now_us);
    }

    fn update_threshold(&mut self, modified: f64, now_us: i64) {
        let last = *self.last_threshold_update_us.get_or_insert(now_us);
        // A spike far above the threshold is not followed (it is overuse, not noise).
        if modified.abs() > self.threshold + 15.0 {
            self.last_threshold_update_us = Some(now_us);
            return;
        }
        let k = if modified.abs() < self.threshold { K_DOWN } else { K_UP };
        let dt_ms = ((now_us - last) as f64 / 1000.0).clamp(0.0, 100.0);
        self.threshold += k * (modified.abs() - self.threshold) * dt_ms;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        self.last_threshold_update_us = Some(now_us);
    }
}

/// The least-squares slope of `points` (`None` when every x is the same).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_within_five_ms_of_sending_are_one_group() {
        let mut ia = InterArrival::default();
        assert_eq!(ia.add(0, 100_000), None);
        assert_eq!(ia.add(4_000, 104_000), None, "same group");
        assert_eq!(ia.add(10_000, 110_000), None, "first group complete, no previous");
        assert_eq!(ia.add(20_000, 121_000), Some(GroupDelta { send_us: 6_000, arrival_us: 6_000, at_us: 110_000 }));
        // A burst: sent 10 ms later but arriving 1 ms after (negative propagation): joins.
        assert_eq!(ia.add(30_000, 122_000), None);
        assert_eq!(ia.add(40_000, 140_000), Some(GroupDelta { send_us: 20_000, arrival_us: 12_000, at_us: 122_000 }));
        // Reordered into the past: ignored.
        assert_eq!(ia.add(1_000, 141_000), None);
        // The receiver's clock jumps back an hour: starts over, deltas follow again.
        let back = 141_000 - 3_600_000_000;
        assert_eq!(ia.add(50_000, back), None);
        assert_eq!(ia.add(60_000, back + 10_000), None);
        let d = ia.add(70_000, back + 20_000).unwrap();
        assert_eq!((d.send_us, d.arrival_us), (10_000, 10_000));
    }

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<_> = (0..20).map(|i| (f64::from(i), 2.0 * f64::from(i) + 1.0)).collect();
        assert!((slope(&pts).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    /// Groups every 10 ms of sending arriving with `extra_ms` more delay each.
    fn run(t: &mut Trendline, groups: i64, extra_us: i64, start: i64) -> Vec<BandwidthUsage> {
        (1..=groups)
            .map(|i| {
                t.update(GroupDelta {
                    send_us: 10_000,
                    arrival_us: 10_000 + extra_us,
                    at_us: start + i * (10_000 + extra_us),
                })
            })
            .collect()
    }

    #[test]
    fn a_steady_link_is_normal() {
        let mut t = Trendline::default();
        assert!(run(&mut t, 200, 0, 0).iter().all(|u| *u == BandwidthUsage::Normal));
        assert!(t.threshold() >= THRESHOLD_MIN && t.threshold() <= THRESHOLD_START);
    }

    #[test]
    fn growing_delay_is_overuse_and_draining_is_underuse() {
        let mut t = Trendline::default();
        run(&mut t, 40, 0, 0);
        // 1 ms more queueing every 10 ms: a queue growing at 10%.
        let u = run(&mut t, 40, 1_000, 400_000);
        let first = u.iter().position(|u| *u == BandwidthUsage::Overusing).expect("overuse");
        assert!(first < 20, "detected after {first} groups");
        let mut t = Trendline::default();
        run(&mut t, 40, 0, 0);
        let u = run(&mut t, 40, -1_000, 400_000);
        assert!(u.contains(&BandwidthUsage::Underusing));
        assert!(!u.contains(&BandwidthUsage::Overusing));
    }
}

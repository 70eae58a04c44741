//! The delay-based rate controller of Google congestion control
//! (draft-ietf-rmcat-gcc-02 §5.5; libwebrtc's AimdRateControl): from the
//! detector's signal and the acknowledged bitrate, the rate the link takes.
//!
//! - normal: increase; multiplicatively (about 8% a second) while far from
//!   the link capacity last seen, additively (about one packet per response
//!   time) near it;
//! - overuse: decrease to 0.85 × the acknowledged bitrate (at most once per
//!   round trip), and note that bitrate as the link's capacity;
//! - underuse: hold (queues are draining; increasing now would refill them).
//!
//! The estimate never grows past 1.5 × what is acknowledged (+10 kbit/s):
//! an estimate the sender has not tried is no estimate. Until the first
//! overuse it is never below what is acknowledged either: what arrives with
//! no queue growing is what the link carries at least (an SFU's receiver
//! often gets more at once, at its join, than the start estimate; libwebrtc
//! likewise initializes its rate from the throughput).

use std::time::{Duration, Instant};

use super::trendline::BandwidthUsage;

/// Decrease factor on overuse.
pub(crate) const BETA: f64 = 0.85;
/// Multiplicative increase per second.
const INCREASE_PER_SECOND: f64 = 1.08;
/// Frames per second and packet size assumed for the additive increase.
const FPS: f64 = 30.0;
const PACKET_BITS: f64 = 1200.0 * 8.0;
/// Least additive increase, bits/s per second.
const MIN_ADDITIVE_BPS: f64 = 4_000.0;
/// A longer gap between updates counts as this (no huge jumps after a pause).
const MAX_UPDATE_GAP: Duration = Duration::from_secs(1);

/// The capacity the link showed at its overuses, with its spread (libwebrtc's
/// LinkCapacityEstimator): what "near the maximum" means.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LinkCapacity {
    /// kbit/s, exponentially averaged; `None` until an overuse showed it.
    estimate_kbps: Option<f64>,
    /// Normalized variance (kbit/s).
    deviation: f64,
}

impl LinkCapacity {
    fn std_kbps(&self, est: f64) -> f64 {
        (self.deviation * est).sqrt()
    }

    /// Above this, the capacity is not what it was (bits/s).
    fn upper_bps(&self) -> Option<f64> {
        self.estimate_kbps.map(|e| (e + 3.0 * self.std_kbps(e)) * 1000.0)
    }

    fn on_overuse(&mut self, acked_bps: f64) {
        let sample = acked_bps / 1000.0;
        let alpha = 0.05;
        let est = match self.estimate_kbps {
            None => sample,
            Some(e) => (1.0 - alpha) * e + alpha * sample,
        };
        let norm = est.max(1.0);
        let err = est - sample;
        self.deviation = ((1.0 - alpha) * self.deviation + alpha * err * err / norm).clamp(0.4, 2.5);
        self.estimate_kbps = Some(est);
    }

    fn reset(&mut self) {
        self.estimate_kbps = None;
    }
}

/// Increase, hold or decrease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Hold,
    Increase,
    Decrease,
}

/// AIMD rate control.
#[derive(Debug)]
pub(crate) struct Aimd {
    rate_bps: f64,
    min_bps: f64,
    max_bps: f64,
    state: State,
    capacity: LinkCapacity,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    rtt: Duration,
}

impl Aimd {
    /// Starts at `start_bps`, kept within `min_bps..=max_bps`.
    pub fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> Aimd {
        Aimd {
            rate_bps: start_bps as f64,
            min_bps: min_bps as f64,
            max_bps: max_bps as f64,
            state: State::Hold,
            capacity: LinkCapacity::default(),
            last_update: None,
            last_decrease: None,
            rtt: Duration::from_millis(200),
        }
    }

    /// The current rate, bits/s.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps as u64
    }

    /// The round-trip time, for the additive increase and the pace of decreases.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt.clamp(Duration::from_millis(10), Duration::from_secs(1));
    }

    /// A rate measured some other way (a probe): taken when higher.
    pub fn raise_to(&mut self, bps: u64) {
        let bps = (bps as f64).clamp(self.min_bps, self.max_bps);
        if bps > self.rate_bps {
            self.rate_bps = bps;
            // The capacity seen at past overuses no longer bounds it.
            if self.capacity.upper_bps().is_some_and(|u| bps > u) {
                self.capacity.reset();
            }
        }
    }

    /// Down to `bps` now (an overflow seen by [`super::heavy_loss`]), as a
    /// decrease: held until the detector says the queue is gone.
    pub fn cut_to(&mut self, now: Instant, bps: u64) {
        self.rate_bps = self.rate_bps.min(bps as f64).clamp(self.min_bps, self.max_bps);
        self.last_decrease = Some(now);
        self.state = State::Hold;
    }

    /// One update: the detector's `usage` and the acknowledged bitrate
    /// (`None` while not measured yet); the new rate.
    pub fn update(&mut self, now: Instant, usage: BandwidthUsage, acked_bps: Option<u64>) -> u64 {
        let dt = self.last_update.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)).min(MAX_UPDATE_GAP);
        self.last_update = Some(now);
        self.state = match (usage, self.state) {
            (BandwidthUsage::Overusing, _) => State::Decrease,
            (BandwidthUsage::Underusing, _) => State::Hold,
            (BandwidthUsage::Normal, State::Hold) => State::Increase,
            (BandwidthUsage::Normal, s) => s,
        };
        let acked = acked_bps.map(|a| a as f64);
        match self.state {
            State::Hold => {}
            State::Increase => {
                if self.capacity.upper_bps().is_some_and(|u| acked.unwrap_or(self.rate_bps) > u) {
                    self.capacity.reset();
                }
                let inc = if self.capacity.estimate_kbps.is_some() {
                    self.additive_bps_per_s() * dt.as_secs_f64()
                } else {
                    let alpha = INCREASE_PER_SECOND.powf(dt.as_secs_f64());
                    (self.rate_bps * (alpha - 1.0)).max(1000.0 * dt.as_secs_f64())
                };
                let mut next = self.rate_bps + inc;
                // Not far past what the link was seen to carry; and until the
                // first overuse, never below what it carries without queues
                // growing (after one, a standing queue could be mistaken for that).
                if let Some(a) = acked {
                    next = next.min((1.5 * a + 10_000.0).max(self.rate_bps));
                    if self.last_decrease.is_none() {
                        next = next.max(a);
                    }
                }
                self.rate_bps = next;
            }
            State::Decrease => {
                let due = self.last_decrease.is_none_or(|t| now.saturating_duration_since(t) >= self.rtt);
                if due {
                    let base = acked.unwrap_or(self.rate_bps);
                    let decreased = BETA * base;
                    if decreased < self.rate_bps {
                        self.rate_bps = decreased;
                    }
                    if let Some(a) = acked {
                        self.capacity.on_overuse(a);
                    }
                    self.last_decrease = Some(now);
                }
                // One decrease per overuse signal, then hold until it clears.
                self.state = State::Hold;
            }
        }
        self.rate_bps = self.rate_bps.clamp(self.min_bps, self.max_bps);
        self.rate_bps as u64
    }

    /// Bits/s per second near the capacity: about one average packet per
    /// response time (RTT + 100 ms).
    fn additive_bps_per_s(&self) -> f64 {
        let bits_per_frame = self.rate_bps / FPS;
        let packets = (bits_per_frame / PACKET_BITS).ceil().max(1.0);
        let packet_bits = bits_per_frame / packets;
        let response = (self.rtt + Duration::from_millis(100)).as_secs_f64();
        (packet_bits / response).max(MIN_ADDITIVE_BPS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: BandwidthUsage = BandwidthUsage::Normal;
    const O: BandwidthUsage = BandwidthUsage::Overusing;
    const U: BandwidthUsage = BandwidthUsage::Underusing;

    #[test]
    fn increases_about_eight_percent_a_second_far_from_capacity() {
        let t0 = Instant::now();
        let mut a = Aimd::new(1_000_000, 10_000, 100_000_000);
        for i in 0..=10 {
            a.update(t0 + Duration::from_millis(100 * i), N, None);
        }
        // 1 s of normal: ×1.08 (the first update only starts the clock).
        let r = a.rate_bps();
        assert!((1_075_000..=1_085_000).contains(&r), "{r}");
    }

    #[test]
    fn overuse_decreases_to_085_of_acked_once_per_rtt_and_underuse_holds() {
        let t0 = Instant::now();
        let mut a = Aimd::new(2_000_000, 10_000, 100_000_000);
        a.update(t0, N, Some(2_000_000));
        assert_eq!(a.update(t0 + Duration::from_millis(100), O, Some(1_000_000)), 850_000);
        // Again within the RTT (200 ms): no second cut.
        assert_eq!(a.update(t0 + Duration::from_millis(150), O, Some(500_000)), 850_000);
        assert_eq!(a.update(t0 + Duration::from_millis(500), U, Some(800_000)), 850_000);
        assert_eq!(a.update(t0 + Duration::from_millis(600), U, Some(800_000)), 850_000);
        // Near the capacity seen (1 Mbit/s): additive, a few kbit/s per 100 ms.
        a.update(t0 + Duration::from_millis(700), N, Some(850_000));
        let r = a.update(t0 + Duration::from_millis(800), N, Some(850_000));
        assert!((851_000..=870_000).contains(&r), "{r}");
    }

    #[test]
    fn the_increase_is_capped_by_the_acknowledged_rate_and_the_bounds() {
        let t0 = Instant::now();
        let mut a = Aimd::new(1_000_000, 50_000, 1_200_000);
        a.update(t0, N, Some(100_000));
        // 1.5 × 100 k + 10 k is below the current rate: it stays.
        assert_eq!(a.update(t0 + Duration::from_secs(1), N, Some(100_000)), 1_000_000);
        for i in 2..20 {
            a.update(t0 + Duration::from_secs(i), N, Some(1_000_000));
        }
        assert_eq!(a.rate_bps(), 1_200_000, "the maximum");
        for i in 20..40 {
            a.update(t0 + Duration::from_secs(i), O, Some(10_000));
        }
        assert_eq!(a.rate_bps(), 50_000, "the minimum");
        a.raise_to(700_000);
        assert_eq!(a.rate_bps(), 700_000);
    }
}

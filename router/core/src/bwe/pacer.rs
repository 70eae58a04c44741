//! A pacing budget: a token bucket filled at [`PACING_FACTOR`] × the
//! estimate, so that what goes to a receiver leaves in a smooth stream
//! rather than in bursts a bottleneck queue would have to absorb (bursts
//! read as delay to the receiver's feedback, and as loss at shallow queues).
//! Time is whatever the caller passes (sans IO). A WebRTC leg's send queue
//! (`webrtc::pacing`) holds what the budget refuses.

use std::time::{Duration, Instant};

/// The pace, as a multiple of the estimate (libwebrtc's default).
pub(crate) const PACING_FACTOR: f64 = 2.5;
/// The bucket holds at most this much sending time's worth of budget.
const MAX_BURST: Duration = Duration::from_millis(40);
/// ... and never less than one full-size packet.
const MIN_BURST_BYTES: i64 = 1500;

/// The budget of one receiver.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    rate_bps: u64,
    /// Bytes that may be sent now (negative: debt).
    budget: i64,
    last: Option<Instant>,
}

impl Pacer {
    /// A budget for an estimate of `estimate_bps`, full at first.
    pub fn new(estimate_bps: u64) -> Pacer {
        let mut p = Pacer { rate_bps: 0, budget: 0, last: None };
        p.set_estimate(estimate_bps);
        p.budget = p.max_budget();
        p
    }

    /// A new estimate: the pace follows.
    pub fn set_estimate(&mut self, estimate_bps: u64) {
        self.rate_bps = (estimate_bps as f64 * PACING_FACTOR) as u64;
        self.budget = self.budget.min(self.max_budget());
    }

    /// The pace, bits/s.
    #[cfg(test)]
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    fn max_budget(&self) -> i64 {
        ((self.rate_bps as u128 * MAX_BURST.as_micros() / 8_000_000) as i64).max(MIN_BURST_BYTES)
    }

    fn refill(&mut self, now: Instant) {
        let last = *self.last.get_or_insert(now);
        let dt = now.saturating_duration_since(last);
        self.last = Some(now.max(last));
        let add = (self.rate_bps as u128 * dt.as_micros() / 8_000_000) as i64;
        self.budget = (self.budget.saturating_add(add)).min(self.max_budget());
    }

    /// Whether a packet of `size` bytes may go at `now`; if so it is taken
    /// from the budget (which may go into debt by that one packet).
    pub fn try_send(&mut self, now: Instant, size: usize) -> bool {
        self.refill(now);
        if self.budget <= 0 {
            return false;
        }
        self.budget -= size as i64;
        true
    }

    /// Takes `size` bytes from the budget whatever it holds (a packet that
    /// may not wait: audio, a probe, one overdue). The debt is kept to one
    /// full budget (as libwebrtc's interval budget): what went past the
    /// pace is not paid back for longer than that.
    pub fn charge(&mut self, now: Instant, size: usize) {
        self.refill(now);
        self.budget = (self.budget - size as i64).max(-self.max_budget());
    }

    /// When the budget allows a packet again (`now` if it does already).
    pub fn next_send(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.budget > 0 || self.rate_bps == 0 {
            return now;
        }
        let us = ((-self.budget + 1) as u128 * 8_000_000).div_ceil(self.rate_bps as u128);
        now + Duration::from_micros(us as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_at_two_and_a_half_times_the_estimate() {
        let t0 = Instant::now();
        // 400 kbit/s → a 1 Mbit/s pace: 125 bytes per ms.
        let mut p = Pacer::new(400_000);
        assert_eq!(p.rate_bps(), 1_000_000);
        // Offer a 1000-byte packet every ms for 2 s; count what goes.
        let mut sent = 0u64;
        for ms in 0..2000u64 {
            if p.try_send(t0 + Duration::from_millis(ms), 1000) {
                sent += 1000;
            }
        }
        // 2 s at 125 kB/s = 250 kB, plus the first burst (5 kB) and one packet of debt.
        assert!((249_000..=257_000).contains(&sent), "{sent}");
    }

    #[test]
    fn an_empty_budget_says_when_it_refills() {
        let t0 = Instant::now();
        let mut p = Pacer::new(80_000); // 200 kbit/s pace: 25 bytes per ms
        assert_eq!(p.max_budget(), 1500, "one packet at least");
        assert!(p.try_send(t0, 1500));
        assert!(!p.try_send(t0, 100));
        // 0 bytes: 1 more byte of budget needed, 40 µs.
        assert_eq!(p.next_send(t0), t0 + Duration::from_micros(40));
        assert!(p.try_send(t0 + Duration::from_millis(1), 1500));
        // 25 - 1500 = -1475: 1476 bytes at 25 per ms.
        assert_eq!(p.next_send(t0 + Duration::from_millis(1)), t0 + Duration::from_micros(1000 + 59_040));
        // A lower estimate lowers the cap, not below one packet.
        p.set_estimate(1000);
        assert_eq!(p.max_budget(), MIN_BURST_BYTES);
    }
}

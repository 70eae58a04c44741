//! The loss-based part of Google congestion control
//! (draft-ietf-rmcat-gcc-02 §6): over each interval of feedback with enough
//! packets, more than 10% lost cuts the rate by half the loss
//! (`rate × (1 − 0.5 × loss)`); under 2% lets it grow (8% a second), if
//! the last 8 intervals together lost under 2% too; in between it holds. The estimate acted on is the lower of this and the
//! delay-based one.

use std::time::{Duration, Instant};

/// Fewer packets than this are no loss figure yet.
const MIN_PACKETS: u32 = 20;
/// Nor a shorter interval.
const MIN_INTERVAL: Duration = Duration::from_millis(300);
/// High loss: decrease.
pub(crate) const HIGH_LOSS: f64 = 0.10;
/// Low loss: increase.
pub(crate) const LOW_LOSS: f64 = 0.02;
/// The recent loss ([`LossBased::recent_loss`]) is over the last
/// [`RECENT_INTERVALS`] intervals (at least 160 packets: a link losing 5%
/// loses at most one of them once in 500 times), of those that ended within this long.
const RECENT: Duration = Duration::from_secs(10);
/// ... this many.
const RECENT_INTERVALS: usize = 8;

/// The loss-based estimate.
#[derive(Debug)]
pub(crate) struct LossBased {
    rate_bps: f64,
    max_bps: f64,
    min_bps: f64,
    lost: u32,
    total: u32,
    since: Option<Instant>,
    last_update: Option<Instant>,
    /// The last interval's loss fraction.
    last_loss: f64,
    /// The last intervals: (end, lost, total), a ring.
    recent: [(Option<Instant>, u32, u32); RECENT_INTERVALS],
    next_recent: usize,
    /// [`Self::recent_loss`] as of the last interval's end.
    recent_at_last: f64,
    /// Intervals ended since the last overflow cut ([`Self::cut_to`]), up
    /// to [`RECENT_INTERVALS`]; `None` before any cut.
    since_cut: Option<usize>,
}

impl LossBased {
    pub fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> LossBased {
        LossBased {
            rate_bps: start_bps as f64,
            max_bps: max_bps as f64,
            min_bps: min_bps as f64,
            lost: 0,
            total: 0,
            since: None,
            last_update: None,
            last_loss: 0.0,
            recent: [(None, 0, 0); RECENT_INTERVALS],
            next_recent: 0,
            recent_at_last: 0.0,
            since_cut: None,
        }
    }

    /// The loss fraction over the last 8 intervals, of those that ended in
    /// the last 10 s before `now` (0 with none): steadier than one
    /// interval's figure (an interval of 20 packets on a link losing 5%
    /// often loses none, 160 packets almost never), it is what says whether
    /// the link is clean enough to probe.
    pub fn recent_loss(&self, now: Instant) -> f64 {
        let (lost, total) = self
            .recent
            .iter()
            .filter(|(end, _, _)| end.is_some_and(|e| now.saturating_duration_since(e) < RECENT))
            .fold((0u32, 0u32), |(l, t), (_, lost, total)| (l.saturating_add(*lost), t.saturating_add(*total)));
        if total == 0 {
            0.0
        } else {
            f64::from(lost) / f64::from(total)
        }
    }

    /// Whether the link is clean enough to probe: [`Self::recent_loss`]
    /// under `threshold`, and, after an overflow cut, measured over as many
    /// intervals since as it takes (what the link did before the overflow
    /// says nothing of it now; the overflow's own loss was not counted).
    pub fn clean(&self, now: Instant, threshold: f64) -> bool {
        self.since_cut.is_none_or(|n| n >= RECENT_INTERVALS) && self.recent_loss(now) < threshold
    }

    /// The current loss-based rate, bits/s.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps as u64
    }

    /// The loss fraction of the last complete interval.
    pub fn loss(&self) -> f64 {
        self.last_loss
    }

    /// [`Self::recent_loss`] when the last interval ended (what an operator is shown).
    pub fn recent_at_last(&self) -> f64 {
        self.recent_at_last
    }

    /// A rate measured some other way (a probe): taken when higher.
    pub fn raise_to(&mut self, bps: u64) {
        self.rate_bps = self.rate_bps.max((bps as f64).min(self.max_bps));
    }

    /// Down to `bps` now (an overflow seen by [`super::heavy_loss`]); the
    /// interval under way, which counted that overflow, starts anew.
    pub fn cut_to(&mut self, now: Instant, bps: u64) {
        self.rate_bps = self.rate_bps.min(bps as f64).clamp(self.min_bps, self.max_bps);
        self.lost = 0;
        self.total = 0;
        self.since = Some(now);
        self.recent = [(None, 0, 0); RECENT_INTERVALS];
        self.since_cut = Some(0);
    }

    /// Packets reported (`lost` of `total`) by one feedback; `acted_bps` is
    /// the estimate acted on now (a decrease starts from it), `acked_bps`
    /// what gets through (with low loss the rate is never below it). Updates
    /// the rate once an interval has enough packets.
    pub fn on_feedback(&mut self, now: Instant, lost: u32, total: u32, acted_bps: u64, acked_bps: Option<u64>) {
        self.lost = self.lost.saturating_add(lost);
        self.total = self.total.saturating_add(total);
        let since = *self.since.get_or_insert(now);
        if self.total < MIN_PACKETS || now.saturating_duration_since(since) < MIN_INTERVAL {
            return;
        }
        let loss = f64::from(self.lost) / f64::from(self.total);
        self.last_loss = loss;
        self.recent[self.next_recent] = (Some(now), self.lost, self.total);
        self.next_recent = (self.next_recent + 1) % RECENT_INTERVALS;
        self.recent_at_last = self.recent_loss(now);
        self.since_cut = self.since_cut.map(|n| (n + 1).min(RECENT_INTERVALS));
        let dt =
            self.last_update.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)).min(Duration::from_secs(1));
        self.last_update = Some(now);
        if loss > HIGH_LOSS {
            self.rate_bps = self.rate_bps.min(acted_bps as f64) * (1.0 - 0.5 * loss);
        } else if loss < LOW_LOSS && self.recent_at_last < LOW_LOSS {
            // Grows only when the recent intervals are under it too: one
            // interval of 20 packets on a link losing 5% has none lost one
            // time in three, and those would let the rate walk upwards past
            // the link (a third of the intervals grow by 2.3%, one in 13
            // cuts by about 7%).
            let grown = self.rate_bps * 1.08f64.powf(dt.as_secs_f64()) + 1000.0 * dt.as_secs_f64();
            self.rate_bps = grown.max(acked_bps.unwrap_or(0) as f64);
        }
        self.rate_bps = self.rate_bps.clamp(self.min_bps, self.max_bps);
        self.lost = 0;
        self.total = 0;
        self.since = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_loss_cuts_by_half_the_loss_and_low_loss_grows() {
        let t0 = Instant::now();
        let mut l = LossBased::new(1_000_000, 10_000, 10_000_000);
        // 10 packets only: no figure yet.
        l.on_feedback(t0, 5, 10, 1_000_000, None);
        assert_eq!(l.rate_bps(), 1_000_000);
        // 20% of 40 over 300 ms: × 0.9, from the acted-on 800 k (lower).
        l.on_feedback(t0 + Duration::from_millis(300), 3, 30, 800_000, None);
        assert_eq!(l.rate_bps(), 720_000);
        assert!((l.loss() - 0.2).abs() < 1e-9);
        // 5%: holds (whatever got through).
        l.on_feedback(t0 + Duration::from_millis(600), 2, 40, 720_000, Some(5_000_000));
        assert_eq!(l.rate_bps(), 720_000);
        // None lost over a second, but the intervals so far lost 10 of 180: holds.
        l.on_feedback(t0 + Duration::from_millis(1600), 0, 100, 720_000, Some(500_000));
        assert_eq!(l.rate_bps(), 720_000);
        // None lost over another, the intervals now under 2% (10 of 580): +8% (+1 kbit).
        l.on_feedback(t0 + Duration::from_millis(2600), 0, 400, 720_000, Some(500_000));
        assert!((778_590..=778_610).contains(&l.rate_bps()), "{}", l.rate_bps());
    }

    #[test]
    fn steady_random_loss_of_5_percent_does_not_walk_the_rate_up() {
        let t0 = Instant::now();
        let mut l = LossBased::new(300_000, 10_000, 10_000_000);
        // Intervals of 20 packets, 5% lost on the whole: most intervals lose
        // none or one, now and then one loses 3 (15%).
        // Once the recent intervals hold 8 of them, the rate never grows.
        let pattern = [0, 1, 0, 2, 1, 0, 0, 3, 1, 2];
        let mut settled = u64::MAX;
        for k in 0..100u64 {
            l.on_feedback(t0 + Duration::from_millis(300 * k), pattern[k as usize % 10], 20, 300_000, None);
            if k >= 9 {
                assert!(l.rate_bps() <= settled, "interval {k}: {} after {settled}", l.rate_bps());
                settled = l.rate_bps();
            }
        }
    }

    #[test]
    fn the_recent_loss_is_over_the_last_intervals_of_ten_seconds() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut l = LossBased::new(300_000, 10_000, 10_000_000);
        assert_eq!(l.recent_loss(t0), 0.0);
        l.on_feedback(ms(0), 1, 20, 300_000, None);
        l.on_feedback(ms(500), 1, 20, 300_000, None); // the first interval: 2 of 40
        l.on_feedback(ms(1000), 0, 20, 300_000, None);
        l.on_feedback(ms(1500), 0, 20, 300_000, None);
        // The last interval lost none; the intervals so far lost 2 of 80.
        assert_eq!(l.loss(), 0.0);
        assert!((l.recent_loss(ms(1500)) - 2.0 / 80.0).abs() < 1e-9);
        // Ten seconds after the lossy one ended, it is forgotten.
        assert!(l.recent_loss(ms(10_499)) > 0.0);
        assert_eq!(l.recent_loss(ms(10_500)), 0.0);
        // So is one eight intervals back.
        for k in 0..5 {
            l.on_feedback(ms(2000 + 500 * k), 0, 20, 300_000, None);
        }
        assert!(l.recent_loss(ms(4000)) > 0.0);
        l.on_feedback(ms(4500), 0, 20, 300_000, None);
        assert_eq!(l.recent_loss(ms(4500)), 0.0);
    }

    #[test]
    fn with_low_loss_it_is_never_below_what_gets_through() {
        let t0 = Instant::now();
        let mut l = LossBased::new(300_000, 10_000, 10_000_000);
        l.on_feedback(t0, 0, 50, 300_000, None);
        l.on_feedback(t0 + Duration::from_millis(400), 0, 50, 300_000, Some(900_000));
        assert_eq!(l.rate_bps(), 900_000);
    }
}

//! Bandwidth probing: short bursts above the estimate whose arrival rate
//! shows what the link takes, so the estimate need not climb at 8% a
//! second. [`ProbeController`] decides when and how fast (at the start, a
//! probe at 3× the estimate and then, while each probe's result keeps
//! reaching 70% of what was probed, another at twice that result; later,
//! every [`PROBE_INTERVAL`] while the estimate is below what the receiver's
//! layers need and the link is not overusing); [`ProbeEstimator`] measures
//! a cluster from its packets' feedback.

use std::time::{Duration, Instant};

use super::send_history::{ClusterId, PacketResult};

/// A cluster lasts about this long at its rate.
pub(crate) const PROBE_DURATION: Duration = Duration::from_millis(15);
/// And has at least this many packets.
pub(crate) const PROBE_MIN_PACKETS: u32 = 5;
/// Periodic probes while the estimate is short of the target.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(3);
/// A probe whose rise the link took back (overuse within [`PROBE_INTERVAL`]
/// of it) doubles the interval, up to this:
/// a policer's bucket passes each short probe, and each failed rise costs
/// the receiver a layer switch.
pub(crate) const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(48);
/// A probe's feedback is awaited this long, then given up.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Start-up probes: this multiple of the estimate first.
const INITIAL_FACTOR: u64 = 3;
/// A cluster's arrivals must spread over at least this (µs) to measure a
/// rate (feedback times are in 250 µs ticks); closer, the link took it at
/// once. A burst sent at once is measured by its arrival spacing alone.
const MIN_INTERVAL_US: i64 = 1_000;
/// ... and at most this.
const MAX_INTERVAL_US: i64 = 1_000_000;
/// A result this fraction of the probed rate or more asks for the next probe.
const FURTHER_FRACTION: f64 = 0.7;

/// A burst to send: `bytes` of padding in at least `min_packets` packets,
/// paced at `bitrate_bps`, each tagged with `id` in the send history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeCluster {
    pub id: ClusterId,
    pub bitrate_bps: u64,
    pub bytes: usize,
    pub min_packets: u32,
}

impl ProbeCluster {
    fn new(id: ClusterId, bitrate_bps: u64) -> ProbeCluster {
        let bytes = (bitrate_bps as u128 * PROBE_DURATION.as_micros() / 8_000_000) as usize;
        ProbeCluster { id, bitrate_bps, bytes, min_packets: PROBE_MIN_PACKETS }
    }
}

/// When to probe, and at what rate.
#[derive(Debug, Default)]
pub(crate) struct ProbeController {
    last_id: ClusterId,
    started: bool,
    /// The cluster awaiting its result, and when it was asked for.
    pending: Option<(ProbeCluster, Instant)>,
    last_probe: Option<Instant>,
    /// The next start-up probe's rate, after a good result.
    further: Option<u64>,
    /// The periodic interval now (zero: [`PROBE_INTERVAL`]), doubled by failed rises.
    interval: Duration,
    /// When a probe's result last raised the estimate (until it held a [`PROBE_INTERVAL`]).
    raised_at: Option<Instant>,
}

impl ProbeController {
    /// A probe to send now, if one is due: `estimate_bps` is the current
    /// estimate, `target_bps` what the receiver's layers need (no probe
    /// reaches above it), `overusing` whether the link showed overuse lately.
    pub fn wants_probe(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        target_bps: u64,
        overusing: bool,
    ) -> Option<ProbeCluster> {
        if let Some((_, at)) = self.pending {
            if now.saturating_duration_since(at) < PROBE_TIMEOUT {
                return None;
            }
            self.pending = None;
        }
        if self.raised_at.is_some_and(|t| now.saturating_duration_since(t) >= PROBE_INTERVAL) {
            // The last rise held: periodic probes at the base interval again.
            self.raised_at = None;
            self.interval = PROBE_INTERVAL;
        }
        if target_bps <= estimate_bps || overusing {
            self.further = None;
            return None;
        }
        let rate = if !self.started {
            self.started = true;
            estimate_bps.saturating_mul(INITIAL_FACTOR)
        } else if let Some(r) = self.further.take() {
            r
        } else if self.last_probe.is_none_or(|t| now.saturating_duration_since(t) >= self.interval.max(PROBE_INTERVAL))
        {
            estimate_bps.saturating_mul(2)
        } else {
            return None;
        };
        self.last_id = self.last_id.checked_add(1).unwrap_or(1);
        let cluster = ProbeCluster::new(self.last_id, rate.min(target_bps));
        self.pending = Some((cluster, now));
        self.last_probe = Some(now);
        Some(cluster)
    }

    /// A probe's result raised the estimate at `now`.
    pub fn raised(&mut self, now: Instant) {
        self.raised_at = Some(now);
    }

    /// The link overused at `now`: if that is within [`PROBE_INTERVAL`] of
    /// a probe's rise, the rise failed.
    pub fn on_overuse(&mut self, now: Instant) {
        if self.raised_at.take().is_some_and(|t| now.saturating_duration_since(t) < PROBE_INTERVAL) {
            self.failed();
        }
    }

    /// No further probe, and the periodic interval doubles (up to [`MAX_PROBE_INTERVAL`]).
    fn failed(&mut self) {
        self.further = None;
        self.interval = (self.interval.max(PROBE_INTERVAL) * 2).min(MAX_PROBE_INTERVAL);
    }

    /// The periodic interval now.
    #[cfg(test)]
    pub fn interval(&self) -> Duration {
        self.interval.max(PROBE_INTERVAL)
    }

    /// The cluster awaiting its result.
    pub fn pending(&self) -> Option<ProbeCluster> {
        self.pending.map(|(c, _)| c)
    }

    /// Cluster `id` measured `bps`: a start-up probe that got 70% of its
    /// rate through asks for the next at twice the result.
    pub fn on_result(&mut self, id: ClusterId, bps: u64) {
        let Some((c, _)) = self.pending.filter(|(c, _)| c.id == id) else { return };
        self.pending = None;
        if bps as f64 >= FURTHER_FRACTION * c.bitrate_bps as f64 {
            self.further = Some(bps.saturating_mul(2));
        }
    }
}

/// Measures one cluster from its packets' results.
#[derive(Debug, Default)]
pub(crate) struct ProbeEstimator {
    id: ClusterId,
    reported: u32,
    received: u32,
    bytes: u64,
    first_send: Option<(i64, u32)>,
    last_send: Option<(i64, u32)>,
    first_arrival: Option<(i64, u32)>,
    last_arrival: Option<(i64, u32)>,
}

impl ProbeEstimator {
    /// Adds a result of cluster `cluster` (expecting `packets`); the
    /// cluster's rate once every packet of it was reported (`None` before,
    /// or when too few arrived to say).
    pub fn add(&mut self, r: &PacketResult, packets: u32, bitrate_bps: u64) -> Option<u64> {
        if r.cluster != self.id {
            *self = ProbeEstimator { id: r.cluster, ..Default::default() };
        }
        self.reported += 1;
        if let Some(at) = r.arrival_us {
            self.received += 1;
            self.bytes += u64::from(r.size);
            let s = (r.sent_us, r.size);
            let a = (at, r.size);
            self.first_send = Some(self.first_send.map_or(s, |f| if s.0 < f.0 { s } else { f }));
            self.last_send = Some(self.last_send.map_or(s, |l| if s.0 >= l.0 { s } else { l }));
            self.first_arrival = Some(self.first_arrival.map_or(a, |f| if a.0 < f.0 { a } else { f }));
            self.last_arrival = Some(self.last_arrival.map_or(a, |l| if a.0 >= l.0 { a } else { l }));
        }
        if self.reported < packets {
            return None;
        }
        self.result(bitrate_bps)
    }

    fn result(&self, bitrate_bps: u64) -> Option<u64> {
        if self.received < PROBE_MIN_PACKETS.min(4) {
            return None;
        }
        let (fs, ls, fa, la) = (self.first_send?, self.last_send?, self.first_arrival?, self.last_arrival?);
        // Send rate: all but the last packet over the send interval;
        // receive rate: all but the first over the arrival interval.
        // Arrivals closer than a millisecond (a few feedback ticks) cannot
        // be told apart: the link took the whole cluster at once, so it
        // takes at least the probed rate (a burst of 15 ms of it within
        // 1 ms), which is the result. A cluster spread over a second
        // measures nothing.
        let recv_us = la.0 - fa.0;
        let send_us = (ls.0 - fs.0).max(1);
        if recv_us > MAX_INTERVAL_US || send_us > MAX_INTERVAL_US || recv_us < 0 {
            return None;
        }
        if recv_us < MIN_INTERVAL_US {
            return Some(bitrate_bps);
        }
        let send = (self.bytes - u64::from(ls.1)) as f64 * 8e6 / send_us as f64;
        let recv = (self.bytes - u64::from(fa.1)) as f64 * 8e6 / recv_us as f64;
        let bps = if recv < 0.9 * send { 0.95 * recv } else { send.min(recv) };
        // Never more than was probed: a cluster sent at once has no send rate to bound it.
        Some((bps.round() as u64).min(bitrate_bps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn start_up_probes_climb_while_results_keep_up() {
        let t0 = t(0);
        let mut p = ProbeController::default();
        let c = p.wants_probe(t0, 300_000, 5_000_000, false).expect("a start-up probe");
        assert_eq!((c.id, c.bitrate_bps, c.bytes, c.min_packets), (1, 900_000, 1687, 5));
        assert_eq!(p.wants_probe(t0, 300_000, 5_000_000, false), None, "awaiting its result");
        p.on_result(1, 850_000);
        let c = p.wants_probe(t0, 850_000, 5_000_000, false).unwrap();
        assert_eq!((c.id, c.bitrate_bps), (2, 1_700_000));
        // A result well short of the probe: no further start-up probe.
        p.on_result(2, 1_000_000);
        assert_eq!(p.wants_probe(t0, 1_000_000, 5_000_000, false), None);
        // Periodically while short of the target, at twice the estimate (capped at the target).
        let later = t0 + PROBE_INTERVAL;
        let c = p.wants_probe(later, 1_000_000, 1_500_000, false).unwrap();
        assert_eq!(c.bitrate_bps, 1_500_000);
        // A lost probe is given up after a second; overuse or a met target: none.
        let later = later + PROBE_INTERVAL;
        assert_eq!(p.wants_probe(later, 1_000_000, 5_000_000, true), None);
        assert_eq!(p.wants_probe(later, 1_000_000, 900_000, false), None);
        assert!(p.wants_probe(later, 1_000_000, 5_000_000, false).is_some());
    }

    #[test]
    fn a_rise_the_link_takes_back_doubles_the_interval_and_one_that_holds_resets_it() {
        let t0 = t(0);
        let mut p = ProbeController::default();
        let mut now = t0;
        for want in [6, 12, 24, 48, 48] {
            p.raised(now);
            p.on_overuse(now + Duration::from_secs(2));
            assert_eq!(p.interval(), Duration::from_secs(want));
            now += Duration::from_secs(10);
        }
        // Overuse long after a rise is not its failure.
        p.raised(now);
        p.on_overuse(now + PROBE_INTERVAL);
        assert_eq!(p.interval(), MAX_PROBE_INTERVAL);
        // A rise that holds for the base interval brings it back.
        p.raised(now);
        let _ = p.wants_probe(now + PROBE_INTERVAL, 300_000, 300_000, false);
        assert_eq!(p.interval(), PROBE_INTERVAL);
    }

    fn result(cluster: ClusterId, sent_us: i64, arrival_us: Option<i64>) -> PacketResult {
        PacketResult { seq: 0, sent_us, size: 1000, arrival_us, cluster }
    }

    #[test]
    fn a_cluster_measures_the_slower_of_its_send_and_receive_rates() {
        let mut e = ProbeEstimator::default();
        // 5 packets of 1000 B sent 1 ms apart (8 Mbit/s), arriving 4 ms apart (2 Mbit/s).
        let mut out = None;
        for i in 0..5 {
            out = e.add(&result(7, i * 1000, Some(50_000 + i * 4000)), 5, 8_000_000);
            if i < 4 {
                assert_eq!(out, None);
            }
        }
        // Received well below sent: 0.95 × 2 Mbit/s.
        assert_eq!(out, Some(1_900_000));
        // Arriving as sent: the rate itself; a lost packet leaves fewer bytes.
        let mut e = ProbeEstimator::default();
        for i in 0..4 {
            assert_eq!(e.add(&result(8, i * 4000, Some(9_000 + i * 4000)), 5, 2_000_000), None);
        }
        assert_eq!(e.add(&result(8, 16_000, None), 5, 2_000_000), Some(2_000_000));
        // Too few arrived: no result.
        let mut e = ProbeEstimator::default();
        for i in 0..5 {
            out = e.add(&result(9, i, if i < 2 { Some(i) } else { None }), 5, 1_000_000);
        }
        assert_eq!(out, None);
        // Sent at once, arrived within a millisecond: the link took the probed rate at least.
        let mut e = ProbeEstimator::default();
        for i in 0..5 {
            out = e.add(&result(10, 0, Some(7_000 + i * 100)), 5, 1_500_000);
        }
        assert_eq!(out, Some(1_500_000));
    }
}

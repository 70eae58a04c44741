//! Send-side bandwidth estimation per WebRTC receiver, Google congestion
//! control style (draft-ietf-rmcat-gcc-02; libwebrtc's GoogCcNetworkController),
//! sans IO: every function takes the time as an argument.
//!
//! The router stamps a transport-wide sequence number on each packet it
//! sends to a receiver that negotiated transport-cc and remembers when it
//! sent it ([`SendHistory`], in the leg). The receiver's transport-wide
//! feedback says when each arrived; from those pairs:
//!
//! - `trendline`: the delay-based detector (overuse / normal / underuse);
//! - `aimd`: the delay-based rate (AIMD on the detector's signal);
//! - `acked`: the acknowledged bitrate (what got through);
//! - `loss`: the loss-based rate;
//! - `heavy_loss`: the fast cut when a feedback reports most of a burst lost,
//!   or a standing queue growing while the link carries a fraction of the estimate;
//! - `probe`: when to probe above the estimate, and what a probe measured;
//! - `pacer`: a pacing budget at 2.5 × the estimate (the leg's send queue,
//!   `webrtc::pacing`, sends by it).
//!
//! [`Bwe::estimate_bps`] is the lower of the delay- and loss-based rates;
//! the participant caps it with the receiver's REMB when it sends one
//! (`Participant::estimate`).

mod acked;
mod aimd;
mod heavy_loss;
mod loss;
mod pacer;
mod probe;
mod send_history;
mod trendline;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use corecast_proto::rtcp::TransportFeedback;

pub(crate) use acked::AckedBitrate;
pub(crate) use aimd::Aimd;
pub(crate) use loss::LossBased;
pub(crate) use pacer::Pacer;
pub(crate) use probe::{ProbeCluster, ProbeController, ProbeEstimator};
pub(crate) use send_history::{ClusterId, PacketResult, SendHistory};
pub(crate) use trendline::{BandwidthUsage, InterArrival, Trendline};

/// The estimate before any feedback, bits/s (libwebrtc starts at 300 kbit/s too).
pub(crate) const START_BPS: u64 = 300_000;
/// The estimate never goes below this.
pub(crate) const MIN_BPS: u64 = 30_000;
/// Nor above this.
pub(crate) const MAX_BPS: u64 = 50_000_000;
/// No probing within this long of an overuse.
const QUIET_AFTER_OVERUSE: Duration = Duration::from_secs(2);
/// No probe, nor a probe's result taken, while the recent loss
/// (`LossBased::recent_loss`: the last 8 intervals of 10 s) is this or
/// more: only a clean link is probed.
const PROBE_LOSS: f64 = 0.01;
/// The estimate is acted on once feedback has come for this long (the
/// start-up probes have run; before, it is the start value, not a measure).
pub(crate) const SETTLE: Duration = Duration::from_secs(2);
/// The estimate is offered to the HD/SD switching at most this often (it
/// counts consecutive bad signals: one per feedback would be 20 a second).
pub(crate) const SIGNAL_INTERVAL: Duration = Duration::from_secs(1);
/// ... unless it fell below this fraction of what was last offered.
pub(crate) const DROP_SIGNAL: f64 = 0.9;

/// An estimate that falls to this fraction (numerator, denominator) or
/// less in one feedback has the leg wait for the bottleneck's queue to
/// drain ([`Bwe::take_drain`]).
const DRAIN_FALL: (u64, u64) = (1, 2);

/// One receiver's congestion controller.
#[derive(Debug)]
pub(crate) struct Bwe {
    inter: InterArrival,
    trend: Trendline,
    aimd: Aimd,
    loss: LossBased,
    heavy: heavy_loss::HeavyLoss,
    /// The first transport-wide number sent after the last overflow cut:
    /// the fates of packets before it (queued or in flight when it cut)
    /// are not counted as loss again.
    cut_seq: u64,
    cut_pending: bool,
    /// The last cut's drain, not yet taken by the leg ([`Bwe::take_drain`]).
    drain: Option<Duration>,
    acked: AckedBitrate,
    probes: ProbeController,
    probe_measure: ProbeEstimator,
    /// Packets sent for the pending probe cluster.
    probe_packets: u32,
    usage: BandwidthUsage,
    last_overuse: Option<Instant>,
    /// Reused for each feedback's results (no allocation per feedback once grown).
    results: Vec<PacketResult>,
    first_feedback: Option<Instant>,
    settled: bool,
    /// When the estimate was last offered, and what it was.
    last_signal: Option<(Instant, u64)>,
}

impl Default for Bwe {
    fn default() -> Self {
        Bwe::new()
    }
}

impl Bwe {
    /// A controller at [`START_BPS`].
    pub fn new() -> Bwe {
        Bwe {
            inter: InterArrival::default(),
            trend: Trendline::default(),
            aimd: Aimd::new(START_BPS, MIN_BPS, MAX_BPS),
            loss: LossBased::new(START_BPS, MIN_BPS, MAX_BPS),
            heavy: heavy_loss::HeavyLoss::default(),
            cut_seq: 0,
            cut_pending: false,
            drain: None,
            acked: AckedBitrate::default(),
            probes: ProbeController::default(),
            probe_measure: ProbeEstimator::default(),
            probe_packets: 0,
            usage: BandwidthUsage::Normal,
            last_overuse: None,
            results: Vec::new(),
            first_feedback: None,
            settled: false,
            last_signal: None,
        }
    }

    /// Whether feedback has come for [`SETTLE`]: the estimate is a measure.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Whether the estimate is to be offered to the HD/SD switching and the
    /// layer allocation now: settled, and not within [`SIGNAL_INTERVAL`] of
    /// the last time unless it fell below [`DROP_SIGNAL`] of what was offered then.
    pub fn signal_due(&mut self, now: Instant) -> bool {
        if !self.settled {
            return false;
        }
        let e = self.estimate_bps();
        let recent = self.last_signal.is_some_and(|(t, _)| now.saturating_duration_since(t) < SIGNAL_INTERVAL);
        // A drop is offered at once (the layers follow it down without waiting).
        let dropped = self.last_signal.is_some_and(|(_, bps)| (e as f64) < DROP_SIGNAL * bps as f64);
        if recent && !dropped {
            return false;
        }
        self.last_signal = Some((now, e));
        true
    }

    /// The estimate, bits/s: the lower of the delay- and loss-based rates.
    pub fn estimate_bps(&self) -> u64 {
        self.aimd.rate_bps().min(self.loss.rate_bps())
    }

    /// The acknowledged bitrate, once measured (for layer selection: what
    /// actually reaches the receiver).
    #[allow(dead_code)]
    pub fn acked_bps(&self) -> Option<u64> {
        self.acked.bps()
    }

    /// The delay-based detector's last signal (for layer selection: no
    /// step up while it says overuse).
    #[allow(dead_code)]
    pub fn usage(&self) -> BandwidthUsage {
        self.usage
    }

    /// The loss fraction of the last complete loss interval.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn loss(&self) -> f64 {
        self.loss.loss()
    }

    /// The loss over the last intervals (what keeps probes off), as of the last one's end.
    pub fn recent_loss(&self) -> f64 {
        self.loss.recent_at_last()
    }

    /// The receiver's round-trip time (paces the decreases).
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.aimd.set_rtt(rtt);
    }

    /// One transport-wide feedback message from the receiver, about what
    /// `history` (its leg's) recorded; the new estimate.
    pub fn on_feedback(&mut self, now: Instant, history: &mut SendHistory, fb: &TransportFeedback) -> u64 {
        let mut results = std::mem::take(&mut self.results);
        results.clear();
        history.on_feedback(fb, &mut results);
        self.on_results(now, &results);
        self.results = results;
        if std::mem::take(&mut self.cut_pending) {
            self.cut_seq = history.sent_count();
        }
        self.estimate_bps()
    }

    /// The per-packet results of one feedback (in sequence order).
    pub fn on_results(&mut self, now: Instant, results: &[PacketResult]) {
        if results.is_empty() {
            return;
        }
        let first = *self.first_feedback.get_or_insert(now);
        self.settled |= now.saturating_duration_since(first) >= SETTLE;
        let before = self.estimate_bps();
        let (mut lost, mut total) = (0u32, 0u32);
        let mut overuse = false;
        let mut probe_result = None;
        let pending = self.probes.pending();
        for r in results {
            let counted = r.seq >= self.cut_seq;
            total += u32::from(counted);
            if let Some(c) = pending.filter(|c| r.cluster != 0 && c.id == r.cluster) {
                let packets = self.probe_packets.max(1);
                if let Some(bps) = self.probe_measure.add(r, packets, c.bitrate_bps) {
                    probe_result = Some((c.id, bps));
                }
            }
            let Some(at) = r.arrival_us else {
                lost += u32::from(counted);
                continue;
            };
            self.acked.on_arrival(at, r.size);
            self.heavy.on_arrival(now, r.sent_us, at, r.size);
            if let Some(d) = self.inter.add(r.sent_us, at) {
                overuse |= self.trend.update(d) == BandwidthUsage::Overusing;
            }
        }
        self.usage = if overuse { BandwidthUsage::Overusing } else { self.trend.usage() };
        if overuse {
            self.last_overuse = Some(now);
            self.probes.on_overuse(now);
        }
        self.aimd.update(now, self.usage, self.acked.bps());
        self.loss.on_feedback(now, lost, total, self.estimate_bps(), self.acked.bps());
        if let Some(bps) = self.heavy.on_feedback(now, lost, total, self.estimate_bps()) {
            // An overflow: down to what gets through at once (both rates,
            // so neither lifts the estimate back before it is measured again).
            self.aimd.cut_to(now, bps);
            self.loss.cut_to(now, bps);
            self.last_overuse = Some(now);
            self.cut_pending = true;
        }
        // Fallen to half or less at once (an overflow, or a delay-based
        // decrease from far above the link): the queue that told is still full.
        // The link is full now, so what arrived over the last 150 ms is its
        // rate (of what queued, if enough did: the arrivals before the
        // queue formed came at the rate sent): no higher than 0.85 of that
        // (the 500 ms acknowledged rate a delay-based decrease starts from
        // still holds the rate from before the fall, and would take a second
        // step down, a second keyframe).
        if self.estimate_bps().saturating_mul(DRAIN_FALL.1) <= before.saturating_mul(DRAIN_FALL.0) {
            self.drain = Some(self.heavy.queue_delay());
            if let Some(r) = self.heavy.link_bps() {
                let bps = (aimd::BETA * r as f64) as u64;
                if bps < self.estimate_bps() {
                    self.aimd.cut_to(now, bps);
                    self.loss.cut_to(now, bps);
                    self.cut_pending = true;
                }
            }
        }
        if let Some((id, bps)) = probe_result {
            self.probes.on_result(id, bps);
            // Taken only on a clean link: with loss the loss-based rate may
            // not grow (gcc-02 §6: it holds from 2%), and a probe's short
            // burst passes a policer's bucket that steady sending would not.
            if self.usage != BandwidthUsage::Overusing && self.loss.clean(now, PROBE_LOSS) && bps > self.estimate_bps()
            {
                self.probes.raised(now);
                self.aimd.raise_to(bps);
                self.loss.raise_to(bps);
            }
        }
    }

    /// After the estimate fell by half or more at once (an overflow cut, a
    /// steep delay-based decrease): how long the queue that made it fall
    /// takes to drain (the leg holds its video that long); once per fall.
    pub fn take_drain(&mut self) -> Option<Duration> {
        self.drain.take().filter(|d| !d.is_zero())
    }

    /// A probe cluster to send now, if one is due: at the start, and while
    /// the estimate is below `target_bps` (what the receiver's layers need)
    /// and the link has neither overused lately nor lost 1% or more of late
    /// ([`PROBE_LOSS`]). The sender tags its packets
    /// with the cluster's id and says how many it sent ([`Bwe::probe_sent`]).
    pub fn wants_probe(&mut self, now: Instant, target_bps: u64) -> Option<ProbeCluster> {
        // Not while the link is overusing or losing: a probe would only add to the queue.
        let overused = self.last_overuse.is_some_and(|t| now.saturating_duration_since(t) < QUIET_AFTER_OVERUSE);
        let quiet = overused || !self.loss.clean(now, PROBE_LOSS);
        let c = self.probes.wants_probe(now, self.estimate_bps(), target_bps, quiet)?;
        self.probe_packets = c.min_packets;
        Some(c)
    }

    /// The sender sent `packets` packets of probe cluster `id`.
    pub fn probe_sent(&mut self, id: ClusterId, packets: u32) {
        if self.probes.pending().is_some_and(|c| c.id == id) {
            self.probe_packets = packets;
        }
    }
}

//! The router's own NACKs to publishers (mediasoup's NackGenerator): a
//! gap in a native publisher's video is asked for once for every receiver,
//! instead of each receiver NACKing it through the router.
//!
//! A missing sequence number waits [`REORDER_WAIT`] (it may only be late),
//! then is NACKed (RFC 4585 §6.2.1) up to [`TRIES`] times, a round trip
//! and a quarter apart once the publisher's RTT is known (see `reports`:
//! a publisher that also receives reports on the router's SRs), [`RETRY`]
//! apart until then; it is forgotten when the packet arrives or after the
//! last try. While it is missing, receivers' NACKs for it are not passed on.
//! A packet given up (its last try over, or pushed out by newer gaps) cannot
//! be repaired for anyone: the router asks the publisher for a keyframe at
//! once (within the keyframe throttle), so receivers decode again one round
//! trip and a frame later instead of at the publisher's next periodic one.
//! The deadlines come out through the router's `Output::Timeout`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::rtcp::{Nack, RtcpPacket};
use corecast_proto::SeqNo;

use crate::{Router, ROUTER_SSRC};

/// How long a missing packet may be only late (reordering) before it is NACKed.
pub(crate) const REORDER_WAIT: Duration = Duration::from_millis(15);
/// Between two NACKs for the same packet while the publisher's RTT is unknown.
pub(crate) const RETRY: Duration = Duration::from_millis(100);
/// Between two NACKs for the same packet at least, and at most.
pub(crate) const MIN_RETRY: Duration = Duration::from_millis(20);
pub(crate) const MAX_RETRY: Duration = Duration::from_millis(400);

/// Between two NACKs for the same packet to a publisher `rtt` away: its
/// answer to the last one cannot have come sooner than a round trip.
pub(crate) fn retry_after(rtt: Option<Duration>) -> Duration {
    rtt.map_or(RETRY, |r| (r + r / 4).clamp(MIN_RETRY, MAX_RETRY))
}
/// NACKs per missing packet at most.
pub(crate) const TRIES: u8 = 3;
/// A jump of more than this many numbers is a restart or a new stream, not loss.
const MAX_GAP: u16 = 128;
/// Missing packets tracked at most per producer (the oldest give way).
const MAX_MISSING: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u16,
    next: Instant,
    tries: u8,
}

/// One producer's gaps.
#[derive(Debug, Default)]
pub(crate) struct NackGenerator {
    highest: Option<u16>,
    missing: Vec<Missing>,
    /// A packet was given up since the last [`take_unrepaired`](Self::take_unrepaired).
    unrepaired: bool,
}

impl NackGenerator {
    /// Takes packet `seq`, arrived at `now`; returns the deadline of the
    /// first NACK if it opened a gap.
    pub fn on_packet(&mut self, seq: SeqNo, now: Instant) -> Option<Instant> {
        let Some(h) = self.highest else {
            self.highest = Some(seq.0);
            return None;
        };
        let d = seq.0.wrapping_sub(h) as i16;
        if d <= 0 {
            // Late or retransmitted: no longer missing.
            if let Some(i) = self.missing.iter().position(|m| m.seq == seq.0) {
                self.missing.swap_remove(i);
            }
            return None;
        }
        self.highest = Some(seq.0);
        if d == 1 {
            return None;
        }
        if d as u16 - 1 > MAX_GAP {
            self.missing.clear();
            return None;
        }
        let next = now + REORDER_WAIT;
        for k in 1..d as u16 {
            if self.missing.len() >= MAX_MISSING {
                let oldest = self.missing.iter().enumerate().min_by_key(|(_, m)| m.next).map(|(i, _)| i);
                if let Some(i) = oldest {
                    self.missing.swap_remove(i);
                    self.unrepaired = true;
                }
            }
            self.missing.push(Missing { seq: h.wrapping_add(k), next, tries: 0 });
        }
        Some(next)
    }

    /// Whether the router is asking for `seq` (a receiver's NACK for it need not go on).
    #[inline]
    pub fn is_missing(&self, seq: SeqNo) -> bool {
        self.missing.iter().any(|m| m.seq == seq.0)
    }

    /// The numbers to NACK now (each try counted, the next one `retry`
    /// later), oldest first; forgets those whose last try is over.
    pub fn due(&mut self, now: Instant, retry: Duration) -> Vec<SeqNo> {
        let before = self.missing.len();
        self.missing.retain(|m| m.tries < TRIES || m.next > now);
        self.unrepaired |= self.missing.len() < before;
        let mut seqs = Vec::new();
        for m in self.missing.iter_mut().filter(|m| m.next <= now && m.tries < TRIES) {
            m.tries += 1;
            m.next = now + retry;
            seqs.push(SeqNo(m.seq));
        }
        let h = self.highest.unwrap_or(0);
        seqs.sort_by_key(|s| std::cmp::Reverse(h.wrapping_sub(s.0)));
        seqs
    }

    /// Whether a packet was given up since the last call (a keyframe is needed).
    pub fn take_unrepaired(&mut self) -> bool {
        std::mem::take(&mut self.unrepaired)
    }

    /// The next deadline (a NACK, or forgetting a packet after its last try).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.missing.iter().map(|m| m.next).min()
    }
}

impl Router {
    /// Sends the NACKs that are due to native publishers and sets the next deadline.
    pub(crate) fn send_upstream_nacks(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut keyframes = Vec::new();
        for (id, call) in &mut self.calls {
            for p in &mut call.participants {
                let retry = retry_after(p.reports.rtt);
                for s in &mut p.producers {
                    let Some(g) = s.upstream_nack.as_mut() else { continue };
                    let seqs = g.due(now, retry);
                    if g.take_unrepaired() {
                        keyframes.push((*id, s.ssrc));
                    }
                    if let Some(t) = g.next_deadline() {
                        next = Some(next.map_or(t, |n| n.min(t)));
                    }
                    if seqs.is_empty() {
                        continue;
                    }
                    let nack = RtcpPacket::Nack(Nack::from_lost(ROUTER_SSRC, s.ssrc, &seqs));
                    if let Ok(b) = corecast_proto::rtcp::write_compound(&[nack]) {
                        self.out.stats.nacks_upstream += 1;
                        p.transport.send(&mut self.out, Bytes::from(b));
                    }
                }
            }
        }
        self.next_nack = next;
        for (call, ssrc) in keyframes {
            self.out.stats.keyframes_for_loss += 1;
            self.request_keyframe(now, call, ssrc);
        }
    }

    /// A producer's gap wants a NACK at `at`.
    #[inline]
    pub(crate) fn nack_at(&mut self, at: Instant) {
        self.next_nack = Some(self.next_nack.map_or(at, |n| n.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_nacked_after_the_reorder_wait_then_retried_then_forgotten() {
        let t = Instant::now();
        let mut g = NackGenerator::default();
        assert_eq!(g.on_packet(SeqNo(65_534), t), None);
        assert_eq!(g.on_packet(SeqNo(1), t), Some(t + REORDER_WAIT), "65535 and 0 missing, over the wrap");
        assert!(g.is_missing(SeqNo(0)) && g.is_missing(SeqNo(65_535)));
        assert!(g.due(t + REORDER_WAIT - Duration::from_millis(1), RETRY).is_empty());
        assert_eq!(g.due(t + REORDER_WAIT, RETRY), vec![SeqNo(65_535), SeqNo(0)]);
        assert_eq!(g.on_packet(SeqNo(65_535), t + REORDER_WAIT), None, "it came");
        assert!(!g.is_missing(SeqNo(65_535)));
        let mut at = t + REORDER_WAIT;
        for _ in 1..TRIES {
            at += RETRY;
            assert_eq!(g.due(at, RETRY), vec![SeqNo(0)]);
        }
        assert_eq!(g.next_deadline(), Some(at + RETRY));
        assert!(!g.take_unrepaired());
        assert!(g.due(at + RETRY, RETRY).is_empty(), "tries over");
        assert!(g.take_unrepaired(), "given up: a keyframe is needed");
        assert!(!g.take_unrepaired());
        assert!(!g.is_missing(SeqNo(0)));
        assert_eq!(g.next_deadline(), None);
    }

    #[test]
    fn retries_follow_the_publishers_round_trip() {
        assert_eq!(retry_after(None), RETRY);
        assert_eq!(retry_after(Some(Duration::from_millis(40))), Duration::from_millis(50));
        assert_eq!(retry_after(Some(Duration::from_millis(2))), MIN_RETRY);
        assert_eq!(retry_after(Some(Duration::from_secs(2))), MAX_RETRY);
        let t = Instant::now();
        let mut g = NackGenerator::default();
        g.on_packet(SeqNo(1), t);
        g.on_packet(SeqNo(3), t);
        let retry = retry_after(Some(Duration::from_millis(40)));
        assert_eq!(g.due(t + REORDER_WAIT, retry), vec![SeqNo(2)]);
        assert_eq!(g.next_deadline(), Some(t + REORDER_WAIT + Duration::from_millis(50)));
    }

    #[test]
    fn late_packets_within_the_wait_are_never_nacked_and_jumps_are_not_loss() {
        let t = Instant::now();
        let mut g = NackGenerator::default();
        g.on_packet(SeqNo(10), t);
        g.on_packet(SeqNo(12), t);
        g.on_packet(SeqNo(11), t + Duration::from_millis(5));
        assert!(g.due(t + REORDER_WAIT, RETRY).is_empty());
        assert_eq!(g.on_packet(SeqNo(10_000), t), None);
        assert_eq!(g.next_deadline(), None);
    }
}

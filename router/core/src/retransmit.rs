//! Retransmission (RFC 4585 §6.2.1 generic NACK answered by the router):
//! each video producer keeps its last packets in a [`RetransmitBuffer`]
//! (mediasoup's RtpRetransmissionBuffer), so that a receiver's NACK is
//! answered from the router instead of going back to the publisher, and a
//! packet that arrives twice is forwarded once.
//!
//! The buffer is a ring indexed by sequence number (`seq % SLOTS`) holding
//! a copy of each packet in the slot's own buffer, allocated once and reused
//! (no allocation per packet once the ring has gone round), bounded by
//! [`SLOTS`] packets and by [`MAX_AGE`] of arrival time. It copies rather
//! than keeping the received [`Bytes`]: a kept `Bytes` pins the I/O
//! backend's whole receive batch, which then allocates a fresh one for
//! every batch (measured: 0.72 of the fan-out throughput; a copy of a
//! packet costs far less, see `bench/RESULTS.md`). A slot whose
//! sequence number matches and is not too old is the packet; anything else
//! is "not in the buffer". Wrap-around needs no extended sequence numbers:
//! 2^16 packets never arrive within [`MAX_AGE`] at media rates.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::{SeqNo, Ssrc};

use crate::call::Call;
use crate::stats::RouterStats;
use crate::webrtc::Source;

/// Packets kept per video producer (about 1 s of 4 Mbit/s video in 1 000-byte packets).
pub(crate) const SLOTS: usize = 512;

/// A packet older than this (by arrival) is no longer retransmitted: the
/// receiver's jitter buffer has given up on it. (mediasoup keeps video 2 s
/// too: behind a full shaper queue of half a second a lost packet's NACK
/// comes 0.6 s after it, and a lost resend's second one after as long again.)
pub(crate) const MAX_AGE: Duration = Duration::from_secs(2);

/// One stored packet (`at` is `None` while the slot is empty).
#[derive(Debug, Clone, Default)]
struct Slot {
    seq: u16,
    at: Option<Instant>,
    /// It arrived after a higher number (reordered, or a retransmission).
    late: bool,
    /// The packet's bytes (the buffer is kept and reused).
    packet: Vec<u8>,
    /// How WebRTC receivers rewrite it (as when it was first forwarded).
    source: Option<Source>,
}

impl Slot {
    /// The slot holds a packet not older than [`MAX_AGE`].
    #[inline]
    fn fresh(&self, now: Instant) -> bool {
        self.at.is_some_and(|at| now.saturating_duration_since(at) <= MAX_AGE)
    }
}

/// What [`RetransmitBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// First seen: stored (forward it).
    New,
    /// The same sequence number is already stored: a duplicate (do not forward it again).
    Duplicate,
    /// Older than every packet the ring holds in its slot: not stored
    /// (forward it; whether it is a duplicate cannot be told).
    TooOld,
}

/// The last packets of one producer, by sequence number.
#[derive(Debug)]
pub(crate) struct RetransmitBuffer {
    slots: Box<[Slot]>,
    highest: Option<u16>,
}

impl Default for RetransmitBuffer {
    fn default() -> Self {
        RetransmitBuffer { slots: vec![Slot::default(); SLOTS].into_boxed_slice(), highest: None }
    }
}

/// A late packet (one that filled a gap) forwarded less than this long ago
/// is taken to be on its way still: a receiver's NACK for it crossed it, and
/// resending it would deliver it twice. (About a one-way trip; no estimate
/// is kept. If that forward was lost, the receiver's next NACK gets it.)
pub(crate) const IN_FLIGHT: Duration = Duration::from_millis(50);

impl RetransmitBuffer {
    /// Stores packet `seq` that arrived at `now`.
    #[inline]
    pub fn insert(&mut self, seq: SeqNo, now: Instant, packet: &[u8], source: Option<Source>) -> Stored {
        let slot = &mut self.slots[usize::from(seq.0) % SLOTS];
        if slot.fresh(now) {
            if slot.seq == seq.0 {
                return Stored::Duplicate;
            }
            // The slot holds a newer packet (this one is SLOTS or more behind it).
            if (slot.seq.wrapping_sub(seq.0) as i16) > 0 {
                return Stored::TooOld;
            }
        }
        let late = self.highest.is_some_and(|h| (seq.0.wrapping_sub(h) as i16) < 0);
        if !late {
            self.highest = Some(seq.0);
        }
        slot.seq = seq.0;
        slot.at = Some(now);
        slot.late = late;
        slot.source = source;
        slot.packet.clear();
        slot.packet.extend_from_slice(packet);
        Stored::New
    }

    /// Packet `seq` filled a gap less than [`IN_FLIGHT`] ago: forwarded just now.
    #[inline]
    pub fn in_flight(&self, seq: SeqNo, now: Instant) -> bool {
        let s = &self.slots[usize::from(seq.0) % SLOTS];
        s.seq == seq.0 && s.late && s.at.is_some_and(|at| now.saturating_duration_since(at) < IN_FLIGHT)
    }

    /// Bytes this buffer holds on the heap: its slots and every slot's
    /// packet buffer (by capacity: the buffers are kept and reused).
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.slots.iter().map(|s| s.packet.capacity()).sum::<usize>()
    }

    /// Packet `seq`, if it is stored and not older than [`MAX_AGE`].
    #[inline]
    pub fn get(&self, seq: SeqNo, now: Instant) -> Option<(&[u8], Option<Source>)> {
        let s = &self.slots[usize::from(seq.0) % SLOTS];
        (s.seq == seq.0 && s.fresh(now)).then_some((&s.packet[..], s.source))
    }
}

/// A receiver's retransmission budget: a token bucket that refills at a
/// tenth of the NACKed stream's packet rate (at least [`BUDGET_MIN_PPS`]),
/// holding at most [`BUDGET_BURST`] tokens, and the packets resent to it
/// lately, so that the same packet is not resent within a round trip of the
/// receiver (at least [`RESEND_GAP`], at most [`MAX_RESEND_GAP`]): a second
/// NACK for it before then is a repeat of the first, not a sign that the
/// resend was lost. On a link whose queue is full the round trip is its
/// queue: resending every 100 ms what takes half a second to arrive filled
/// it with copies (a browser re-NACKs at its own pace), and the copies' loss
/// with more NACKs.
#[derive(Debug, Clone)]
pub(crate) struct RetransmitBudget {
    tokens: f64,
    refilled: Option<Instant>,
    recent: [(u32, u16, Option<Instant>); RECENT],
    next: usize,
    /// The same packet is not resent within this long.
    gap: Duration,
}

/// The floor of a receiver's retransmission rate, packets/s.
pub(crate) const BUDGET_MIN_PPS: f64 = 20.0;
/// The most retransmissions a receiver gets at once.
pub(crate) const BUDGET_BURST: f64 = 40.0;
/// The same packet is resent to the same receiver at most once in this
/// long, or in its round trip when that is longer ...
pub(crate) const RESEND_GAP: Duration = Duration::from_millis(100);
/// ... up to this (two resends fit in [`MAX_AGE`] on a link whose round trip is this).
pub(crate) const MAX_RESEND_GAP: Duration = Duration::from_millis(600);
/// Resends remembered per receiver for their gap.
const RECENT: usize = 64;

impl Default for RetransmitBudget {
    fn default() -> Self {
        RetransmitBudget {
            tokens: BUDGET_BURST,
            refilled: None,
            recent: [(0, 0, None); RECENT],
            next: 0,
            gap: RESEND_GAP,
        }
    }
}

/// Why a resend was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Resent within the gap already (not counted: the NACK repeats).
    Recent,
    /// The budget is spent.
    Budget,
}

impl RetransmitBudget {
    /// The receiver's round trip (`None`: not measured): the gap between
    /// two resends of one packet follows it.
    pub fn set_rtt(&mut self, rtt: Option<Duration>) {
        self.gap = rtt.map_or(RESEND_GAP, |r| r.clamp(RESEND_GAP, MAX_RESEND_GAP));
    }

    /// Whether packet `seq` of `ssrc` (a stream of `stream_pps` packets/s)
    /// may be resent now; records it if so.
    pub fn allow(&mut self, ssrc: u32, seq: u16, stream_pps: u64, now: Instant) -> Result<(), Refused> {
        let gap = self.gap;
        let recent = |at: Option<Instant>| at.is_some_and(|t| now.saturating_duration_since(t) < gap);
        if self.recent.iter().any(|&(s, q, at)| s == ssrc && q == seq && recent(at)) {
            return Err(Refused::Recent);
        }
        let rate = (stream_pps as f64 / 10.0).max(BUDGET_MIN_PPS);
        if let Some(t) = self.refilled {
            self.tokens = (self.tokens + now.saturating_duration_since(t).as_secs_f64() * rate).min(BUDGET_BURST);
        }
        self.refilled = Some(now);
        if self.tokens < 1.0 {
            return Err(Refused::Budget);
        }
        self.tokens -= 1.0;
        self.recent[self.next] = (ssrc, seq, Some(now));
        self.next = (self.next + 1) % RECENT;
        Ok(())
    }
}

/// Answers a NACK that receiver `receiver` (a participant index) sent for
/// `lost` packets of `media`, each as numbered in the producer's stream and
/// as the receiver saw it (they differ where its consumer shifts the
/// stream): the packets the buffer holds go into `resend` (numbered as the
/// receiver saw them);
/// returns those it does not hold and that the router is not asking the
/// publisher for itself already, for the publisher.
///
/// A native receiver gets the packet itself again. A WebRTC leg gets it as
/// RTX (RFC 4588) when it negotiated RTX for the codec: its SRTP must not
/// seal a packet index twice (RFC 3711 §3.3.1); a WebRTC leg without RTX is
/// not answered here (its NACKs go to the publisher as before).
///
/// Every number passed on to the publisher costs the receiver's budget as a
/// resend does, and the same number is passed on at most once per
/// [`RESEND_GAP`]: a receiver that floods NACKs costs the publisher no more
/// than one that repairs its own losses at that budget (the rest is counted
/// as `nack_throttled`).
pub(crate) fn answer_nack(
    call: &mut Call,
    receiver: usize,
    media: Ssrc,
    lost: &[(SeqNo, SeqNo)],
    now: Instant,
    stats: &mut RouterStats,
    resend: &mut Vec<(Bytes, Option<Source>)>,
) -> Vec<SeqNo> {
    let Some(p) = call.producer(media) else {
        let upstream = lost.iter().map(|l| l.0).collect();
        return throttle_upstream(call, receiver, media, 0, upstream, now, stats);
    };
    let transport = &call.participants[receiver].transport;
    let pps = p.packet_rate;
    let buffer = p.retransmit.as_deref();
    // SVC: the receiver's highest spatial layer, whose frames' ends it got marked.
    let spatial_on = call.participants[receiver].consumers.get(media).and_then(|c| c.spatial_on);
    let ends_unit = |b: &[u8], src: Option<Source>| match (p.svc.as_deref(), spatial_on, src) {
        (Some(svc), Some(on), Some(src)) if src.dd != 0 => svc.ends_unit_for(b, src.dd, on),
        _ => false,
    };
    let mut found = Vec::new();
    let mut upstream = Vec::new();
    for &(seq, out) in lost {
        let stored = buffer.and_then(|b| b.get(seq, now)).filter(|(_, src)| transport.takes_resends(*src));
        match stored {
            // Answered already: the NACK crossed the packet's (late) forward.
            Some(_) if buffer.is_some_and(|b| b.in_flight(seq, now)) => stats.nack_answered += 1,
            Some((b, src)) => {
                stats.nack_answered += 1;
                let b = Bytes::copy_from_slice(b);
                found.push((seq, out, if ends_unit(&b, src) { crate::svc::marked(b) } else { b }, src));
            }
            None => {
                // Counted as a miss where the buffer could have answered it.
                stats.nack_missed += u64::from(buffer.is_some());
                if !p.upstream_nack.as_ref().is_some_and(|g| g.is_missing(seq)) {
                    upstream.push(seq);
                }
            }
        }
    }
    let rtt = call.participants[receiver].reports.rtt;
    let budget = call.participants[receiver].retransmit.get_or_insert_default();
    budget.set_rtt(rtt);
    for (seq, out, b, src) in found {
        match budget.allow(media.0, seq.0, pps, now) {
            Ok(()) if out == seq => resend.push((b, src)),
            Ok(()) => {
                let mut v = b.to_vec();
                corecast_proto::rtp::set_seq(&mut v, out);
                resend.push((Bytes::from(v), src));
            }
            Err(Refused::Budget) => stats.retransmit_refused += 1,
            Err(Refused::Recent) => {}
        }
    }
    throttle_upstream(call, receiver, media, pps, upstream, now, stats)
}

/// The numbers of `upstream` that receiver `receiver`'s budget lets go on
/// to the publisher of `media` (a stream of `pps` packets/s); the rest are
/// counted as `nack_throttled`.
fn throttle_upstream(
    call: &mut Call,
    receiver: usize,
    media: Ssrc,
    pps: u64,
    mut upstream: Vec<SeqNo>,
    now: Instant,
    stats: &mut RouterStats,
) -> Vec<SeqNo> {
    if upstream.is_empty() {
        return upstream;
    }
    let budget = call.participants[receiver].retransmit.get_or_insert_default();
    upstream.retain(|seq| {
        let allowed = budget.allow(media.0, seq.0, pps, now).is_ok();
        stats.nack_throttled += u64::from(!allowed);
        allowed
    });
    upstream
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkt(seq: u16) -> Bytes {
        Bytes::from(seq.to_be_bytes().to_vec())
    }

    fn seq_of(b: &[u8]) -> u16 {
        u16::from_be_bytes([b[0], b[1]])
    }

    #[test]
    fn stores_finds_and_refuses_duplicates() {
        let t = Instant::now();
        let mut b = RetransmitBuffer::default();
        assert_eq!(b.insert(SeqNo(10), t, &pkt(10), None), Stored::New);
        assert_eq!(b.insert(SeqNo(12), t, &pkt(12), None), Stored::New);
        assert_eq!(b.insert(SeqNo(11), t, &pkt(11), None), Stored::New, "reordered");
        assert_eq!(b.insert(SeqNo(11), t, &pkt(11), None), Stored::Duplicate);
        assert_eq!(seq_of(b.get(SeqNo(11), t).unwrap().0), 11);
        assert!(b.get(SeqNo(13), t).is_none());
        assert!(b.get(SeqNo(10 + SLOTS as u16), t).is_none(), "same slot, other number");
    }

    #[test]
    fn heap_bytes_stop_growing_once_the_ring_has_gone_round() {
        let t = Instant::now();
        let mut b = RetransmitBuffer::default();
        let empty = b.heap_bytes();
        assert_eq!(empty, SLOTS * std::mem::size_of::<Slot>());
        let big = vec![7u8; 1000];
        for s in 0..SLOTS as u16 {
            b.insert(SeqNo(s), t, &big, None);
        }
        let full = b.heap_bytes();
        assert!(full >= empty + SLOTS * 1000, "{full}");
        for s in SLOTS as u16..4 * SLOTS as u16 {
            b.insert(SeqNo(s), t + MAX_AGE * 2, &big, None);
        }
        assert_eq!(b.heap_bytes(), full, "slots reuse their buffers");
    }

    #[test]
    fn a_late_packet_is_in_flight_for_a_while() {
        let t = Instant::now();
        let mut b = RetransmitBuffer::default();
        b.insert(SeqNo(1), t, &pkt(1), None);
        b.insert(SeqNo(3), t, &pkt(3), None);
        b.insert(SeqNo(2), t, &pkt(2), None);
        assert!(!b.in_flight(SeqNo(3), t), "in order");
        assert!(b.in_flight(SeqNo(2), t + IN_FLIGHT - Duration::from_millis(1)));
        assert!(!b.in_flight(SeqNo(2), t + IN_FLIGHT));
    }

    #[test]
    fn bounded_by_age_and_by_count() {
        let t = Instant::now();
        let mut b = RetransmitBuffer::default();
        b.insert(SeqNo(1), t, &pkt(1), None);
        assert!(b.get(SeqNo(1), t + MAX_AGE).is_some());
        assert!(b.get(SeqNo(1), t + MAX_AGE + Duration::from_millis(1)).is_none(), "too old");
        // An old packet's slot is free again: the same number later is new, not a duplicate.
        assert_eq!(b.insert(SeqNo(1), t + MAX_AGE * 2, &pkt(1), None), Stored::New);
        // SLOTS later the slot is taken over; the old number is then too old to store.
        let later = 1 + SLOTS as u16;
        assert_eq!(b.insert(SeqNo(later), t + MAX_AGE * 2, &pkt(later), None), Stored::New);
        assert!(b.get(SeqNo(1), t + MAX_AGE * 2).is_none());
        assert_eq!(b.insert(SeqNo(1), t + MAX_AGE * 2, &pkt(1), None), Stored::TooOld);
    }

    #[test]
    fn wraps() {
        let t = Instant::now();
        let mut b = RetransmitBuffer::default();
        for s in 65_530u16..=65_535 {
            b.insert(SeqNo(s), t, &pkt(s), None);
        }
        for s in 0u16..6 {
            assert_eq!(b.insert(SeqNo(s), t, &pkt(s), None), Stored::New);
        }
        assert_eq!(seq_of(b.get(SeqNo(65_535), t).unwrap().0), 65_535);
        assert_eq!(seq_of(b.get(SeqNo(0), t).unwrap().0), 0);
        assert_eq!(b.insert(SeqNo(65_533), t, &pkt(65_533), None), Stored::Duplicate);
    }

    #[test]
    fn the_budget_caps_resends_and_never_repeats_one_within_the_gap() {
        let t = Instant::now();
        let mut b = RetransmitBudget::default();
        assert_eq!(b.allow(1, 5, 100, t), Ok(()));
        assert_eq!(b.allow(1, 5, 100, t + RESEND_GAP / 2), Err(Refused::Recent));
        assert_eq!(b.allow(2, 5, 100, t), Ok(()), "another stream");
        assert_eq!(b.allow(1, 5, 100, t + RESEND_GAP), Ok(()), "a round trip later: the resend was lost");
        // The bucket refilled to the burst on the way: 39 more go.
        for q in 0..39 {
            assert_eq!(b.allow(1, 100 + q, 100, t + RESEND_GAP), Ok(()));
        }
        assert_eq!(b.allow(1, 999, 100, t + RESEND_GAP), Err(Refused::Budget), "burst spent");
        // 20 packets/s (the floor over a tenth of 100): one more token every 50 ms.
        assert_eq!(b.allow(1, 999, 100, t + RESEND_GAP + Duration::from_millis(49)), Err(Refused::Budget));
        assert_eq!(b.allow(1, 999, 100, t + RESEND_GAP + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn the_gap_between_two_resends_of_a_packet_follows_the_receivers_round_trip() {
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        let mut b = RetransmitBudget::default();
        // Half a second of round trip (a full queue on the way): a NACK
        // repeated within it is not answered again.
        b.set_rtt(Some(Duration::from_millis(500)));
        assert_eq!(b.allow(1, 5, 30, t), Ok(()));
        assert_eq!(b.allow(1, 5, 30, ms(300)), Err(Refused::Recent));
        assert_eq!(b.allow(1, 5, 30, ms(500)), Ok(()));
        // Bounded both ways; unmeasured: the least.
        b.set_rtt(Some(Duration::from_secs(5)));
        assert_eq!(b.allow(1, 5, 30, ms(1099)), Err(Refused::Recent));
        assert_eq!(b.allow(1, 5, 30, ms(1100)), Ok(()));
        b.set_rtt(Some(Duration::from_millis(10)));
        assert_eq!(b.allow(1, 5, 30, ms(1200)), Ok(()));
        b.set_rtt(None);
        assert_eq!(b.allow(1, 5, 30, ms(1250)), Err(Refused::Recent));
        assert_eq!(b.allow(1, 5, 30, ms(1300)), Ok(()));
    }

    proptest! {
        /// Any start (near the wrap or not), any local reordering and
        /// duplication: each number is New once, Duplicate after, and the
        /// last SLOTS numbers are all found with their own bytes.
        #[test]
        fn wrap_reorder_duplicates(start in prop_oneof![65_000u16..=65_535, any::<u16>()],
                                   n in 1usize..1500,
                                   swaps in proptest::collection::vec((0usize..1500, 1usize..8), 0..200),
                                   dups in proptest::collection::vec(0usize..1500, 0..100)) {
            let t = Instant::now();
            let mut order: Vec<usize> = (0..n).collect();
            for (i, d) in swaps {
                let (i, j) = (i % n, (i + d).min(n - 1));
                order.swap(i, j);
            }
            let mut seen = std::collections::HashSet::new();
            let mut b = RetransmitBuffer::default();
            for (k, &i) in order.iter().enumerate() {
                let s = start.wrapping_add(i as u16);
                // Too old only when a number SLOTS (or a multiple) ahead already took the slot.
                let newer = seen.iter().any(|&j: &usize| j > i && (j - i) % SLOTS == 0);
                let first = if newer { Stored::TooOld } else { Stored::New };
                prop_assert_eq!(b.insert(SeqNo(s), t, &pkt(s), None), first, "{} first", s);
                seen.insert(i);
                if dups.contains(&k) {
                    let again = if newer { Stored::TooOld } else { Stored::Duplicate };
                    prop_assert_eq!(b.insert(SeqNo(s), t, &pkt(s), None), again);
                }
            }
            for i in n.saturating_sub(SLOTS)..n {
                let s = start.wrapping_add(i as u16);
                let got = b.get(SeqNo(s), t).map(|(p, _)| seq_of(p));
                prop_assert_eq!(got, Some(s));
            }
        }
    }
}

//! What the router sent to one WebRTC receiver, by transport-wide sequence
//! number: when and how large each packet was, so that the receiver's
//! transport-wide feedback (which says only *when it arrived*) can be turned
//! into per-packet (send time, arrival time or lost) results.
//!
//! A fixed ring, allocated once per leg (at its first send): recording a
//! send on the hot path writes one slot and allocates nothing. The 16-bit wire numbers are
//! unwrapped against the newest number sent; the receiver's 24-bit reference
//! time (64 ms units) is unwrapped against the previous feedback's.

use std::time::Instant;

use corecast_proto::rtcp::{TransportFeedback, TWCC_DELTA_TICK_US, TWCC_REFERENCE_TIME_UNIT_US};
use corecast_proto::SeqNo;

/// Slots in the ring (a power of two): some 8 s at 250 packets/s. Feedback
/// about older packets finds nothing (they are not counted, not as lost either).
pub(crate) const HISTORY_SLOTS: usize = 2048;

/// A probe cluster's id on its packets (0: not a probe).
pub(crate) type ClusterId = u16;

/// One remembered send: 16 bytes, four to a cache line (the ring of 400
/// legs is written one slot a packet, so a slot's size is what each send's
/// cache misses cost).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The unwrapped sequence number's low 32 bits (meaningful unless `Empty`:
    /// the ring holds numbers within [`HISTORY_SLOTS`] of the newest, so the
    /// low bits tell them apart).
    seq: u32,
    /// Sent at, µs since the history's current epoch ([`SendHistory::rebase`]).
    sent_us: u32,
    /// Bytes on the wire (RTP header and payload, before the SRTP tag).
    size: u16,
    /// The probe cluster it belongs to (0: none).
    cluster: ClusterId,
    /// What feedback said of it so far.
    state: Reported,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Reported {
    /// Nothing recorded here (never written, or the send was withdrawn).
    #[default]
    Empty,
    Not,
    Lost,
    Received,
}

/// When a send would be this far (µs) past the epoch, the epoch moves on
/// by [`REBASE_US`] (some 36 minutes; a slot's `u32` holds 71).
const REBASE_AT_US: u64 = 3 << 30;
/// How far the epoch moves; slots older than the new epoch are forgotten
/// (no feedback is about packets sent more than half an hour before).
const REBASE_US: u32 = 1 << 31;

/// The fate of one sent packet, as feedback reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PacketResult {
    /// Unwrapped transport-wide sequence number.
    pub seq: u64,
    /// Sent at, µs since the history's epoch (the router's clock).
    pub sent_us: i64,
    /// Bytes sent.
    pub size: u32,
    /// Arrival, µs on the receiver's clock (unwrapped; only differences mean
    /// anything); `None`: reported lost.
    pub arrival_us: Option<i64>,
    /// The probe cluster it belonged to (0: none).
    pub cluster: ClusterId,
}

/// The send side of transport-wide congestion control for one leg.
#[derive(Debug)]
pub(crate) struct SendHistory {
    slots: Box<[Slot]>,
    /// The unwrapped number the next send gets.
    next: u64,
    /// Send times are kept relative to this (the first send, moved on by [`Self::rebase`]).
    epoch: Option<Instant>,
    /// How far the epoch moved since the first send, µs: results give send
    /// times relative to the first send.
    rebased_us: i64,
    /// The last feedback's reference time, unwrapped (64 ms units).
    last_reference: Option<i64>,
}

impl Default for SendHistory {
    fn default() -> Self {
        SendHistory::new()
    }
}

impl SendHistory {
    /// An empty history; the ring (32 KiB) is allocated at the first send,
    /// so a leg that is never sent anything costs nothing.
    pub fn new() -> SendHistory {
        SendHistory { slots: Box::default(), next: 0, epoch: None, rebased_us: 0, last_reference: None }
    }

    /// The number the next packet is to carry on the wire.
    #[inline]
    pub fn next_seq(&self) -> SeqNo {
        SeqNo(self.next as u16)
    }

    /// How many packets were recorded: the unwrapped number of the next.
    pub fn sent_count(&self) -> u64 {
        self.next
    }

    /// Records that the packet numbered [`Self::next_seq`] went out at `now`,
    /// `size` bytes, as part of probe `cluster` (0: none); the next number follows.
    #[inline]
    pub fn on_sent(&mut self, now: Instant, size: usize, cluster: ClusterId) {
        if self.slots.is_empty() {
            // Once per leg: the ring.
            self.slots = vec![Slot::default(); HISTORY_SLOTS].into_boxed_slice();
        }
        let epoch = *self.epoch.get_or_insert(now);
        let mut sent_us = now.saturating_duration_since(epoch).as_micros() as u64;
        if sent_us >= REBASE_AT_US {
            sent_us -= self.rebase(sent_us);
        }
        let size = size.min(usize::from(u16::MAX)) as u16;
        let seq = self.next;
        self.slots[(seq as usize) & (HISTORY_SLOTS - 1)] =
            Slot { seq: seq as u32, sent_us: sent_us as u32, size, cluster, state: Reported::Not };
        self.next += 1;
    }

    /// Moves the epoch on so that a send `sent_us` past it fits a slot
    /// (called once every half hour or so of sending, or after a long
    /// pause): slots sent before the new epoch are forgotten, the others
    /// shifted; how far (µs) it moved.
    #[cold]
    fn rebase(&mut self, sent_us: u64) -> u64 {
        // Far enough that `sent_us` is below REBASE_AT_US after it.
        let steps = (sent_us - REBASE_AT_US) / u64::from(REBASE_US) + 1;
        let by = steps * u64::from(REBASE_US);
        for slot in self.slots.iter_mut() {
            if u64::from(slot.sent_us) < by {
                *slot = Slot::default();
            } else {
                slot.sent_us -= by as u32;
            }
        }
        if let Some(e) = self.epoch.as_mut() {
            *e += std::time::Duration::from_micros(by);
        }
        self.rebased_us += by as i64;
        by
    }

    /// The packet numbered [`Self::next_seq`] was not sent after all (a
    /// leg's send queue withdrew it): the number is passed over, and
    /// feedback about it (reported lost, as it will be) is ignored.
    pub fn on_withdrawn(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); HISTORY_SLOTS].into_boxed_slice();
        }
        self.slots[(self.next as usize) & (HISTORY_SLOTS - 1)] = Slot::default();
        self.next += 1;
    }

    /// Turns one feedback message into results (appended to `out`, in
    /// sequence order): a packet reported received for the first time, or
    /// reported lost for the first time. Entries about packets never sent,
    /// too old for the ring, or already reported are skipped; nothing in a
    /// malformed message can make this panic.
    pub fn on_feedback(&mut self, fb: &TransportFeedback, out: &mut Vec<PacketResult>) {
        if self.next == 0 || fb.deltas.is_empty() {
            return;
        }
        // The base, unwrapped as the number nearest the newest sent.
        let newest = self.next - 1;
        let d = i64::from(fb.base_seq.0.wrapping_sub(newest as u16) as i16);
        let base = newest as i64 + d;
        // The reference time, unwrapped (24-bit, signed on the wire) against the last.
        let reference = match self.last_reference {
            None => i64::from(fb.reference_time),
            Some(last) => {
                let diff = (i64::from(fb.reference_time) - last).rem_euclid(1 << 24);
                let diff = if diff >= 1 << 23 { diff - (1 << 24) } else { diff };
                last + diff
            }
        };
        self.last_reference = Some(reference);
        let mut t = reference * TWCC_REFERENCE_TIME_UNIT_US;
        for (i, d) in fb.deltas.iter().enumerate() {
            let arrival = d.map(|d| {
                t += i64::from(d) * TWCC_DELTA_TICK_US;
                t
            });
            let seq = base + i as i64;
            if seq < 0 || seq > newest as i64 || newest as i64 - seq >= HISTORY_SLOTS as i64 {
                continue;
            }
            let seq = seq as u64;
            let Some(slot) = self.slots.get_mut((seq as usize) & (HISTORY_SLOTS - 1)) else { continue };
            if slot.state == Reported::Empty || slot.seq != seq as u32 {
                continue;
            }
            let new_state = if arrival.is_some() { Reported::Received } else { Reported::Lost };
            if slot.state == Reported::Received || slot.state == new_state {
                continue;
            }
            slot.state = new_state;
            let sent_us = self.rebased_us + i64::from(slot.sent_us);
            let (size, cluster) = (u32::from(slot.size), slot.cluster);
            out.push(PacketResult { seq, sent_us, size, arrival_us: arrival, cluster });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast_proto::Ssrc;
    use std::time::Duration;

    fn fb(base: u16, reference_time: i32, deltas: Vec<Option<i16>>) -> TransportFeedback {
        TransportFeedback {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2),
            base_seq: SeqNo(base),
            reference_time,
            fb_count: 0,
            deltas,
        }
    }

    #[test]
    fn feedback_pairs_send_and_arrival_times() {
        let t0 = Instant::now();
        let mut h = SendHistory::new();
        for i in 0..3u64 {
            assert_eq!(h.next_seq(), SeqNo(i as u16));
            h.on_sent(t0 + Duration::from_millis(10 * i), 1000 + i as usize, 0);
        }
        let mut out = Vec::new();
        // 0 at ref 10×64 ms + 1 ms; 1 lost; 2 at +20 ms after 0.
        h.on_feedback(&fb(0, 10, vec![Some(4), None, Some(80)]), &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], PacketResult { seq: 0, sent_us: 0, size: 1000, arrival_us: Some(641_000), cluster: 0 });
        assert_eq!((out[1].seq, out[1].arrival_us, out[1].sent_us), (1, None, 10_000));
        assert_eq!((out[2].arrival_us, out[2].sent_us, out[2].size), (Some(661_000), 20_000, 1002));
        // Reported again: nothing new; the lost one arriving late: reported once.
        out.clear();
        h.on_feedback(&fb(0, 10, vec![Some(4), Some(8), Some(80)]), &mut out);
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn sequence_numbers_and_reference_times_unwrap() {
        let t0 = Instant::now();
        let mut h = SendHistory::new();
        for i in 0..66_000u32 {
            h.on_sent(t0 + Duration::from_micros(u64::from(i)), 100, 0);
        }
        // The newest is 65 999 (wire 463): wire 460 is 65 996, wire 65 530 is 65 530.
        let mut out = Vec::new();
        h.on_feedback(&fb(460, (1 << 23) - 1, vec![Some(0)]), &mut out);
        assert_eq!(out[0].seq, 65_996);
        out.clear();
        h.on_feedback(&fb(65_530, -(1 << 23), vec![Some(0)]), &mut out);
        assert_eq!(out[0].seq, 65_530);
        // Reference time went from 2^23-1 to -2^23: one step forward, not back.
        assert_eq!(out[0].arrival_us, Some((1i64 << 23) * TWCC_REFERENCE_TIME_UNIT_US));
    }

    #[test]
    fn unknown_old_and_future_numbers_are_skipped_without_panic() {
        let t0 = Instant::now();
        let mut h = SendHistory::new();
        let mut out = Vec::new();
        h.on_feedback(&fb(0, 0, vec![Some(1)]), &mut out);
        assert!(out.is_empty(), "nothing sent yet");
        for i in 0..(HISTORY_SLOTS as u64 + 10) {
            h.on_sent(t0 + Duration::from_micros(i), 10, 0);
        }
        // Too old for the ring (0..10), and beyond what was sent.
        h.on_feedback(&fb(0, 0, vec![Some(1); 11]), &mut out);
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![10]);
        out.clear();
        h.on_feedback(&fb((HISTORY_SLOTS + 9) as u16, 0, vec![Some(-32768), Some(32767), Some(1)]), &mut out);
        assert_eq!(out.len(), 1);
        // A full-size message of extremes: bounded, no panic.
        h.on_feedback(&fb(40_000, i32::MIN, vec![Some(i16::MIN); 65_535]), &mut out);
    }

    #[test]
    fn send_times_stay_relative_to_the_first_send_across_hours() {
        let t0 = Instant::now();
        let mut h = SendHistory::new();
        // One send every 10 minutes for 5 hours (the epoch moves on several
        // times), then one two hours later still.
        for i in 0..30u64 {
            h.on_sent(t0 + Duration::from_secs(600 * i), 100 + i as usize, 0);
        }
        let mut out = Vec::new();
        h.on_feedback(&fb(27, 0, vec![Some(0), Some(4), Some(8)]), &mut out);
        let got: Vec<_> = out.iter().map(|r| (r.seq, r.sent_us, r.size)).collect();
        assert_eq!(got, vec![(27, 16_200_000_000, 127), (28, 16_800_000_000, 128), (29, 17_400_000_000, 129)]);
        // Two hours later: what was sent before the epoch moved past it is forgotten.
        h.on_sent(t0 + Duration::from_secs(600 * 29 + 7200), 7, 0);
        out.clear();
        h.on_feedback(&fb(29, 1, vec![Some(0), Some(4)]), &mut out);
        let got: Vec<_> = out.iter().map(|r| (r.seq, r.sent_us, r.size)).collect();
        assert_eq!(got, vec![(30, 24_600_000_000, 7)]);
        // A withdrawn number is never reported.
        h.on_withdrawn();
        out.clear();
        h.on_feedback(&fb(31, 0, vec![None]), &mut out);
        assert!(out.is_empty());
    }
}

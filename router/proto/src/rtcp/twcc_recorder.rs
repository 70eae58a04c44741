//! The receiver side of transport-wide congestion control: records the
//! arrival of each packet carrying a transport-wide sequence number (the
//! `http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01`
//! header extension) and writes the [`TransportFeedback`] the sender's
//! bandwidth estimator needs.
//!
//! Sans-IO: time is passed in. A router calls [`TwccRecorder::record`] for
//! every packet of a leg, and [`TwccRecorder::poll_feedback`] when
//! [`TwccRecorder::next_deadline`] has passed.
//!
//! - Sequence numbers are unwrapped to 64 bits; duplicates are ignored (the
//!   first arrival counts).
//! - Feedback covers every sequence number from the end of the previous
//!   feedback to the highest received; those missing are reported as not
//!   received. A packet arriving after feedback reported it missing moves the
//!   start of the next feedback back to it, so the sender learns it arrived
//!   (libwebrtc's `RemoteEstimatorProxy` does the same).
//! - Feedback is due [`TWCC_FEEDBACK_INTERVAL`] after the previous one while
//!   packets arrive, or as soon as a packet arrives after a quiet period.
//! - One poll writes at most [`TWCC_MAX_FEEDBACK_BYTES`] (one feedback packet, or a
//!   few when gaps between arrivals exceed what a 16-bit delta holds); what
//!   is left is due at once, for the next poll.
//! - Memory is bounded: reported packets older than [`TWCC_HISTORY`] behind the
//!   newest arrival are forgotten, and so is anything more than
//!   [`TWCC_MAX_HISTORY_PACKETS`] sequence numbers behind the highest.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::twcc::{FeedbackSizer, TransportFeedback, TWCC_DELTA_TICK_US, TWCC_REFERENCE_TIME_UNIT_US};
use crate::ids::{SeqNo, Ssrc};

/// How often feedback is sent while packets arrive (libwebrtc: 50 to 250 ms).
pub const TWCC_FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// The most one [`TwccRecorder::poll_feedback`] writes.
pub const TWCC_MAX_FEEDBACK_BYTES: usize = 1200;
/// How long reported arrivals are kept, to re-report reordered packets.
pub const TWCC_HISTORY: Duration = Duration::from_millis(500);
/// The most sequence numbers kept (received or not).
pub const TWCC_MAX_HISTORY_PACKETS: usize = 4096;

/// A second feedback packet in the same poll needs at least this much room.
const MIN_PACKET_ROOM: usize = 64;
/// Times are clamped to ±2^53 µs (285 years) from the epoch: no overflow.
const MAX_US: i64 = 1 << 53;

/// Records transport-wide sequence numbers as packets arrive and writes the
/// feedback for them. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct TwccRecorder {
    /// Extended sequence number of `slots[0]`.
    base: u64,
    /// Arrival of each sequence number from `base` on; the last is received.
    slots: VecDeque<Option<Instant>>,
    /// Highest extended sequence number seen (the unwrapping reference).
    highest: Option<u64>,
    /// Sequence numbers below this were forgotten; their arrivals are ignored.
    floor: u64,
    /// First extended sequence number the next feedback covers.
    next_report: u64,
    /// Time zero of the reference time: the first arrival.
    epoch: Option<Instant>,
    /// Latest arrival time recorded.
    newest: Option<Instant>,
    /// Feedback packet count of the next feedback.
    fb_count: u8,
    /// Reference time of the last feedback written (for one without received
    /// packets, which the building rules out, but a sender reads the
    /// reference times of consecutive feedbacks as a clock).
    last_reference: i32,
    /// When the last feedback was written.
    last_feedback: Option<Instant>,
    /// When feedback is due; `None` when there is nothing to report.
    deadline: Option<Instant>,
}

impl TwccRecorder {
    /// An empty recorder.
    pub fn new() -> TwccRecorder {
        TwccRecorder::default()
    }

    /// Records that the packet with transport-wide sequence number `seq` arrived at `arrival`.
    pub fn record(&mut self, seq: u16, arrival: Instant) {
        let ext = match self.highest {
            // Start far from zero so that reordering before the first never underflows.
            None => (1u64 << 32) | u64::from(seq),
            Some(h) => h.saturating_add_signed(i64::from(SeqNo(h as u16).delta(SeqNo(seq)))),
        };
        if ext < self.floor || !self.insert(ext, arrival) {
            return;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.epoch.get_or_insert(arrival);
        self.newest = Some(self.newest.map_or(arrival, |n| n.max(arrival)));
        if ext < self.next_report {
            self.next_report = ext;
        }
        self.prune();
        if self.deadline.is_none() {
            let next = |l: Instant| l.checked_add(TWCC_FEEDBACK_INTERVAL).unwrap_or(l);
            let due = self.last_feedback.map_or(arrival, |l| next(l).max(arrival));
            self.deadline = Some(due);
        }
    }

    /// When feedback is next due (`poll_feedback` writes nothing before); `None` with nothing to report.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// When feedback is due at `now`, appends it to `out` (one or a few
    /// transport-wide feedback packets, at most [`TWCC_MAX_FEEDBACK_BYTES`] in
    /// all) and returns true; otherwise leaves `out` alone and returns false.
    pub fn poll_feedback(&mut self, now: Instant, sender_ssrc: u32, media_ssrc: u32, out: &mut Vec<u8>) -> bool {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return false,
        }
        let start_len = out.len();
        let end = self.end();
        self.next_report = self.next_report.max(self.base);
        while self.next_report < end {
            let used = out.len() - start_len;
            if used > 0 && used + MIN_PACKET_ROOM > TWCC_MAX_FEEDBACK_BYTES {
                break;
            }
            let budget = TWCC_MAX_FEEDBACK_BYTES - used;
            let fb = self.build(self.next_report, end, budget, Ssrc(sender_ssrc), Ssrc(media_ssrc));
            // Cannot fail: 1..=65535 entries, reference time wrapped to 24 bits.
            if fb.deltas.is_empty() || fb.write(out).is_err() {
                break;
            }
            self.next_report += fb.deltas.len() as u64;
            self.fb_count = self.fb_count.wrapping_add(1);
            self.last_reference = fb.reference_time;
        }
        let wrote = out.len() > start_len;
        if wrote {
            self.last_feedback = Some(now);
        }
        self.deadline = (self.next_report < end).then_some(now);
        wrote
    }

    /// One past the highest extended sequence number held.
    fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Stores an arrival; false for a duplicate or one too far back to keep.
    fn insert(&mut self, ext: u64, arrival: Instant) -> bool {
        if self.slots.is_empty() {
            self.base = ext;
            self.next_report = ext;
            self.slots.push_back(Some(arrival));
            return true;
        }
        if ext < self.base {
            // Reordered before everything held (nothing forgotten yet): grow at the front.
            let grow = self.base - ext;
            if grow + self.slots.len() as u64 > TWCC_MAX_HISTORY_PACKETS as u64 {
                return false;
            }
            for _ in 1..grow {
                self.slots.push_front(None);
            }
            self.slots.push_front(Some(arrival));
            self.base = ext;
            return true;
        }
        let idx = ext - self.base;
        if idx < self.slots.len() as u64 {
            let slot = &mut self.slots[idx as usize];
            if slot.is_some() {
                return false;
            }
            *slot = Some(arrival);
            return true;
        }
        // Ahead of everything held: forget the oldest to stay within bounds.
        let span = idx + 1;
        if span > TWCC_MAX_HISTORY_PACKETS as u64 {
            let drop = span - TWCC_MAX_HISTORY_PACKETS as u64;
            if drop >= self.slots.len() as u64 {
                self.slots.clear();
                self.base = ext;
            } else {
                self.slots.drain(..drop as usize);
                self.base += drop;
            }
            self.floor = self.base;
            self.next_report = self.next_report.max(self.base);
        }
        while self.end() < ext {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some(arrival));
        true
    }

    /// Forgets reported packets that arrived more than [`TWCC_HISTORY`] before the
    /// newest (and the missing ones before them).
    fn prune(&mut self) {
        let Some(newest) = self.newest else { return };
        loop {
            let reported = self.next_report.saturating_sub(self.base) as usize;
            let Some(i) = self.slots.iter().take(reported).position(Option::is_some) else { break };
            let Some(Some(t)) = self.slots.get(i) else { break };
            if newest.saturating_duration_since(*t) <= TWCC_HISTORY {
                break;
            }
            self.slots.drain(..=i);
            self.base += i as u64 + 1;
            self.floor = self.base;
        }
    }

    /// Microseconds from the epoch to `t`, clamped to ±[`MAX_US`].
    fn us_since_epoch(&self, t: Instant) -> i64 {
        let Some(epoch) = self.epoch else { return 0 };
        let clamp = |d: Duration| d.as_micros().min(MAX_US as u128) as i64;
        match t.checked_duration_since(epoch) {
            Some(d) => clamp(d),
            None => -clamp(epoch.duration_since(t)),
        }
    }

    /// The feedback for sequence numbers from `start` on, stopping before
    /// `end`, before `budget` bytes, or where a delta would not fit in 16 bits.
    fn build(&self, start: u64, end: u64, budget: usize, sender_ssrc: Ssrc, media_ssrc: Ssrc) -> TransportFeedback {
        let mut fb = TransportFeedback {
            sender_ssrc,
            media_ssrc,
            base_seq: SeqNo(start as u16),
            reference_time: self.last_reference,
            fb_count: self.fb_count,
            deltas: Vec::new(),
        };
        let mut size = FeedbackSizer::new();
        // Running time in µs, the reference time plus the deltas so far.
        let mut last_us: Option<i64> = None;
        let first = (start - self.base) as usize;
        let count = (end - start).min(u64::from(u16::MAX)) as usize;
        for slot in self.slots.iter().skip(first).take(count) {
            let (entry, next_us) = match *slot {
                None => (None, last_us),
                Some(t) => {
                    let us = self.us_since_epoch(t);
                    let from = match last_us {
                        Some(l) => l,
                        None => {
                            let r = us.div_euclid(TWCC_REFERENCE_TIME_UNIT_US);
                            fb.reference_time = wrap24(r);
                            r * TWCC_REFERENCE_TIME_UNIT_US
                        }
                    };
                    let ticks = round_div(us - from, TWCC_DELTA_TICK_US);
                    let Ok(d) = i16::try_from(ticks) else { break };
                    (Some(d), Some(from + i64::from(d) * TWCC_DELTA_TICK_US))
                }
            };
            if !fb.deltas.is_empty() && size.size_with(entry) > budget {
                break;
            }
            size.add(entry);
            fb.deltas.push(entry);
            last_us = next_us;
        }
        fb
    }

    /// Sequence numbers held (received or not), for tests of the memory bound.
    #[cfg(test)]
    pub(super) fn history_len(&self) -> usize {
        self.slots.len()
    }
}

/// `r` modulo 2^24 as a 24-bit signed value (the wire's reference time wraps).
fn wrap24(r: i64) -> i32 {
    let m = r.rem_euclid(1 << 24);
    (if m >= 1 << 23 { m - (1 << 24) } else { m }) as i32
}

/// `n / d` rounded half away from zero (`d` > 0), as libwebrtc rounds deltas.
fn round_div(n: i64, d: i64) -> i64 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        (n - d / 2) / d
    }
}

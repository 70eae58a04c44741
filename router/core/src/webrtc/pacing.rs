//! Pacing on a WebRTC leg: what the router sends a receiver with a
//! bandwidth estimate leaves at [`Pacer`]'s pace (2.5 × the estimate, or
//! × the rate the leg is offered when that is higher: the receiver's
//! lowest layers cannot go lower, and holding them back would only add
//! delay), so a keyframe or a layer switch does not reach the receiver's
//! bottleneck as one burst (which its queue would read as delay, or drop).
//!
//! - Video, retransmissions and probes go through one FIFO queue, already
//!   sealed and numbered (transport-wide sequence numbers are stamped in
//!   queue order, so they leave in order and the send history records each
//!   as it leaves). A packet goes at once when the queue is empty and the
//!   budget allows it.
//! - Probe packets never wait for the budget (a probe is meant to exceed
//!   the pace): they leave as soon as they reach the head.
//! - Audio does not wait at all: it leaves at once and is charged to the
//!   budget; numbered when nothing waits (the common case: the estimator
//!   counts it, as a browser's does), unnumbered behind waiting packets
//!   (it would otherwise take a number out of order).
//!   (Retransmissions left unnumbered the same way made Chromium's
//!   feedback, and so the estimate, collapse in the browser test: they
//!   stay numbered, in the queue, which the pace keeps short.)
//! - Nothing waits longer than [`MAX_QUEUE_DELAY`] (then it goes whatever
//!   the budget says: an estimate far below what the leg is given must not
//!   turn into seconds of delay), and the queue holds at most [`MAX_QUEUED`]
//!   packets (the oldest goes at once to make room). Nothing is dropped.
//! - A simulcast layer the receiver stops getting to move down takes its
//!   waiting packets with it ([`PacedQueue::withdraw`]: not sent, their
//!   numbers passed over, counted as `pacer_withdrawn`).
//! - A leg with no estimate (before its estimator settles, or without
//!   transport-cc and REMB) is not paced.
//! - After an overflow (the estimator's fast cut, `bwe::heavy_loss`), the
//!   queue ahead at the receiver's bottleneck is full: video waits
//!   ([`PacedQueue::hold`]) for as long as that queue takes to drain, so
//!   the lower layer's keyframe enters an empty queue instead of being
//!   dropped at the tail of a full one. [`MAX_QUEUE_DELAY`] counts from the
//!   hold's end.
//!
//! The leg asks the outbox to wake it when its head may go
//! ([`Outbox::wake_pacer`]); any send on the leg also lets due packets go first.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::token::{CallId, ParticipantId};

use crate::bwe::{ClusterId, Pacer, SendHistory};
use crate::outbox::Outbox;

/// The longest a packet waits in a leg's queue.
pub(crate) const MAX_QUEUE_DELAY: Duration = Duration::from_millis(100);
/// The most packets a leg's queue holds (about 700 kB of video).
pub(crate) const MAX_QUEUED: usize = 512;
/// A refused head is retried no sooner than this (the pace is kept in
/// bursts of this much sending at most, as libwebrtc's 5 ms process interval does).
const TICK: Duration = Duration::from_millis(2);

/// One packet waiting: sealed, numbered.
#[derive(Debug)]
struct Queued {
    contents: Bytes,
    /// Its size as the send history counts it (before sealing).
    size: usize,
    /// Its probe cluster (0: media).
    cluster: ClusterId,
    queued_at: Instant,
    /// Not to be sent after all ([`PacedQueue::withdraw`]).
    withdrawn: bool,
}

/// The offered rate is measured over windows this long.
const OFFERED_WINDOW: Duration = Duration::from_millis(500);

/// A leg's pace and the packets waiting for it.
#[derive(Debug, Default)]
pub(crate) struct PacedQueue {
    /// `None`: no estimate, no pacing.
    pacer: Option<Pacer>,
    /// The receiver's estimate (the pace follows the higher of it and the offered rate).
    estimate_bps: u64,
    /// What was offered to the leg (sent or queued, paced or not) in the
    /// current window, since when, and the last complete window's rate:
    /// the pace never falls below what the leg is given (its lowest layers
    /// cannot go lower; holding them back would only add delay).
    offered_bytes: u64,
    offered_since: Option<Instant>,
    offered_bps: u64,
    queue: VecDeque<Queued>,
    /// On the outbox's list of legs to wake.
    listed: bool,
    /// Video waits until then ([`Self::hold`]; kept once past: what waited
    /// through it has its deadline from there).
    hold_until: Option<Instant>,
}

impl PacedQueue {
    /// A new estimate for the leg (`None`: pacing stops; what waits goes at the next drain).
    pub fn set_estimate(&mut self, estimate_bps: Option<u64>) {
        self.estimate_bps = estimate_bps.unwrap_or(0);
        let pace = self.estimate_bps.max(self.offered_bps);
        match (estimate_bps, self.pacer.as_mut()) {
            (Some(_), Some(p)) => p.set_estimate(pace),
            (Some(_), None) => self.pacer = Some(Pacer::new(pace)),
            (None, _) => self.pacer = None,
        }
    }

    /// Counts `size` bytes offered at `now`; at a window's end the pace
    /// follows the offered rate if that is above the estimate.
    fn offered(&mut self, now: Instant, size: usize) {
        let since = *self.offered_since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= OFFERED_WINDOW {
            self.offered_bps = (self.offered_bytes as u128 * 8_000_000 / elapsed.as_micros().max(1)) as u64;
            self.offered_bytes = 0;
            self.offered_since = Some(now);
            if let Some(p) = self.pacer.as_mut() {
                p.set_estimate(self.estimate_bps.max(self.offered_bps));
            }
        }
        self.offered_bytes += size as u64;
    }

    /// Holds the leg's video, retransmissions and probes until `until` (the
    /// receiver's bottleneck drains); audio still goes. Only a paced leg holds.
    pub fn hold(&mut self, until: Instant) {
        if self.pacer.is_some() {
            self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        }
    }

    /// The hold's end if one is on at `now`.
    fn held(&self, now: Instant) -> Option<Instant> {
        self.hold_until.filter(|&h| now < h && self.pacer.is_some())
    }

    /// Whether the leg is paced now.
    #[inline]
    pub fn active(&self) -> bool {
        self.pacer.is_some()
    }

    /// Packets waiting (each already holds a transport-wide number: the
    /// next packet's is the send history's next plus this).
    #[inline]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Sends or queues one sealed packet of probe `cluster` (0: media)
    /// that carries the next transport-wide number (if `history`).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        out: &mut Outbox,
        leg: (CallId, ParticipantId),
        dest: SocketAddr,
        contents: Bytes,
        size: usize,
        cluster: ClusterId,
        mut history: Option<&mut SendHistory>,
    ) {
        let now = out.now();
        self.offered(now, size);
        self.drain(out, leg, dest, history.as_deref_mut());
        if self.queue.is_empty() && self.held(now).is_none() {
            let go = match self.pacer.as_mut() {
                None => true,
                Some(p) if cluster != 0 => {
                    p.charge(now, size);
                    true
                }
                Some(p) => p.try_send(now, size),
            };
            if go {
                return send_now(out, dest, contents, size, cluster, history);
            }
        } else if self.queue.len() >= MAX_QUEUED {
            let q = self.queue.pop_front().expect("full");
            if let Some(p) = self.pacer.as_mut() {
                p.charge(now, q.size);
            }
            out.stats.pacer_overdue += 1;
            send_now(out, dest, q.contents, q.size, q.cluster, history);
        }
        self.queue.push_back(Queued { contents, size, cluster, queued_at: now, withdrawn: false });
        out.stats.paced += 1;
        self.list(out, leg, now);
    }

    /// A packet that does not wait (audio): sent at once, charged to the
    /// budget; recorded in `history` when it carries the next
    /// transport-wide number (only with nothing waiting).
    pub fn send_unpaced(
        &mut self,
        out: &mut Outbox,
        dest: SocketAddr,
        contents: Bytes,
        size: usize,
        history: Option<&mut SendHistory>,
    ) {
        debug_assert!(history.is_none() || self.queue.is_empty(), "numbered past waiting packets");
        self.offered(out.now(), contents.len());
        if let Some(p) = self.pacer.as_mut() {
            p.charge(out.now(), contents.len());
        }
        send_now(out, dest, contents, size, 0, history);
    }

    /// Sends what may go now (called when the leg's wake-up is due, and
    /// before each send); asks for the next wake-up if packets still wait.
    pub fn drain(
        &mut self,
        out: &mut Outbox,
        leg: (CallId, ParticipantId),
        dest: SocketAddr,
        mut history: Option<&mut SendHistory>,
    ) {
        let now = out.now();
        let held = self.held(now);
        while let Some(head) = self.queue.front() {
            if head.withdrawn {
                self.queue.pop_front();
                out.stats.pacer_withdrawn += 1;
                if let Some(h) = history.as_deref_mut() {
                    h.on_withdrawn();
                }
                continue;
            }
            if held.is_some() {
                break;
            }
            let overdue = now.saturating_duration_since(self.deadline_base(head.queued_at)) >= MAX_QUEUE_DELAY;
            let go = match self.pacer.as_mut() {
                None => true,
                Some(p) if head.cluster != 0 || overdue => {
                    p.charge(now, head.size);
                    true
                }
                Some(p) => p.try_send(now, head.size),
            };
            if !go {
                break;
            }
            if overdue && head.cluster == 0 {
                out.stats.pacer_overdue += 1;
            }
            let q = self.queue.pop_front().expect("a head");
            send_now(out, dest, q.contents, q.size, q.cluster, history.as_deref_mut());
        }
        if !self.queue.is_empty() {
            self.list(out, leg, now);
        }
    }

    /// Withdraws the media packets of `ssrc` that wait (a simulcast group
    /// whose layer the receiver stopped getting to move down): they are
    /// not sent, their transport-wide numbers are passed over.
    pub fn withdraw(&mut self, ssrc: u32) {
        for q in self.queue.iter_mut().filter(|q| q.cluster == 0) {
            if q.contents.get(8..12).is_some_and(|b| b == ssrc.to_be_bytes()) {
                q.withdrawn = true;
            }
        }
    }

    /// Where a packet queued at `queued_at` starts its [`MAX_QUEUE_DELAY`]:
    /// then, or the end of the hold it waited through.
    fn deadline_base(&self, queued_at: Instant) -> Instant {
        self.hold_until.map_or(queued_at, |h| h.max(queued_at))
    }

    /// Marks the leg as taken off the outbox's list (its wake-up came).
    pub fn unlist(&mut self) {
        self.listed = false;
    }

    /// Asks the outbox to wake the leg when its head may go.
    fn list(&mut self, out: &mut Outbox, leg: (CallId, ParticipantId), now: Instant) {
        let Some(queued_at) = self.queue.front().map(|h| h.queued_at) else { return };
        let cluster = self.queue.front().map_or(0, |h| h.cluster);
        let latest = self.deadline_base(queued_at) + MAX_QUEUE_DELAY;
        let held = self.held(now);
        let at = match self.pacer.as_mut() {
            Some(p) if cluster == 0 => p.next_send(now).max(now + TICK).min(latest),
            _ => now,
        };
        let at = held.map_or(at, |h| at.max(h));
        out.wake_pacer(leg, at, !self.listed);
        self.listed = true;
    }
}

/// Sends one packet and records it in the send history.
fn send_now(
    out: &mut Outbox,
    dest: SocketAddr,
    contents: Bytes,
    size: usize,
    cluster: ClusterId,
    history: Option<&mut SendHistory>,
) {
    if let Some(h) = history {
        h.on_sent(out.now(), size, cluster);
    }
    out.transmit(dest, contents);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEG: (CallId, ParticipantId) = (CallId([7; 16]), ParticipantId(2));

    fn dest() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    /// A queue paced for 400 kbit/s (a 1 Mbit/s pace: 125 bytes per ms, 5 000 at most at once).
    fn paced() -> (Outbox, PacedQueue, SendHistory, Instant) {
        let t0 = Instant::now();
        let mut q = PacedQueue::default();
        q.set_estimate(Some(400_000));
        (Outbox::new(t0), q, SendHistory::new(), t0)
    }

    /// Each transmit's first byte (what the test numbered it).
    fn sent(out: &mut Outbox) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(o) = out.pop() {
            if let crate::Output::Transmit(t) = o {
                v.push(t.contents[0]);
            }
        }
        v
    }

    fn packet(n: u8, size: usize) -> Bytes {
        Bytes::from(vec![n; size])
    }

    #[test]
    fn a_burst_leaves_at_the_pace_in_order_and_audio_does_not_wait() {
        let (mut out, mut q, mut h, t0) = paced();
        for n in 0..12u8 {
            q.send(&mut out, LEG, dest(), packet(n, 1000), 1000, 0, Some(&mut h));
        }
        // 5 000 bytes of budget: five packets at once, the rest wait.
        assert_eq!(sent(&mut out), vec![0, 1, 2, 3, 4]);
        assert_eq!((q.len(), out.stats.paced), (7, 7));
        // Audio goes past them at once, unnumbered.
        q.send_unpaced(&mut out, dest(), packet(100, 100), 100, None);
        assert_eq!(sent(&mut out), vec![100]);
        // The budget was spent to the byte when the sixth came: a wake-up
        // one tick later (one byte of budget would take 8 µs).
        assert_eq!(out.pace_due(), Some(t0 + TICK));
        assert_eq!(out.take_paced_legs(), vec![LEG]);
        let mut got = Vec::new();
        let mut ms = 0;
        while q.len() > 0 {
            ms += 1;
            out.set_now(t0 + Duration::from_millis(ms));
            q.unlist();
            q.drain(&mut out, LEG, dest(), Some(&mut h));
            got.extend(sent(&mut out));
        }
        // In order; the last when the budget has covered 6 000 bytes and
        // the audio's 100 (at 125 bytes per ms: 49 ms).
        assert_eq!(got, (5..12).collect::<Vec<u8>>());
        assert_eq!(ms, 49);
        // The send history numbered each as it left: twelve sends, in order.
        assert_eq!(h.next_seq().0, 12);
        assert_eq!(out.stats.pacer_overdue, 0);
        // With nothing waiting, audio takes the next number as it goes.
        q.send_unpaced(&mut out, dest(), packet(101, 100), 100, Some(&mut h));
        assert_eq!((sent(&mut out), h.next_seq().0), (vec![101], 13));
    }

    #[test]
    fn probes_pass_the_pace_and_nothing_waits_past_its_deadline() {
        let (mut out, mut q, mut h, t0) = paced();
        q.send(&mut out, LEG, dest(), packet(0, 6000), 6000, 0, Some(&mut h));
        // The budget is spent; a probe packet still goes at once.
        q.send(&mut out, LEG, dest(), packet(1, 255), 255, 3, Some(&mut h));
        // Media waits; a probe packet behind it waits for it, then goes past the budget.
        q.send(&mut out, LEG, dest(), packet(2, 1000), 1000, 0, Some(&mut h));
        q.send(&mut out, LEG, dest(), packet(3, 255), 255, 4, Some(&mut h));
        assert_eq!(sent(&mut out), vec![0, 1]);
        // A pace of 1 kbit/s (the floor is one packet of budget): the
        // media packet goes when it has waited 100 ms, counted, and the probe with it.
        q.set_estimate(Some(400));
        out.set_now(t0 + MAX_QUEUE_DELAY - Duration::from_millis(1));
        q.drain(&mut out, LEG, dest(), Some(&mut h));
        assert_eq!(sent(&mut out), Vec::<u8>::new());
        out.set_now(t0 + MAX_QUEUE_DELAY);
        q.drain(&mut out, LEG, dest(), Some(&mut h));
        assert_eq!(sent(&mut out), vec![2, 3]);
        assert_eq!(out.stats.pacer_overdue, 1);
    }

    #[test]
    fn a_hold_keeps_video_back_until_the_bottleneck_drains_then_the_deadline_counts_from_its_end() {
        let (mut out, mut q, mut h, t0) = paced();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        q.hold(ms(300));
        // Video, however small and with the budget full, waits; audio does not.
        q.send(&mut out, LEG, dest(), packet(0, 500), 500, 0, Some(&mut h));
        q.send_unpaced(&mut out, dest(), packet(100, 100), 100, None);
        q.send(&mut out, LEG, dest(), packet(1, 500), 500, 0, Some(&mut h));
        assert_eq!(sent(&mut out), vec![100]);
        assert_eq!(out.pace_due(), Some(ms(300)), "woken at the hold's end");
        // Past MAX_QUEUE_DELAY but within the hold: still waiting.
        out.set_now(ms(299));
        q.drain(&mut out, LEG, dest(), Some(&mut h));
        assert_eq!(sent(&mut out), Vec::<u8>::new());
        // At its end: in order, at the pace, not counted overdue.
        out.set_now(ms(300));
        q.drain(&mut out, LEG, dest(), Some(&mut h));
        assert_eq!(sent(&mut out), vec![0, 1]);
        assert_eq!((out.stats.pacer_overdue, h.next_seq().0), (0, 2));
        // A leg with no pace holds nothing.
        let mut free = PacedQueue::default();
        free.hold(ms(1000));
        free.send(&mut out, LEG, dest(), packet(2, 500), 500, 0, Some(&mut h));
        assert_eq!(sent(&mut out), vec![2]);
    }

    #[test]
    fn the_pace_follows_what_the_leg_is_offered_when_that_is_above_the_estimate() {
        // 4 Mbit/s offered (1 000 bytes every 2 ms) to a leg estimated at 400 kbit/s.
        let (mut out, mut q, mut h, t0) = paced();
        let mut paced_at = Vec::new();
        for i in 0..1000u64 {
            out.set_now(t0 + Duration::from_millis(2 * i));
            q.send(&mut out, LEG, dest(), packet(0, 1000), 1000, 0, Some(&mut h));
            paced_at.push(out.stats.paced);
        }
        // The first window (500 ms) is paced at 1 Mbit/s (and what waits
        // goes after 100 ms); from then on at 2.5 × 4 Mbit/s: nothing waits.
        assert!(paced_at[249] > 100, "{}", paced_at[249]);
        assert_eq!(paced_at[999], paced_at[300], "nothing waited after the first window");
        let _ = sent(&mut out);
    }

    /// A 12-byte RTP header of `ssrc` with `n` in its first byte, and padding to `size`.
    fn rtp(n: u8, ssrc: u32, size: usize) -> Bytes {
        let mut v = vec![0u8; size];
        v[0] = n;
        v[8..12].copy_from_slice(&ssrc.to_be_bytes());
        Bytes::from(v)
    }

    #[test]
    fn withdrawn_packets_are_not_sent_and_their_numbers_passed_over() {
        let (mut out, mut q, mut h, t0) = paced();
        for n in 0..10u8 {
            let ssrc = if n % 2 == 0 { 0xA } else { 0xB };
            q.send(&mut out, LEG, dest(), rtp(n, ssrc, 1000), 1000, 0, Some(&mut h));
        }
        assert_eq!(sent(&mut out), vec![0, 1, 2, 3, 4]);
        q.withdraw(0xA);
        out.set_now(t0 + Duration::from_secs(1));
        q.drain(&mut out, LEG, dest(), Some(&mut h));
        // 5, 7 and 9 go; 6 and 8 do not, and still take their numbers.
        assert_eq!(sent(&mut out), vec![5, 7, 9]);
        assert_eq!((out.stats.pacer_withdrawn, h.next_seq().0), (2, 10));
    }

    #[test]
    fn a_full_queue_sends_its_oldest_and_no_estimate_sends_everything() {
        let (mut out, mut q, mut h, _) = paced();
        for n in 0..(MAX_QUEUED + 6) {
            q.send(&mut out, LEG, dest(), packet(n as u8, 1000), 1000, 0, Some(&mut h));
        }
        // Five went on the budget; the queue filled; one more made the oldest go.
        assert_eq!(sent(&mut out), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!((q.len(), out.stats.pacer_overdue), (MAX_QUEUED, 1));
        // The estimate is gone: the next send lets everything go first, in order.
        q.set_estimate(None);
        assert!(!q.active());
        q.send(&mut out, LEG, dest(), packet(0xEE, 1000), 1000, 0, Some(&mut h));
        let all = sent(&mut out);
        assert_eq!(all.len(), MAX_QUEUED + 1);
        assert_eq!((all[0], all[MAX_QUEUED]), (6, 0xEE));
        assert_eq!(h.next_seq().0 as usize, MAX_QUEUED + 7);
    }
}

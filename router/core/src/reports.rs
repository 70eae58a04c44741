//! The router's own RTCP reports: it terminates RTCP as an SFU does
//! instead of passing publishers' and receivers' reports through.
//!
//! - Each producer keeps its receive statistics ([`ReceiveStats`], RFC 3550
//!   §A.3 and §A.8: loss per interval and cumulative, interarrival jitter in
//!   the stream's clock rate) and the publisher's latest SR (its NTP/RTP
//!   pair and when it arrived). The hot path adds a few integer operations
//!   per packet and allocates nothing.
//! - Each leg keeps what the router sent it per stream ([`LegReports`]:
//!   packets and payload octets, the last SRs it was sent) and its round
//!   trip time.
//! - Every [`REPORT_INTERVAL`] per leg (on a [`REPORT_TICK`] grid, driven by
//!   the router's `Output::Timeout`) the router sends each leg one compound:
//!   an RR from [`ROUTER_SSRC`] with a block per stream the leg publishes
//!   (LSR/DLSR from its publisher's last SR), then an SR per stream it
//!   forwards to the leg, under that stream's SSRC.
//!
//! The SRs carry the publisher's clock: the NTP/RTP pair of its latest SR,
//! both moved on by the time since it arrived (so audio and video still map
//! to the publisher's one wallclock, and lip-sync holds). The router rewrites
//! timestamps only for simulcast receivers (`simulcast`: one stream under
//! the group's SSRC, whichever layer it gets): their SR for the group is the
//! pair of the layer they get, its RTP time moved by the same offset as its
//! packets'. Packet and octet counts are what went to that receiver.
//! A stream whose publisher has sent no SR yet gets none from the router.
//! Only streams heard from since the last report are reported on, and
//! only streams the leg was sent something of since the last SR get an SR
//! (RFC 3550 §6.4).
//!
//! RTT (RFC 3550 §6.4.1): a receiver's block about a stream names the last
//! SR it got (LSR, the middle 32 bits of its NTP time) and how long it held
//! it (DLSR); the router remembers when it sent each of its last two SRs per
//! stream and leg, so RTT = now − sent − DLSR.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::rtcp::{DlrrItem, ExtendedReport, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};
use corecast_proto::{MediaKind, MediaTime, Ssrc};

use crate::call::Call;
use crate::webrtc::Codec;
use crate::{Router, ROUTER_SSRC};

/// How often each leg gets the router's reports.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The grid the report timer runs on: at most this many wake-ups per
/// second, whatever the number of legs.
pub(crate) const REPORT_TICK: Duration = Duration::from_millis(100);
/// SRs per compound at most (28 bytes each: a compound stays under 1 000 bytes).
const SRS_PER_COMPOUND: usize = 32;
/// Report blocks per RR (the count field is 5 bits).
const BLOCKS_PER_RR: usize = 31;

/// A publisher's sender report, as the router keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PublisherSr {
    /// NTP time (64-bit fixed point) and the RTP time it matches.
    pub ntp: u64,
    pub rtp: u32,
    /// When it arrived.
    pub at: Instant,
}

impl PublisherSr {
    pub fn of(sr: &SenderReport, at: Instant) -> PublisherSr {
        PublisherSr { ntp: sr.ntp_time, rtp: sr.rtp_time, at }
    }

    /// The publisher's NTP/RTP pair moved on to `now` (`clock_rate` 0: unknown, not moved).
    pub fn at(&self, now: Instant, clock_rate: u32) -> (u64, u32) {
        if clock_rate == 0 {
            return (self.ntp, self.rtp);
        }
        let d = now.saturating_duration_since(self.at);
        let ticks = (d.as_nanos() * u128::from(clock_rate) + 500_000_000) / 1_000_000_000;
        (ntp_add(self.ntp, d), self.rtp.wrapping_add(ticks as u32))
    }
}

/// `ntp` (64-bit NTP fixed point) plus `d`.
pub(crate) fn ntp_add(ntp: u64, d: Duration) -> u64 {
    ntp.wrapping_add(((d.as_nanos() << 32) / 1_000_000_000) as u64)
}

/// The middle 32 bits of an NTP time (the "compact" form LSR uses).
pub(crate) fn compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in units of 1/65536 s (DLSR), saturating.
pub(crate) fn to_compact(d: Duration) -> u32 {
    (d.as_nanos() * 65_536 / 1_000_000_000).min(u128::from(u32::MAX)) as u32
}

/// A duration from units of 1/65536 s.
pub(crate) fn from_compact(x: u32) -> Duration {
    Duration::from_nanos(u64::from(x) * 1_000_000_000 / 65_536)
}

/// The RTP clock rate of a stream: from its codec, else from its static
/// payload type (RFC 3551), else 90 kHz for video and 48 kHz for audio.
/// 0 for RTX (its timestamps are the original stream's: no jitter kept).
pub(crate) fn clock_rate(codec: Option<Codec>, pt: u8, kind: MediaKind) -> u32 {
    match codec {
        Some(Codec::Opus) => 48_000,
        Some(Codec::Av1 | Codec::Vp8 | Codec::H264) => 90_000,
        Some(Codec::Rtx) => 0,
        None => match pt {
            0 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 13 | 15 | 18 => 8_000,
            6 => 16_000,
            10 | 11 => 44_100,
            16 => 11_025,
            17 => 22_050,
            14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => 90_000,
            _ if kind == MediaKind::Audio => 48_000,
            _ => 90_000,
        },
    }
}

/// One producer's receive statistics (the rest, the extended sequence
/// numbers and the packet count, are the producer's own).
#[derive(Debug, Default)]
pub(crate) struct ReceiveStats {
    /// Set at the first packet (0: unknown, no jitter).
    pub clock_rate: u32,
    /// The previous in-order packet's transit time (arrival − timestamp, in clock units).
    transit: Option<u32>,
    /// Interarrival jitter × 16 (RFC 3550 §A.8).
    jitter_x16: u64,
    /// Expected and received at the last report (§A.3).
    expected_prior: u64,
    received_prior: u64,
    /// The publisher's latest SR.
    pub last_sr: Option<PublisherSr>,
}

impl ReceiveStats {
    /// An in-order packet of timestamp `ts` arrived at `arrival_us` (µs since any fixed instant).
    #[inline]
    pub fn on_packet(&mut self, arrival_us: u64, ts: MediaTime) {
        if self.clock_rate == 0 {
            return;
        }
        // u64 holds µs × 90 000 for six years of uptime; the u32 wraps as timestamps do.
        let arrival = (arrival_us.wrapping_mul(u64::from(self.clock_rate)) / 1_000_000) as u32;
        let transit = arrival.wrapping_sub(ts.0);
        if let Some(prev) = self.transit.replace(transit) {
            //= https://www.rfc-editor.org/rfc/rfc3550#appendix-A.8
            //# s->jitter += d - ((s->jitter + 8) >> 4);
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
    }

    /// Packets arrived since the last report (of `received` in all): the
    /// stream is reported on (RFC 3550 §6.4: sources heard from since).
    pub fn heard_since_report(&self, received: u64) -> bool {
        received != self.received_prior
    }

    /// Interarrival jitter, in clock units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_x16 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// The report block about `ssrc`, whose first and highest extended
    /// sequence numbers are `first` and `highest` (as `SeqExtender` counts:
    /// from 2^16) and of which `received` packets arrived; starts the next
    /// loss interval.
    pub fn block(&mut self, ssrc: Ssrc, first: u64, highest: u64, received: u64, now: Instant) -> ReportBlock {
        //= https://www.rfc-editor.org/rfc/rfc3550#appendix-A.3
        let expected = highest + 1 - first;
        let lost = expected as i64 - received as i64;
        let expected_interval = expected - self.expected_prior.min(expected);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some(sr) => (compact(sr.ntp), to_compact(now.saturating_duration_since(sr.at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            // SeqExtender starts at cycle 1; RFC 3550 counts cycles from 0.
            ext_highest_seq: highest.wrapping_sub(1 << 16) as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// What the router sent one leg of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SentStream {
    pub ssrc: Ssrc,
    /// RTP packets and payload octets (wrapping, as the SR fields do).
    pub packets: u32,
    pub octets: u32,
    /// The last two SRs sent about it: LSR (compact NTP) and when.
    srs: [(u32, Option<Instant>); 2],
    /// `packets` at the last SR: none is sent about a stream the leg got
    /// nothing of since (paused for it, or ended).
    packets_at_sr: u32,
}

/// One leg's report state: what it was sent, its RTT, its next report,
/// and the SRs it sent before it claimed their SSRC.
#[derive(Debug, Default)]
pub(crate) struct LegReports {
    /// The SSRCs of `sent`, apart: the hot path scans 4 bytes per stream.
    sent_ssrcs: Vec<Ssrc>,
    sent: Vec<SentStream>,
    /// Where the last packet's stream was in `sent` (a frame's packets come together).
    last: usize,
    /// Latest round trip measured from its report blocks, or from its
    /// DLRRs (a publish-only leg: it is sent no SR to report on).
    pub rtt: Option<Duration>,
    /// The last two RRTRs sent to it (RFC 3611 §4.4): compact NTP and when,
    /// and the time their NTP timestamps count from (its first RRTR).
    rrtrs: [(u32, Option<Instant>); 2],
    rrtr_epoch: Option<Instant>,
    next: Option<Instant>,
    /// SRs about SSRCs it had not claimed yet (a publisher that claims by
    /// sending sends its first SR just before its first packet).
    pending: Vec<(SenderReport, Instant)>,
}

impl LegReports {
    /// One RTP packet of `ssrc` with `payload` octets went to this leg.
    #[inline]
    pub fn on_sent(&mut self, ssrc: Ssrc, payload: usize) {
        let i = if self.sent_ssrcs.get(self.last) == Some(&ssrc) {
            self.last
        } else if let Some(i) = self.sent_ssrcs.iter().position(|&s| s == ssrc) {
            i
        } else {
            self.sent_ssrcs.push(ssrc);
            self.sent.push(SentStream { ssrc, packets: 0, octets: 0, srs: [(0, None); 2], packets_at_sr: 0 });
            self.sent.len() - 1
        };
        self.last = i;
        let s = &mut self.sent[i];
        s.packets = s.packets.wrapping_add(1);
        s.octets = s.octets.wrapping_add(payload as u32);
    }

    /// Keeps an SR about an SSRC not claimed yet (the latest per SSRC, `max` SSRCs).
    pub fn keep_pending(&mut self, sr: SenderReport, now: Instant, max: usize) {
        self.pending.retain(|(p, _)| p.ssrc != sr.ssrc);
        if self.pending.len() >= max.max(1) {
            self.pending.remove(0);
        }
        self.pending.push((SenderReport { reports: Vec::new(), ..sr }, now));
    }

    /// The SR kept about `ssrc`, now claimed.
    pub fn take_pending(&mut self, ssrc: Ssrc) -> Option<(SenderReport, Instant)> {
        let i = self.pending.iter().position(|(p, _)| p.ssrc == ssrc)?;
        Some(self.pending.swap_remove(i))
    }

    /// Takes the leg's report blocks: those about SRs the router sent it give the RTT.
    pub fn on_blocks(&mut self, blocks: &[ReportBlock], now: Instant) {
        for b in blocks.iter().filter(|b| b.last_sr != 0) {
            let Some(s) = self.sent.iter().find(|s| s.ssrc == b.ssrc) else { continue };
            let Some(sent_at) = s.srs.iter().find(|(lsr, at)| *lsr == b.last_sr && at.is_some()).and_then(|x| x.1)
            else {
                continue;
            };
            //= https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1
            //# the sender can compute the round-trip propagation delay as A - LSR - DLSR
            let held = from_compact(b.delay_since_last_sr);
            self.rtt = Some(now.saturating_duration_since(sent_at).saturating_sub(held));
        }
    }
}

impl LegReports {
    /// The NTP timestamp of an RRTR sent now (counted from the leg's first,
    /// plus a second so that its compact form is never 0, "none"), remembered
    /// for the DLRR that echoes it.
    fn rrtr(&mut self, now: Instant) -> u64 {
        let epoch = *self.rrtr_epoch.get_or_insert(now);
        let ntp = ntp_add(1 << 32, now.saturating_duration_since(epoch));
        self.rrtrs = [(compact(ntp), Some(now)), self.rrtrs[0]];
        ntp
    }

    /// Takes the leg's DLRR sub-blocks: one about an RRTR the router sent
    /// (sender [`ROUTER_SSRC`]) gives the RTT.
    pub fn on_dlrr(&mut self, items: &[DlrrItem], now: Instant) {
        for d in items.iter().filter(|d| d.ssrc == ROUTER_SSRC && d.last_rr != 0) {
            let Some(sent_at) = self.rrtrs.iter().find(|(lrr, at)| *lrr == d.last_rr && at.is_some()).and_then(|x| x.1)
            else {
                continue;
            };
            //= https://www.rfc-editor.org/rfc/rfc3611#section-4.5
            //# the sender can compute the round-trip propagation delay as A - LRR - DLRR
            let held = from_compact(d.delay_since_last_rr);
            self.rtt = Some(now.saturating_duration_since(sent_at).saturating_sub(held));
        }
    }
}

impl Router {
    /// Sends the reports that are due and sets the next tick.
    pub(crate) fn send_reports(&mut self, now: Instant) {
        for call in self.calls.values_mut() {
            for i in 0..call.participants.len() {
                let next = *call.participants[i].reports.next.get_or_insert(now + REPORT_INTERVAL);
                if next > now {
                    continue;
                }
                let mut next = next + REPORT_INTERVAL;
                if next <= now {
                    next = now + REPORT_INTERVAL;
                }
                call.participants[i].reports.next = Some(next);
                for b in leg_reports(call, i, now) {
                    self.out.stats.reports_sent += 1;
                    call.participants[i].transport.send(&mut self.out, b);
                }
            }
        }
        let mut next = self.next_reports.map_or(now, |t| t) + REPORT_TICK;
        if next <= now {
            next = now + REPORT_TICK;
        }
        self.next_reports = Some(next);
    }
}

/// The compounds due to participant `i` of `call`: the RR about what it
/// publishes, then the SRs about what it is sent.
fn leg_reports(call: &mut Call, i: usize, now: Instant) -> Vec<Bytes> {
    let mut pkts = Vec::new();
    let p = &mut call.participants[i];
    let mut blocks = Vec::new();
    for s in p.producers.iter_mut().filter(|s| s.recv.heard_since_report(s.packets)) {
        let (Some(first), Some(highest)) = (s.first_ext_seq, s.seq.highest()) else { continue };
        blocks.push(s.recv.block(s.ssrc, first, highest, s.packets, now));
    }
    for chunk in blocks.chunks(BLOCKS_PER_RR) {
        pkts.push(RtcpPacket::ReceiverReport(ReceiverReport { ssrc: ROUTER_SSRC, reports: chunk.to_vec() }));
    }
    // A publisher gets an RRTR with its RR: the DLRR it answers gives the
    // round trip even when it is sent nothing (a WHIP leg).
    if !blocks.is_empty() {
        let ntp = p.reports.rrtr(now);
        let xr = ExtendedReport { ssrc: ROUTER_SSRC, rrtr: Some(ntp), dlrr: Vec::new() };
        pkts.insert(1, RtcpPacket::ExtendedReport(xr));
    }
    let mut sent = std::mem::take(&mut call.participants[i].reports.sent);
    // Streams whose producer is gone are forgotten.
    sent.retain(|s| call.ssrc_owner.contains_key(&s.ssrc));
    let leg = &mut call.participants[i].reports;
    leg.sent_ssrcs.clear();
    leg.sent_ssrcs.extend(sent.iter().map(|s| s.ssrc));
    for s in sent.iter_mut().filter(|s| s.packets != s.packets_at_sr) {
        // A simulcast group: the clock of the layer the leg gets, moved as its timestamps are.
        let consumer = call.participants[i].consumers.get(s.ssrc);
        let (source, ts_offset) = consumer.and_then(|c| Some((c.layer_on?, c.ts_offset))).unwrap_or((s.ssrc, 0));
        let Some(prod) = call.producers().find(|p| p.ssrc == source) else { continue };
        let Some(sr) = prod.recv.last_sr else { continue };
        let (ntp_time, rtp_time) = sr.at(now, prod.recv.clock_rate);
        let rtp_time = rtp_time.wrapping_add(ts_offset);
        s.srs = [(compact(ntp_time), Some(now)), s.srs[0]];
        s.packets_at_sr = s.packets;
        pkts.push(RtcpPacket::SenderReport(SenderReport {
            ssrc: s.ssrc,
            ntp_time,
            rtp_time,
            packet_count: s.packets,
            octet_count: s.octets,
            reports: Vec::new(),
        }));
    }
    call.participants[i].reports.sent = sent;
    pkts.chunks(SRS_PER_COMPOUND)
        .filter_map(|c| corecast_proto::rtcp::write_compound(c).ok())
        .map(Bytes::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ntp_round_trips_within_its_resolution() {
        let d = Duration::from_millis(1234);
        let back = from_compact(to_compact(d));
        assert!(d - back < Duration::from_micros(16), "{back:?}");
        let ntp = 0x0001_2345_8000_0000u64; // x.5 s
        assert_eq!(compact(ntp_add(ntp, Duration::from_millis(500))), 0x2346_0000);
    }

    #[test]
    fn sent_counts_per_stream_survive_forgetting_one() {
        let mut l = LegReports::default();
        for (ssrc, n) in [(1, 100), (2, 10), (1, 50), (3, 1)] {
            l.on_sent(Ssrc(ssrc), n);
        }
        let counts = |l: &LegReports| l.sent.iter().map(|s| (s.ssrc.0, s.packets, s.octets)).collect::<Vec<_>>();
        assert_eq!(counts(&l), [(1, 2, 150), (2, 1, 10), (3, 1, 1)]);
        assert_eq!(l.sent_ssrcs, [Ssrc(1), Ssrc(2), Ssrc(3)]);
    }

    #[test]
    fn loss_per_interval_and_cumulative() {
        let t = Instant::now();
        let mut r = ReceiveStats::default();
        let base = 1 << 16;
        // 100 expected, 90 received: 10 lost, 25/256.
        let b = r.block(Ssrc(1), base + 10, base + 109, 90, t);
        assert_eq!((b.fraction_lost, b.cumulative_lost, b.ext_highest_seq), (25, 10, 109));
        // The next 100 all arrived: the interval lost nothing, the total stays.
        let b = r.block(Ssrc(1), base + 10, base + 209, 190, t);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
        // Duplicates (more received than expected): no loss, negative cumulative.
        let b = r.block(Ssrc(1), base + 10, base + 219, 215, t);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, -5));
    }

    #[test]
    fn jitter_of_alternating_transit_converges_to_the_swing() {
        let mut r = ReceiveStats { clock_rate: 48_000, ..Default::default() };
        // 20 ms frames (960 ticks); every other one 4 ms late: |D| = 4 ms = 192 ticks.
        for k in 0..2000u64 {
            r.on_packet(k * 20_000 + (k % 2) * 4_000, MediaTime(5 + 960 * k as u32));
        }
        let j = r.jitter();
        assert!((185..=192).contains(&j), "{j}");
    }

    #[test]
    fn static_payload_types_and_codecs_have_their_clock_rates() {
        assert_eq!(clock_rate(None, 0, MediaKind::Audio), 8_000);
        assert_eq!(clock_rate(None, 96, MediaKind::Video), 90_000);
        assert_eq!(clock_rate(Some(Codec::Opus), 111, MediaKind::Audio), 48_000);
        assert_eq!(clock_rate(Some(Codec::Rtx), 97, MediaKind::Video), 0);
    }
}

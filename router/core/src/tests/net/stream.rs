//! The simulated clients' streams: RTP whose timestamps follow the send
//! times on the stream's clock, and the SRs that map them to the clients'
//! common wallclock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::rtcp;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::{MediaKind, Pt, SeqNo, Ssrc};

/// A stream a client sends: `size`-byte RTP packets every `interval`.
#[derive(Debug, Clone)]
pub struct Stream {
    pub ssrc: Ssrc,
    pub kind: MediaKind,
    pub interval: Duration,
    pub size: usize,
    /// RFC 6464 level (dBov) carried in extension id 1, for audio.
    pub level: Option<u8>,
    pub(super) seq: u16,
    pub(super) next: Option<Instant>,
    pub sent: u64,
    /// Stops sending at this instant.
    pub until: Option<Instant>,
    /// The last packets sent, to answer NACKs with.
    pub(super) history: std::collections::VecDeque<(u16, Bytes)>,
    /// RTP clock: 48 kHz audio, 90 kHz video; the timestamp of the first
    /// packet and when it was sent (timestamps follow the send times exactly).
    pub clock_rate: u32,
    pub first_ts: u32,
    started: Option<Instant>,
    /// Sends an SR about the stream this often (`None`: never); the first
    /// one just before the first packet.
    pub sr_every: Option<Duration>,
    pub(super) next_sr: Option<Instant>,
    /// The SRs sent: when, and the SR.
    pub srs: Vec<(Instant, rtcp::SenderReport)>,
    /// VP8 (a simulcast layer): each payload starts with a VP8 payload
    /// descriptor (a keyframe at the first packet and after each keyframe
    /// request, else an interframe), then the SSRC's low byte.
    pub vp8: bool,
    /// A keyframe request came: the next packet is a keyframe.
    pub keyframe_due: bool,
    /// Keyframes sent.
    pub keyframes: u64,
}

/// The NTP time of the clients' common wallclock at the simulation's start.
pub const NTP_START: u64 = 0xE000_0000_0000_0000;

/// `NTP_START` moved on by `d`.
fn ntp_after(d: Duration) -> u64 {
    NTP_START + ((d.as_nanos() << 32) / 1_000_000_000) as u64
}

impl Stream {
    pub fn audio(ssrc: u32, level: u8) -> Stream {
        Stream::new(ssrc, MediaKind::Audio, Duration::from_millis(20), 100, Some(level))
    }
    /// Video at `pps` packets/s of `size` bytes.
    pub fn video(ssrc: u32, pps: u32, size: usize) -> Stream {
        Stream::new(ssrc, MediaKind::Video, Duration::from_secs(1) / pps, size, None)
    }
    fn new(ssrc: u32, kind: MediaKind, interval: Duration, size: usize, level: Option<u8>) -> Stream {
        Stream {
            ssrc: Ssrc(ssrc),
            kind,
            interval,
            size,
            level,
            seq: 1000,
            next: None,
            sent: 0,
            until: None,
            history: Default::default(),
            clock_rate: if kind == MediaKind::Audio { 48_000 } else { 90_000 },
            first_ts: 0x1234_5678 ^ ssrc,
            started: None,
            sr_every: None,
            next_sr: None,
            srs: Vec::new(),
            vp8: false,
            keyframe_due: true,
            keyframes: 0,
        }
    }

    /// VP8 video (a simulcast layer, say) at `pps` packets/s of `size` bytes (see [`Stream::vp8`]).
    pub fn vp8_video(ssrc: u32, pps: u32, size: usize) -> Stream {
        Stream { vp8: true, ..Stream::video(ssrc, pps, size) }
    }

    /// The RTP time of instant `t` on this stream's clock.
    pub fn rtp_at(&self, t: Instant) -> Option<u32> {
        let d = t.checked_duration_since(self.started?)?;
        Some(self.first_ts.wrapping_add((d.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32))
    }

    /// Sends SRs every `every`, the first one just before the first packet.
    pub fn with_srs(mut self, every: Duration) -> Stream {
        self.sr_every = Some(every);
        self
    }

    pub(super) fn packet(&mut self, now: Instant) -> Bytes {
        self.started.get_or_insert(now);
        let timestamp = corecast_proto::MediaTime(self.rtp_at(now).unwrap_or(self.first_ts));
        self.seq = self.seq.wrapping_add(1);
        self.sent += 1;
        let pt = if self.kind == MediaKind::Audio { 111 } else { 96 };
        let extensions = self.level.map(|l| vec![(1u8, vec![0x80 | l])]).unwrap_or_default();
        let mut payload = vec![0; self.size.saturating_sub(20)];
        if self.vp8 && payload.len() >= 3 {
            let key = std::mem::take(&mut self.keyframe_due);
            self.keyframes += u64::from(key);
            payload[..3].copy_from_slice(&[0x10, if key { 0x00 } else { 0x01 }, self.ssrc.0 as u8]);
        }
        let pkt = RtpPacket {
            pt: Pt(pt),
            seq: SeqNo(self.seq),
            ssrc: self.ssrc,
            payload,
            extensions,
            timestamp,
            ..Default::default()
        };
        let b = Bytes::from(pkt.to_vec().expect("a valid packet"));
        if self.history.len() == 1000 {
            self.history.pop_front();
        }
        self.history.push_back((self.seq, b.clone()));
        b
    }

    /// An SR about this stream at `now` (before its first packet: as if it started now).
    pub(super) fn sender_report(&self, now: Instant, t0: Instant) -> rtcp::SenderReport {
        rtcp::SenderReport {
            ssrc: self.ssrc,
            ntp_time: ntp_after(now - t0),
            rtp_time: self.rtp_at(now).unwrap_or(self.first_ts),
            packet_count: self.sent as u32,
            octet_count: (self.sent * self.size.saturating_sub(20) as u64) as u32,
            reports: Vec::new(),
        }
    }

    /// Starts the sequence numbers at `seq` (the next packet has `seq + 1`).
    pub fn starting_at(mut self, seq: u16) -> Stream {
        self.seq = seq;
        self
    }
}

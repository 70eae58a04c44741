//! Producers: the streams (one SSRC each) that participants send.

use std::sync::Arc;

use corecast_proto::ids::SeqExtender;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::token::{ParticipantId, Role};
use corecast_proto::{MediaKind, MediaTime, SeqNo, Ssrc};

use crate::framerate::{Frame, TemporalLayers};
use crate::keyframe::KeyframeThrottle;
use crate::nack_generator::NackGenerator;
use crate::reports::ReceiveStats;
use crate::retransmit::RetransmitBuffer;
use crate::simulcast::Layer;
use crate::svc::SvcState;
use crate::webrtc::{Codec, SenderFormat};
use corecast_proto::frame_size::FrameSize;

/// A stream a participant sends (one SSRC), on this worker or, for a
/// producer announced over a pipe, on another worker's share of the call.
#[derive(Debug)]
pub(crate) struct Producer {
    pub ssrc: Ssrc,
    /// Who sends it and in which role (a mixer's composite goes to SD receivers only).
    pub participant: ParticipantId,
    pub role: Role,
    /// Declared, or resolved from the payload type of the first packet.
    pub kind: MediaKind,
    /// Sequence number of the previous packet (what receivers last got).
    pub prev_seq: Option<SeqNo>,
    /// Bytes since the last rate update.
    pub window_bytes: u64,
    /// Measured bitrate over the last sweep interval, bits/s.
    pub bitrate_bps: u64,
    /// Packets since the last rate update, and the packet rate over the
    /// last sweep interval (packets/s).
    pub window_packets: u64,
    pub packet_rate: u64,
    pub packets: u64,
    pub bytes: u64,
    pub seq: SeqExtender,
    pub first_ext_seq: Option<u64>,
    /// Keyframe requests forwarded to this producer.
    pub keyframe: KeyframeThrottle,
    /// Audio only: loudness (127 − dBov, RFC 6464) summed over the packets
    /// of the current ranking window, and their count.
    pub level_sum: u32,
    pub level_packets: u32,
    /// Smoothed loudness, 0 (silence) ..= 127 (0 dBov).
    pub loudness: u8,
    /// An audio level was seen on this stream: it takes part in the ranking.
    pub level_seen: bool,
    /// Forwarded to SD receivers: one of the call's loudest audio streams,
    /// or a stream that carries no level (it cannot be ranked, so it is kept).
    pub sd_audible: bool,
    /// Video in a codec with temporal layers (VP8, AV1): which frame is in
    /// which layer, and the layers' frame rates (boxed: audio and other
    /// codecs never need it).
    pub temporal: Option<Box<TemporalLayers>>,
    /// Video (not RTX): its last packets, for NACKs answered by the router
    /// and to drop duplicates (boxed, made at the first packet).
    pub retransmit: Option<Box<RetransmitBuffer>>,
    /// A native publisher's video: the gaps the router NACKs itself.
    pub upstream_nack: Option<Box<NackGenerator>>,
    /// Video: its publisher's place among the call's speakers (0: the
    /// dominant speaker; [`NOT_ON_STAGE`] until ranked), for Last-N
    /// receivers (`speakers::stage`).
    pub stage: u8,
    /// Opus: the previous packet (RED to lossy WebRTC legs, see `forward`).
    pub red_prev: Option<Box<RedPrev>>,
    /// Jitter, loss per report interval and the publisher's latest SR (see `reports`).
    pub recv: ReceiveStats,
    /// A simulcast layer: its group and place in it (see `simulcast`).
    pub layer: Option<Layer>,
    /// The codec of its first packet (as its sender's format reads the payload type).
    pub codec: Option<Codec>,
    /// Video with Dependency Descriptors: the latest template structure
    /// (sent with keyframes), which gives each frame's layers, and each
    /// spatial layer's bitrate (see `svc`).
    pub svc: Option<Box<SvcState>>,
    /// A simulcast layer's frame size, read from its latest keyframe (VP8
    /// and AV1 keyframes and H.264 SPSs carry one): what a receiver's
    /// `max_height` is held against.
    pub frame_size: Option<FrameSize>,
    /// How its sender's packets read (payload types → codecs, extension
    /// ids): its participant's, shared; over a pipe, the one announced with
    /// it (`None`: announced without one, read as a native client's).
    pub format: Option<Arc<SenderFormat>>,
}

/// An audio stream's previous packet, kept to send as RED's redundant block.
#[derive(Debug, Default)]
pub(crate) struct RedPrev {
    pub seq: SeqNo,
    pub ts: MediaTime,
    /// Its payload (the buffer is kept and reused).
    pub payload: Vec<u8>,
}

/// [`Producer::stage`] of a stream not ranked (yet).
pub(crate) const NOT_ON_STAGE: u8 = u8::MAX;

impl Producer {
    pub fn new(ssrc: Ssrc, kind: MediaKind, participant: ParticipantId, role: Role) -> Producer {
        Producer {
            ssrc,
            participant,
            role,
            kind,
            prev_seq: None,
            window_bytes: 0,
            bitrate_bps: 0,
            window_packets: 0,
            packet_rate: 0,
            packets: 0,
            bytes: 0,
            seq: SeqExtender::default(),
            first_ext_seq: None,
            keyframe: KeyframeThrottle::default(),
            level_sum: 0,
            level_packets: 0,
            loudness: 0,
            level_seen: false,
            sd_audible: true,
            temporal: None,
            retransmit: None,
            upstream_nack: None,
            stage: NOT_ON_STAGE,
            red_prev: None,
            recv: ReceiveStats::default(),
            layer: None,
            svc: None,
            codec: None,
            frame_size: None,
            format: None,
        }
    }

    /// Resolves an undeclared kind from the first packet's payload type:
    /// the static audio types 0..=23 and the configured dynamic ones are audio.
    pub fn resolve_kind(&mut self, pt: u8, audio_payload_types: &[u8]) {
        if self.kind == MediaKind::Unknown {
            self.kind = if pt <= 23 || audio_payload_types.contains(&pt) { MediaKind::Audio } else { MediaKind::Video };
        }
    }

    /// Records one packet's RFC 6464 level (`dbov`: 0 loudest ..= 127 silence).
    pub fn on_audio_level(&mut self, dbov: u8) {
        self.level_seen = true;
        self.level_sum = self.level_sum.saturating_add(127 - u32::from(dbov.min(127)));
        self.level_packets = self.level_packets.saturating_add(1);
    }

    /// Ends a ranking window. A level meter's attack and release: the
    /// smoothed loudness rises at once to a louder window's mean (a new
    /// speaker is heard after one window) and falls halfway to a quieter one
    /// (a pause between words does not lose the slot). A window without
    /// packets, as in DTX, counts as silence.
    pub fn end_level_window(&mut self) {
        let mean = self.level_sum.checked_div(self.level_packets).unwrap_or(0).min(127);
        let old = u32::from(self.loudness);
        self.loudness = if mean >= old { mean } else { (old + mean).div_ceil(2) } as u8;
        self.level_sum = 0;
        self.level_packets = 0;
    }

    /// One packet of `len` bytes arrived at `arrival_us` (µs since the router's epoch).
    #[inline]
    pub fn on_rtp(&mut self, h: &RtpHeader, len: usize, arrival_us: u64) {
        self.packets += 1;
        self.bytes += len as u64;
        self.window_bytes += len as u64;
        self.window_packets += 1;
        let before = self.seq.highest();
        let e = self.seq.extend(h.seq);
        if self.first_ext_seq.is_none() {
            self.first_ext_seq = Some(e);
        }
        // Jitter from in-order packets only (a late one or a resend says nothing of the path).
        if before.is_none_or(|b| e > b) {
            self.recv.on_packet(arrival_us, h.timestamp);
        }
    }

    /// Takes one video packet of timestamp `ts` whose payload says temporal
    /// layer `tid` (`None`: it cannot tell): its frame, as receivers with a
    /// frame-rate cap need it.
    #[inline]
    pub fn on_layered(&mut self, ts: MediaTime, tid: Option<u8>) -> Frame {
        self.temporal.get_or_insert_default().on_packet(ts, tid)
    }

    /// Ends a rate window of `secs` seconds.
    pub fn end_rate_window(&mut self, secs: f64) {
        self.bitrate_bps = (self.window_bytes as f64 * 8.0 / secs) as u64;
        self.packet_rate = (self.window_packets as f64 / secs).round() as u64;
        self.window_bytes = 0;
        self.window_packets = 0;
        if let Some(svc) = self.svc.as_mut() {
            svc.end_window(secs);
        }
    }

    /// Packets expected minus received (RFC 3550 §A.3), never negative.
    pub fn lost(&self) -> u64 {
        match (self.first_ext_seq, self.seq.highest()) {
            (Some(f), Some(h)) => (h - f + 1).saturating_sub(self.packets),
            _ => 0,
        }
    }
}

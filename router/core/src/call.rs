//! Calls, participants and producers.

use std::net::SocketAddr;
use std::time::Instant;

use corecast_proto::ids::SeqExtender;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, SeqNo, Ssrc};

use crate::hash::FxHashMap;

/// A stream a participant sends (one SSRC).
#[derive(Debug)]
pub(crate) struct Producer {
    pub ssrc: Ssrc,
    /// Declared, or resolved from the payload type of the first packet.
    pub kind: MediaKind,
    /// Sequence number of the previous packet (what receivers last got).
    pub prev_seq: Option<SeqNo>,
    /// Bytes since the last rate update.
    pub window_bytes: u64,
    /// Measured bitrate over the last sweep interval, bits/s.
    pub bitrate_bps: u64,
    pub packets: u64,
    pub bytes: u64,
    pub seq: SeqExtender,
    pub first_ext_seq: Option<u64>,
    /// Last keyframe request forwarded to this producer.
    pub last_keyframe_request: Option<Instant>,
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
}

impl Producer {
    fn new(ssrc: Ssrc, kind: MediaKind) -> Producer {
        Producer {
            ssrc,
            kind,
            prev_seq: None,
            window_bytes: 0,
            bitrate_bps: 0,
            packets: 0,
            bytes: 0,
            seq: SeqExtender::default(),
            first_ext_seq: None,
            last_keyframe_request: None,
            level_sum: 0,
            level_packets: 0,
            loudness: 0,
            level_seen: false,
            sd_audible: true,
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

    pub fn on_rtp(&mut self, h: &RtpHeader, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
        self.window_bytes += len as u64;
        let e = self.seq.extend(h.seq);
        if self.first_ext_seq.is_none() {
            self.first_ext_seq = Some(e);
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

/// A member of a call, admitted from one source address.
#[derive(Debug)]
pub(crate) struct Participant {
    pub id: ParticipantId,
    pub role: Role,
    pub addr: SocketAddr,
    pub last_seen: Instant,
    pub quality: Quality,
    /// The participant asked for SD itself: no automatic switching.
    pub quality_pinned: bool,
    /// Consecutive receiver reports (or estimates) that said HD does not fit.
    pub bad_reports: u32,
    /// Since when reports have said HD fits again (while on automatic SD).
    pub good_since: Option<Instant>,
    /// Per-producer forwarding state that differs from "as received"
    /// (paused streams and rewritten sequence numbers). Empty on the fast path.
    pub consumers: Vec<Consumer>,
    /// Claim SSRCs on first use (the join declared none).
    pub learn_ssrcs: bool,
    pub producers: Vec<Producer>,
    /// Set for the stand-in of another worker's share of the call (a relay
    /// link): its packets go to that worker, not to an address.
    pub relay_worker: Option<usize>,
    /// Latest loss fraction (1/256) this participant reported as a receiver.
    pub reported_loss: u8,
    /// Latest bandwidth estimate (REMB) this participant sent, bits/s.
    pub estimate_bps: Option<u64>,
}

impl Participant {
    pub fn new(id: ParticipantId, role: Role, addr: SocketAddr, now: Instant, quality: Quality) -> Participant {
        Participant {
            id,
            role,
            addr,
            last_seen: now,
            quality,
            quality_pinned: quality == Quality::Sd,
            bad_reports: 0,
            good_since: None,
            consumers: Vec::new(),
            learn_ssrcs: false,
            producers: Vec::new(),
            reported_loss: 0,
            estimate_bps: None,
            relay_worker: None,
        }
    }

    pub fn is_relay(&self) -> bool {
        self.relay_worker.is_some()
    }

    pub fn add_producer(&mut self, ssrc: Ssrc, kind: MediaKind) {
        self.producers.push(Producer::new(ssrc, kind));
    }

    pub fn consumer_mut(&mut self, ssrc: Ssrc) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.ssrc == ssrc)
    }

    pub fn producer_mut(&mut self, ssrc: Ssrc) -> Option<&mut Producer> {
        self.producers.iter_mut().find(|p| p.ssrc == ssrc)
    }
}

/// How one receiver gets one producer's stream when that differs from "as
/// received": the stream is paused (an SD receiver does not get raw video),
/// or it resumed after a pause and its sequence numbers are shifted so that
/// the receiver sees no gap (mediasoup's SeqManager does the same).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consumer {
    pub ssrc: Ssrc,
    pub paused: bool,
    /// Outgoing = incoming + offset (mod 2^16).
    pub offset: u16,
    /// Last sequence number sent to this receiver.
    pub last_out: Option<SeqNo>,
}

/// One call on this worker.
#[derive(Debug)]
pub(crate) struct Call {
    pub id: CallId,
    pub participants: Vec<Participant>,
    pub ssrc_owner: FxHashMap<Ssrc, ParticipantId>,
    /// Whether a mixer was wanted at the last check (SD receivers present).
    pub mixer_wanted: bool,
    /// Round-robin position for spreading new receivers over other workers.
    pub next_spread: usize,
    /// The speakers list last sent to the call's mixer (video SSRCs, loudest first).
    pub speakers_sent: Vec<Ssrc>,
}

impl Call {
    pub fn new(id: CallId) -> Call {
        Call {
            id,
            participants: Vec::with_capacity(8),
            ssrc_owner: FxHashMap::default(),
            mixer_wanted: false,
            next_spread: 0,
            speakers_sent: Vec::new(),
        }
    }

    #[inline]
    pub fn index_of(&self, pid: ParticipantId) -> Option<usize> {
        self.participants.iter().position(|p| p.id == pid)
    }

    pub fn has_mixer(&self) -> bool {
        self.participants.iter().any(|p| p.role == Role::Mixer)
    }

    /// Receivers that take SD (the mixer itself excluded).
    pub fn sd_receivers(&self) -> usize {
        self.participants.iter().filter(|p| p.quality == Quality::Sd && p.role != Role::Mixer && !p.is_relay()).count()
    }

    /// Participants on this worker (relay links excluded).
    pub fn local_participants(&self) -> usize {
        self.participants.iter().filter(|p| !p.is_relay()).count()
    }

    pub fn relay_index(&self, worker: usize) -> Option<usize> {
        self.participants.iter().position(|p| p.relay_worker == Some(worker))
    }

    pub fn owner_index(&self, ssrc: Ssrc) -> Option<usize> {
        let pid = *self.ssrc_owner.get(&ssrc)?;
        self.index_of(pid)
    }

    pub fn snapshot(&self) -> CallSnapshot {
        CallSnapshot {
            call: self.id,
            participants: self
                .participants
                .iter()
                .filter(|p| !p.is_relay())
                .map(|p| ParticipantSnapshot {
                    participant: p.id,
                    role: p.role,
                    source: p.addr,
                    quality: p.quality,
                    ssrcs: p.producers.iter().map(|s| s.ssrc).collect(),
                    bitrate_bps: p.producers.iter().map(|s| s.bitrate_bps).sum(),
                    packets_received: p.producers.iter().map(|s| s.packets).sum(),
                    packets_lost: p.producers.iter().map(|s| s.lost()).sum(),
                    reported_loss_fraction: p.reported_loss,
                    estimate_bps: p.estimate_bps,
                    loudness: p
                        .producers
                        .iter()
                        .filter(|s| s.kind == MediaKind::Audio && s.level_seen)
                        .map(|s| s.loudness)
                        .max(),
                    sd_audible: p.producers.iter().filter(|s| s.kind == MediaKind::Audio).any(|s| s.sd_audible),
                })
                .collect(),
        }
    }
}

/// A call as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    /// Call id.
    pub call: CallId,
    /// Its participants.
    pub participants: Vec<ParticipantSnapshot>,
}

/// A participant as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    /// Id.
    pub participant: ParticipantId,
    /// Role.
    pub role: Role,
    /// Admitted source address.
    pub source: SocketAddr,
    /// Receive quality.
    pub quality: Quality,
    /// SSRCs it produces.
    pub ssrcs: Vec<Ssrc>,
    /// Bitrate it sends, bits/s (last sweep interval).
    pub bitrate_bps: u64,
    /// RTP packets received from it.
    pub packets_received: u64,
    /// RTP packets of its streams that never arrived (sequence gaps).
    pub packets_lost: u64,
    /// Loss fraction (1/256) it last reported as a receiver.
    pub reported_loss_fraction: u8,
    /// Its last bandwidth estimate (REMB), bits/s.
    pub estimate_bps: Option<u64>,
    /// Smoothed loudness of its loudest audio stream, 0 (silence) ..= 127
    /// (0 dBov), from RFC 6464 levels; `None` without levels.
    pub loudness: Option<u8>,
    /// Whether SD receivers hear it (one of the loudest, or no levels to rank).
    pub sd_audible: bool,
}

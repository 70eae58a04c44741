//! Calls, participants and producers.

use std::net::SocketAddr;
use std::time::Instant;

use corecast_proto::ids::SeqExtender;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::Ssrc;

use crate::hash::FxHashMap;

/// A stream a participant sends (one SSRC).
#[derive(Debug)]
pub(crate) struct Producer {
    pub ssrc: Ssrc,
    pub packets: u64,
    pub bytes: u64,
    pub seq: SeqExtender,
    pub first_ext_seq: Option<u64>,
    /// Last keyframe request forwarded to this producer.
    pub last_keyframe_request: Option<Instant>,
}

impl Producer {
    fn new(ssrc: Ssrc) -> Producer {
        Producer {
            ssrc,
            packets: 0,
            bytes: 0,
            seq: SeqExtender::default(),
            first_ext_seq: None,
            last_keyframe_request: None,
        }
    }

    pub fn on_rtp(&mut self, h: &RtpHeader, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
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
    /// Claim SSRCs on first use (the join declared none).
    pub learn_ssrcs: bool,
    pub producers: Vec<Producer>,
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
            learn_ssrcs: false,
            producers: Vec::new(),
            reported_loss: 0,
            estimate_bps: None,
        }
    }

    pub fn add_producer(&mut self, ssrc: Ssrc) {
        self.producers.push(Producer::new(ssrc));
    }

    pub fn producer_mut(&mut self, ssrc: Ssrc) -> Option<&mut Producer> {
        self.producers.iter_mut().find(|p| p.ssrc == ssrc)
    }
}

/// One call on this worker.
#[derive(Debug)]
pub(crate) struct Call {
    pub id: CallId,
    pub participants: Vec<Participant>,
    pub ssrc_owner: FxHashMap<Ssrc, ParticipantId>,
}

impl Call {
    pub fn new(id: CallId) -> Call {
        Call { id, participants: Vec::with_capacity(8), ssrc_owner: FxHashMap::default() }
    }

    #[inline]
    pub fn index_of(&self, pid: ParticipantId) -> Option<usize> {
        self.participants.iter().position(|p| p.id == pid)
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
                .map(|p| ParticipantSnapshot {
                    participant: p.id,
                    role: p.role,
                    source: p.addr,
                    quality: p.quality,
                    ssrcs: p.producers.iter().map(|s| s.ssrc).collect(),
                    packets_received: p.producers.iter().map(|s| s.packets).sum(),
                    packets_lost: p.producers.iter().map(|s| s.lost()).sum(),
                    reported_loss_fraction: p.reported_loss,
                    estimate_bps: p.estimate_bps,
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
    /// RTP packets received from it.
    pub packets_received: u64,
    /// RTP packets of its streams that never arrived (sequence gaps).
    pub packets_lost: u64,
    /// Loss fraction (1/256) it last reported as a receiver.
    pub reported_loss_fraction: u8,
    /// Its last bandwidth estimate (REMB), bits/s.
    pub estimate_bps: Option<u64>,
}

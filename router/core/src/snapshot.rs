//! Calls as the admin API and the calls service's re-sync see them.

use std::net::SocketAddr;

use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::call::Call;

/// A call as the admin API shows it (its share on one worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    /// Call id.
    pub call: CallId,
    /// Its participants on this worker.
    pub participants: Vec<ParticipantSnapshot>,
    /// Links to the call's shares on other routers (cascading), by their
    /// address, and whether each is this share's uplink (towards the call's
    /// home router: this router is a leaf of the call).
    pub links: Vec<(SocketAddr, bool)>,
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
    /// Loss per mille of what the router sends it, from its transport-wide
    /// feedback: the last interval's and the last intervals' (what keeps
    /// the router from probing). `None`: no such feedback.
    pub twcc_loss_permille: Option<(u16, u16)>,
    /// Round trip to it, measured from its reports about the router's SRs
    /// (`None` until it reported on one: a leg that receives nothing).
    pub rtt: Option<std::time::Duration>,
    /// Smoothed loudness of its loudest audio stream, 0 (silence) ..= 127
    /// (0 dBov), from RFC 6464 levels; `None` without levels.
    pub loudness: Option<u8>,
    /// Whether SD receivers hear it (one of the loudest, or no levels to rank).
    pub sd_audible: bool,
    /// Its frame-rate cap as a receiver (a WHEP leg's `max_fps`).
    pub max_fps: Option<u8>,
    /// Its requested size as a receiver (a WHEP leg's `max_height`).
    pub max_height: Option<u16>,
    /// Its Last-N as a receiver (a native client's `LastN`, a WHEP leg's `last_n`).
    pub last_n: Option<u8>,
}

impl Call {
    pub(crate) fn snapshot(&self) -> CallSnapshot {
        CallSnapshot {
            call: self.id,
            participants: self
                .participants
                .iter()
                .map(|p| ParticipantSnapshot {
                    participant: p.id,
                    role: p.role,
                    source: p.transport.remote(),
                    quality: p.quality.current,
                    ssrcs: p.producers.iter().map(|s| s.ssrc).collect(),
                    bitrate_bps: p.producers.iter().map(|s| s.bitrate_bps).sum(),
                    packets_received: p.producers.iter().map(|s| s.packets).sum(),
                    packets_lost: p.producers.iter().map(|s| s.lost()).sum(),
                    reported_loss_fraction: p.reported_loss,
                    estimate_bps: p.estimate_bps,
                    twcc_loss_permille: p
                        .bwe
                        .as_ref()
                        .map(|b| ((b.loss() * 1000.0).round() as u16, (b.recent_loss() * 1000.0).round() as u16)),
                    rtt: p.reports.rtt,
                    loudness: p
                        .producers
                        .iter()
                        .filter(|s| s.kind == MediaKind::Audio && s.level_seen)
                        .map(|s| s.loudness)
                        .max(),
                    sd_audible: p.producers.iter().filter(|s| s.kind == MediaKind::Audio).any(|s| s.sd_audible),
                    max_fps: p.max_fps,
                    max_height: p.max_height,
                    last_n: p.last_n,
                })
                .collect(),
            links: self
                .pipes
                .iter()
                .filter_map(|p| match p.peer {
                    crate::pipe::PipePeer::Router(a) => Some((a, p.uplink_since.is_some())),
                    crate::pipe::PipePeer::Worker(_) => None,
                })
                .collect(),
        }
    }
}

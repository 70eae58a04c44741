//! Participants: the members of a call on this worker.

use std::sync::Arc;
use std::time::Instant;

use corecast_proto::token::{ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::bwe::Bwe;
use crate::consumer::Consumers;
use crate::producer::Producer;
use crate::quality::QualityState;
use crate::reports::LegReports;
use crate::retransmit::RetransmitBudget;
use crate::transport::Transport;
use crate::webrtc::SenderFormat;

/// A member of a call, reached over one transport.
#[derive(Debug)]
pub(crate) struct Participant {
    pub id: ParticipantId,
    pub role: Role,
    pub transport: Transport,
    pub last_seen: Instant,
    /// HD or SD, and what the automatic switching has seen.
    pub quality: QualityState,
    /// Per-producer forwarding state that differs from "as received"
    /// (paused streams and rewritten sequence numbers). Empty on the fast path.
    pub consumers: Consumers,
    /// Claim SSRCs on first use (the join declared none).
    pub learn_ssrcs: bool,
    pub producers: Vec<Producer>,
    /// Latest loss fraction (1/256) this participant reported as a receiver.
    pub reported_loss: u8,
    /// The worst loss fraction (1/256) its last report gave for an audio stream (RED's cue).
    pub audio_loss: u8,
    /// The bandwidth estimate the router acts on for this receiver, bits/s:
    /// the lower of its REMB (`remb_bps`) and the router's own estimate
    /// from its transport-wide feedback (`bwe`, once settled); either alone
    /// when only one is known. Kept up to date by [`Participant::update_estimate`];
    /// read it with [`Participant::estimate`].
    pub estimate_bps: Option<u64>,
    /// Latest bandwidth estimate (REMB) this participant sent, bits/s.
    pub remb_bps: Option<u64>,
    /// The router's send-side estimate for this receiver (Google congestion
    /// control from its transport-wide feedback: WebRTC legs that negotiated
    /// transport-cc), made at its first feedback.
    pub bwe: Option<Box<Bwe>>,
    /// How its packets are read (payload types → codecs, extension ids);
    /// each of its producers shares it (and announces it over pipes).
    pub format: Arc<SenderFormat>,
    /// Receives only this participant's streams (a WHEP leg for one publisher).
    pub subscribe: Option<ParticipantId>,
    /// Frame-rate cap (a WHEP leg's `max_fps`): of video with temporal
    /// layers it gets only the layers that fit (see `framerate`).
    pub max_fps: Option<u8>,
    /// Requested size (a WHEP leg's `max_height`): of a simulcast source it
    /// gets the best layer whose frames are at most this many pixels high
    /// (the lowest if none is; layers of unknown size are not held back).
    pub max_height: Option<u16>,
    /// Retransmissions sent to it lately (made at its first NACK answered).
    pub retransmit: Option<Box<RetransmitBudget>>,
    /// Last-N: it gets only the video of the call's `n` most active
    /// speakers (`None`: everyone's). Audio is not thinned.
    pub last_n: Option<u8>,
    /// What the router sent it per stream, its RTT, its pending SRs (see `reports`).
    pub reports: LegReports,
    /// The overload protection holds its simulcast sources at their lowest layers.
    pub layers_shed: bool,
}

impl Participant {
    pub fn new(
        id: ParticipantId,
        role: Role,
        transport: Transport,
        now: Instant,
        quality: QualityState,
        format: SenderFormat,
    ) -> Participant {
        Participant {
            id,
            role,
            transport,
            last_seen: now,
            quality,
            consumers: Consumers::default(),
            learn_ssrcs: false,
            producers: Vec::new(),
            reported_loss: 0,
            audio_loss: 0,
            estimate_bps: None,
            remb_bps: None,
            bwe: None,
            format: Arc::new(format),
            subscribe: None,
            max_fps: None,
            max_height: None,
            retransmit: None,
            last_n: None,
            reports: LegReports::default(),
            layers_shed: false,
        }
    }

    /// The bandwidth estimate to act on for this receiver, bits/s: the
    /// lower of the router's own (transport-wide feedback, once settled)
    /// and the receiver's REMB; `None` while neither is known. What the
    /// HD/SD switching and layer selection are to read.
    #[inline]
    pub fn estimate(&self) -> Option<u64> {
        self.estimate_bps
    }

    /// Recomputes [`Participant::estimate`] after a REMB or a feedback.
    pub fn update_estimate(&mut self) {
        let gcc = self.bwe.as_ref().filter(|b| b.settled()).map(|b| b.estimate_bps());
        self.estimate_bps = match (gcc, self.remb_bps) {
            (Some(g), Some(r)) => Some(g.min(r)),
            (g, r) => g.or(r),
        };
        if let Transport::WebRtc(w) = &mut self.transport {
            w.set_pace(self.estimate_bps);
        }
    }

    /// Of an SVC stream, only its base spatial layer: a WebRTC leg that did
    /// not negotiate the Dependency Descriptor. Without it Chromium finds no
    /// decodable picture in a stream of several spatial layers (it decodes
    /// none: tried with AV1 `L2T3`), while the base layer alone it decodes;
    /// with it, every layer (`svc`).
    #[inline]
    pub fn svc_base_only(&self) -> bool {
        matches!(&self.transport, Transport::WebRtc(w) if w.format.extensions.dependency_descriptor.is_none())
    }

    /// A WHEP leg watching one participant (not a person of its own).
    pub fn is_watch_leg(&self) -> bool {
        self.role == Role::Subscriber && self.subscribe.is_some()
    }

    /// On SD, hears the mixer's mixed audio instead of the loudest speakers'
    /// streams: a WebRTC leg that receives the whole call (a WHEP composite
    /// view). Its one audio m-line plays one stream; a leg for one
    /// publisher keeps that publisher's audio.
    #[inline]
    pub fn takes_mixed_audio(&self) -> bool {
        self.subscribe.is_none() && matches!(self.transport, Transport::WebRtc(_))
    }

    pub fn add_producer(&mut self, ssrc: Ssrc, kind: MediaKind) {
        let mut p = Producer::new(ssrc, kind, self.id, self.role);
        p.format = Some(self.format.clone());
        self.producers.push(p);
    }
}

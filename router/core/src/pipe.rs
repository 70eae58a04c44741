//! Pipe transports: the links between the shares of a call spread over
//! several workers (and, later, several routers).
//!
//! A call lives on its owning worker (see [`Placement`](crate::Placement)).
//! When its share there holds `max_receivers_per_worker` participants, the
//! owner opens a pipe to another worker, reserves a seat there for the
//! joining participant ([`PipeMessage::Grant`]) and redirects the join to
//! it. The pipes form a star around the owner (the hub): every share sends
//! what its participants produce to the hub, and the hub sends everything to
//! every other share. Each end announces its producers (SSRC, kind, who
//! sends it, in which role, how its sender's packets read) before their
//! first packet, so the far side applies the same fan-out policy as for
//! its own participants and reads a browser's payload types and header
//! extensions as the publisher's own worker does. The hub counts every
//! seat on every worker, so the per-call participant cap holds across
//! workers.
//!
//! Messages on one pipe arrive in order (the driver's rings are FIFO per
//! pair of workers); media crosses as the received buffer itself and is
//! parsed again on the far side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::pipe_seal::PipeKey;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::api::Event;
use crate::call::{Call, Owner};
use crate::forward::Origin;
use crate::outbox::Outbox;
use crate::pipe_auth::LinkCrypto;
use crate::producer::Producer;
use crate::simulcast::Layer;
use crate::stats::DropReason;
use crate::webrtc::SenderFormat;
use crate::Router;

/// What crosses a pipe between two workers' shares of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeMessage {
    /// An RTP or RTCP packet of the call, as received (the buffer itself).
    Media(Bytes),
    /// From the hub: this worker now holds a share of the call.
    Open,
    /// From the hub: a seat is reserved here for this participant, whose
    /// join the hub redirected here.
    Grant(ParticipantId),
    /// To the hub: a participant joined here (it took its seat).
    Joined(ParticipantId),
    /// A producer exists on the sending side (sent before its first packet).
    Producer {
        /// Who sends it.
        participant: ParticipantId,
        /// In which role.
        role: Role,
        /// Its SSRC.
        ssrc: Ssrc,
        /// Audio or video (`Unknown` until its first packet, then announced again).
        kind: MediaKind,
        /// A simulcast layer: its group and place (announced again once declared).
        layer: Option<Layer>,
        /// How its sender's packets read (payload types → codecs, the
        /// audio-level and Dependency Descriptor ids: a browser's from its
        /// SDP), so the far side reads them as this side does. `None`: not
        /// said (a router from before formats were announced): read as a
        /// native client's (`RouterConfig::native_format`).
        format: Option<Arc<SenderFormat>>,
    },
    /// A participant on the sending side left; its producers go with it.
    Left(ParticipantId),
    /// The sending side's share of the call is empty: the pipe closes.
    Close,
    /// From a call's home router to a leaf (cascading): the control plane
    /// removed this participant, which is on the leaf.
    Remove(ParticipantId),
}

impl PipeMessage {
    pub(crate) fn producer(p: &Producer) -> PipeMessage {
        PipeMessage::Producer {
            participant: p.participant,
            role: p.role,
            ssrc: p.ssrc,
            kind: p.kind,
            layer: p.layer,
            format: p.format.clone(),
        }
    }
}

/// A seat on the far side of a pipe, as the hub counts it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seat {
    pub participant: ParticipantId,
    /// Reserved at this instant and not taken yet (`None`: the participant joined).
    pub granted_at: Option<Instant>,
}

/// The far end of a pipe: another worker of this router, or (cascading,
/// see `cascade`) the owning worker of the call on another router, at its
/// media address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PipePeer {
    Worker(usize),
    Router(SocketAddr),
}

/// The link to another worker's (or router's) share of a call.
#[derive(Debug)]
pub(crate) struct PipeTransport {
    pub peer: PipePeer,
    /// Producers announced by the far side.
    pub producers: Vec<Producer>,
    /// On the hub: the seats on the far side (always empty elsewhere).
    pub seats: Vec<Seat>,
    /// A link to another router towards the call's home router, and since
    /// when: this router's share closes it once no participant is left here
    /// (see `cascade`).
    pub uplink_since: Option<Instant>,
    /// On an uplink: a participant joined this share since it was (re)opened.
    pub joined: bool,
    /// A link to another router: its keys (every datagram is sealed).
    pub crypto: Option<Box<LinkCrypto>>,
}

impl PipeTransport {
    pub fn new(peer: PipePeer) -> PipeTransport {
        PipeTransport {
            peer,
            producers: Vec::new(),
            seats: Vec::new(),
            uplink_since: None,
            joined: false,
            crypto: None,
        }
    }

    pub fn send(&self, out: &mut Outbox, call: CallId, message: PipeMessage) {
        match self.peer {
            PipePeer::Worker(w) => out.pipe(w, call, message),
            PipePeer::Router(a) => {
                if let Some(link) = &self.crypto {
                    out.cascade(a, call, &message, link);
                }
            }
        }
    }

    #[inline]
    pub fn send_media(&self, out: &mut Outbox, call: CallId, contents: Bytes) {
        self.send(out, call, PipeMessage::Media(contents));
    }
}

impl Call {
    /// Sends `m` on every pipe it goes on from here (see `fanout::to_pipe`).
    pub(crate) fn broadcast_pipes(&self, out: &mut Outbox, from_pipe: Option<PipePeer>, m: &PipeMessage) {
        for p in self.pipes.iter().filter(|p| crate::fanout::to_pipe(from_pipe, p.peer)) {
            p.send(out, self.id, m.clone());
        }
    }
}

impl Router {
    /// Opens the pipe from the hub to `worker` (or to another router, with
    /// the link's `key`) for `call`, and announces every producer known here
    /// so the far side can route them at once.
    pub(crate) fn open_pipe(
        &mut self,
        call_id: CallId,
        peer: PipePeer,
        uplink_since: Option<Instant>,
        key: Option<&PipeKey>,
    ) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let home = uplink_since.is_none();
        if let Some(i) = call.pipe_index(peer) {
            // Opened again (a join placed here): the grace starts again.
            let pipe = &mut call.pipes[i];
            pipe.uplink_since = pipe.uplink_since.and(uplink_since);
            pipe.joined &= uplink_since.is_none();
            // With a new key (see `pipe_auth`): the leaf tells the home it has it.
            let rekeyed = match (key, pipe.crypto.as_deref_mut()) {
                (Some(k), Some(c)) => c.rekey(k, home),
                (Some(k), None) => {
                    pipe.crypto = Some(Box::new(LinkCrypto::new(k, home)));
                    true
                }
                _ => false,
            };
            if rekeyed && !home {
                pipe.send(&mut self.out, call_id, PipeMessage::Open);
            }
            return;
        }
        let mut pipe = PipeTransport::new(peer);
        pipe.uplink_since = uplink_since;
        pipe.crypto = key.map(|k| Box::new(LinkCrypto::new(k, home)));
        pipe.send(&mut self.out, call_id, PipeMessage::Open);
        for p in call.producers() {
            pipe.send(&mut self.out, call_id, PipeMessage::producer(p));
        }
        call.pipes.push(pipe);
    }

    pub(crate) fn handle_pipe(&mut self, now: Instant, from: PipePeer, call_id: CallId, message: PipeMessage) {
        let hub = self.config.placement.owns(&call_id);
        if let PipeMessage::Media(contents) = message {
            if self.calls.get(&call_id).is_none_or(|c| c.pipe_index(from).is_none()) {
                return self.out.drop_packet(DropReason::Unadmitted);
            }
            return match classify(&contents) {
                Kind::Rtp => self.forward_rtp(now, call_id, Origin::Pipe(from), contents),
                Kind::Rtcp => self.route_rtcp(now, call_id, Origin::Pipe(from), &contents),
                _ => self.out.drop_packet(DropReason::Malformed),
            };
        }
        if let (PipeMessage::Open, PipePeer::Router(_)) = (&message, from) {
            // The far router opened its end (perhaps after ours): it gets
            // what we announced before it listened.
            return self.reannounce(call_id, from);
        }
        if let PipeMessage::Open = message {
            if self.ended.contains_key(&call_id) || hub {
                return;
            }
            let call = self.calls.entry(call_id).or_insert_with(|| Call::new(call_id, false));
            if call.pipe_index(from).is_none() {
                call.pipes.push(PipeTransport::new(from));
            }
            return;
        }
        let grant_for = self.config.spread_grant_timeout / 2;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.pipe_index(from) else { return };
        match message {
            // Seats are the workers' business: another router admits its own joins.
            PipeMessage::Grant(_) | PipeMessage::Joined(_) if matches!(from, PipePeer::Router(_)) => {}
            PipeMessage::Grant(pid) => {
                call.granted.retain(|g| g.0 != pid);
                call.granted.push((pid, now + grant_for));
            }
            PipeMessage::Joined(pid) => {
                let seats = &mut call.pipes[i].seats;
                match seats.iter_mut().find(|s| s.participant == pid) {
                    Some(s) => s.granted_at = None,
                    None => seats.push(Seat { participant: pid, granted_at: None }),
                }
            }
            PipeMessage::Producer { participant, role, ssrc, kind, layer, format } => {
                match call.ssrc_owner.get(&ssrc) {
                    Some(Owner::Pipe(w)) if *w == from => {
                        let Some(p) = call.pipes[i].producers.iter_mut().find(|p| p.ssrc == ssrc) else { return };
                        // Announced again as it was (links to other routers
                        // refresh their announcements): nothing to pass on.
                        if p.kind == kind && p.layer == layer && p.format == format {
                            return;
                        }
                        p.kind = kind;
                        p.layer = layer;
                        p.format.clone_from(&format);
                    }
                    Some(_) => return self.out.drop_packet(DropReason::SsrcNotOwned),
                    None => {
                        call.ssrc_owner.insert(ssrc, Owner::Pipe(from));
                        let mut p = Producer::new(ssrc, kind, participant, role);
                        p.layer = layer;
                        p.format.clone_from(&format);
                        call.pipes[i].producers.push(p);
                    }
                }
                call.broadcast_pipes(
                    &mut self.out,
                    Some(from),
                    &PipeMessage::Producer { participant, role, ssrc, kind, layer, format },
                );
            }
            PipeMessage::Left(pid) => {
                call.drop_remote_participant(i, pid);
                call.broadcast_pipes(&mut self.out, Some(from), &PipeMessage::Left(pid));
            }
            PipeMessage::Close => {
                // The home closes a leaf's uplink only when the call ends there
                // (or the operator cut the leaf off): the call ends here too.
                let uplink = call.pipes[i].uplink_since.is_some();
                self.drop_pipe(call_id, i);
                if uplink {
                    self.handle_command(now, crate::Command::EndCall(call_id));
                }
            }
            PipeMessage::Remove(pid) => {
                // Only the home removes a leaf's participants (the uplink's far end).
                if call.pipes[i].uplink_since.is_some() {
                    self.remove_participant(call_id, pid, crate::LeaveReason::Removed, true);
                }
            }
            PipeMessage::Media(_) | PipeMessage::Open => {}
        }
    }

    /// Expires seats: on the hub, those granted and never taken (the seat
    /// frees up); elsewhere, grants the participant did not use, and a share
    /// left with neither participants nor grants closes.
    pub(crate) fn sweep_pipes(&mut self, now: Instant) {
        let timeout = self.config.spread_grant_timeout;
        let mut close = Vec::new();
        for (id, call) in &mut self.calls {
            if call.pipes.is_empty() {
                continue;
            }
            for pipe in &mut call.pipes {
                pipe.seats.retain(|s| s.granted_at.is_none_or(|t| now.saturating_duration_since(t) < timeout));
            }
            call.granted.retain(|g| g.1 > now);
            if !call.hub && call.participants.is_empty() && call.granted.is_empty() {
                close.push(*id);
            }
        }
        for id in close {
            self.close_share(id);
        }
    }

    /// Closes this worker's (non-owning) share of a call: the hub drops its pipe.
    pub(crate) fn close_share(&mut self, call_id: CallId) {
        let Some(call) = self.calls.remove(&call_id) else { return };
        for p in &call.pipes {
            p.send(&mut self.out, call_id, PipeMessage::Close);
        }
        self.out.event(Event::CallClosed(call_id));
    }
}

//! Cascading: one call spread over several routers, linked router to router
//! by pipe transports over UDP (the routers' media ports).
//!
//! The control plane (the calls service) opens a link with
//! [`Command::OpenPipe`](crate::Command::OpenPipe) on both routers, each
//! naming the other's media address for the call (the owning worker's:
//! [`Placement::owner`](crate::Placement::owner)); only the call's owning
//! worker acts on it. A pipe datagram from an address no open link names
//! is dropped and counted ([`DropReason::PipeUnadmitted`]). A leaf's link to
//! the home (`uplink`) closes by itself once the leaf's last participant
//! leaves (at least [`UPLINK_HOLD`] after the link's last opening), or when
//! nobody joined within `uplink_grace` (60 s) of it;
//! the control plane opens it again for the next join it places there.
//!
//! **Topology: a tree, with split horizon.** The calls service links every
//! other router of a call to the call's home router only (a star of routers
//! around the home); inside each router the workers form a star around the
//! call's owning worker (`pipe`), and the two stars meet at the owning
//! workers. The union is a tree, and every share forwards what it receives
//! to every pipe but the one it came in on (`fanout::to_pipe`): a packet
//! crosses each link of the tree exactly once, whatever the number of
//! receivers behind it, and cannot come back (a tree has no cycle).
//!
//! Each end announces every producer it knows (its own and those from its
//! other pipes) when the link opens, again when the far end's `Open`
//! arrives (it may have opened later and dropped ours), and every
//! [`REANNOUNCE_SWEEPS`] sweeps (UDP may lose one). Media crosses as the
//! packet as received (SRTP removed), behind a 30-byte header; RTCP (NACK,
//! PLI, FIR, reports) follows the producer's owner across the links, and the
//! audio-level extension crosses with the audio, so each router ranks every
//! speaker of the call. A producer is announced with its sender's format
//! (a browser's payload types and extension ids), which each router reads
//! its packets by.
//!
//! Every datagram is sealed with the link's key (`pipe_auth`,
//! `corecast_proto::pipe_seal`): AES-256-GCM, the header as AAD, the
//! header's per-direction counter as nonce; one that fails authentication
//! or is replayed is dropped and counted ([`DropReason::PipeAuthFailed`],
//! [`DropReason::PipeReplayed`]). It is sealed once per link crossing, in
//! the outbox's arena.
//!
//! The datagrams' format (sealing, the message types) is in [`wire`].

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::pipe_seal::PipeKey;
use corecast_proto::token::{CallId, ParticipantId};

use crate::api::Event;
use crate::call::Call;
use crate::outbox::Outbox;
use crate::pipe::{PipeMessage, PipePeer};
use crate::pipe_auth::LinkCrypto;
use crate::stats::DropReason;
use crate::Router;

mod wire;

pub use wire::{encode_into, is_pipe_datagram, open, parse_header, parse_opened, seal, CascadeParseError};
pub use wire::{PIPE_HEADER, PIPE_MAGIC};

/// Every this many sweeps, each end announces its producers again.
pub const REANNOUNCE_SWEEPS: u32 = 4;
/// A leaf's uplink (re)opened less than this long ago stays when its last
/// participant leaves (the calls service may just have placed a join here
/// and opened it again); the sweep closes it afterwards if still empty.
pub const UPLINK_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

/// Counters of the links to one other router (all calls together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Media packets (RTP and RTCP) sent to it.
    pub media_out: u64,
    /// Media packets received from it.
    pub media_in: u64,
    /// Of the media sent, RTCP compounds (the rest is RTP).
    pub rtcp_out: u64,
    /// Of the media received, RTCP compounds.
    pub rtcp_in: u64,
    /// Control messages (opens, producers, leaves, closes) sent to it.
    pub control_out: u64,
    /// Control messages received from it.
    pub control_in: u64,
    /// Bytes of the datagrams sent to it.
    pub bytes_out: u64,
    /// Bytes of the datagrams received from it.
    pub bytes_in: u64,
}

impl Outbox {
    /// A message to `call`'s share on the router at `peer`, sealed with
    /// the link's key in the arena (once per link crossing), counted per link.
    pub fn cascade(&mut self, peer: SocketAddr, call: CallId, message: &PipeMessage, link: &LinkCrypto) {
        let Some(keys) = link.sealing() else { return };
        let arena = self.arena();
        let start = arena.len();
        if !encode_into(arena, call, keys.id, message) {
            arena.truncate(start);
            return;
        }
        if keys.sealer.seal(arena, start, PIPE_HEADER).is_err() {
            self.discard_arena();
            return;
        }
        let b = self.take_arena();
        let link = self.links.entry(peer).or_default();
        link.bytes_out += b.len() as u64;
        if let PipeMessage::Media(m) = message {
            link.media_out += 1;
            link.rtcp_out += u64::from(classify(m) == Kind::Rtcp);
            self.stats.cascade_media_out += 1;
        } else {
            link.control_out += 1;
            self.stats.cascade_control_out += 1;
        }
        self.transmit(peer, b);
    }
}

impl Router {
    /// Counters per other router this worker is linked to (or was), by its address.
    pub fn link_stats(&self) -> Vec<(SocketAddr, LinkStats)> {
        let mut v: Vec<_> = self.out.links.iter().map(|(a, s)| (*a, *s)).collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    /// Links to other routers over all calls.
    pub fn cascade_count(&self) -> usize {
        self.calls.values().flat_map(|c| c.pipes.iter()).filter(|p| matches!(p.peer, PipePeer::Router(_))).count()
    }

    /// A pipe datagram from `source`: taken only from an open link's peer,
    /// and only if it opens with the link's key and is no replay.
    pub(crate) fn handle_pipe_datagram(&mut self, now: Instant, source: SocketAddr, contents: Bytes) {
        let Ok((call_id, key_id)) = parse_header(&contents) else {
            return self.out.drop_packet(DropReason::Malformed);
        };
        let peer = PipePeer::Router(source);
        let Some(call) = self.calls.get_mut(&call_id) else {
            return self.out.drop_packet(DropReason::PipeUnadmitted);
        };
        let Some(crypto) = call.pipe_index(peer).and_then(|i| call.pipes[i].crypto.as_deref_mut()) else {
            return self.out.drop_packet(DropReason::PipeUnadmitted);
        };
        if let Err(r) = crypto.open(key_id, &contents, PIPE_HEADER, self.out.arena()) {
            return self.out.drop_packet(r);
        }
        let opened = self.out.take_arena();
        let Ok((_, message)) = parse_opened(&opened) else {
            return self.out.drop_packet(DropReason::Malformed);
        };
        let link = self.out.links.entry(source).or_default();
        link.bytes_in += contents.len() as u64;
        if let PipeMessage::Media(m) = &message {
            link.media_in += 1;
            link.rtcp_in += u64::from(classify(m) == Kind::Rtcp);
            self.out.stats.cascade_media_in += 1;
        } else {
            link.control_in += 1;
            self.out.stats.cascade_control_in += 1;
        }
        self.handle_pipe(now, peer, call_id, message);
    }

    /// Opens (on the call's owning worker) the link to `call`'s share on
    /// the router at `peer`, announcing every producer known here.
    pub(crate) fn open_cascade(
        &mut self,
        now: Instant,
        call_id: CallId,
        peer: SocketAddr,
        uplink: bool,
        key: &PipeKey,
    ) {
        if !self.config.placement.owns(&call_id) || self.ended.contains_key(&call_id) {
            return;
        }
        self.calls.entry(call_id).or_insert_with(|| Call::new(call_id, true));
        self.open_pipe(call_id, PipePeer::Router(peer), uplink.then_some(now), Some(key));
    }

    /// A leaf's share with no participant left and only its uplink(s):
    /// the links close (and the share with them) once [`UPLINK_HOLD`] has
    /// passed since the last opening (a participant joined since), or
    /// `uplink_grace` (nobody did). Whether it did.
    pub(crate) fn close_idle_uplink(&mut self, call_id: CallId, now: Instant) -> bool {
        let Some(call) = self.calls.get(&call_id) else { return false };
        let grace = self.config.uplink_grace;
        let idle = |p: &crate::pipe::PipeTransport| {
            let wait = if p.joined { UPLINK_HOLD.min(grace) } else { grace };
            p.uplink_since.is_some_and(|t| now.saturating_duration_since(t) >= wait)
        };
        if !call.participants.is_empty() || call.pipes.is_empty() || !call.pipes.iter().all(idle) {
            return false;
        }
        let peers: Vec<PipePeer> = call.pipes.iter().map(|p| p.peer).collect();
        for peer in peers {
            if let PipePeer::Router(a) = peer {
                self.close_cascade(call_id, a);
            }
        }
        true
    }

    /// Closes the link to `peer` for `call`: the far end is told, its
    /// producers are forgotten here and on the other links, and the call
    /// closes if nothing else is left in it.
    pub(crate) fn close_cascade(&mut self, call_id: CallId, peer: SocketAddr) {
        let peer = PipePeer::Router(peer);
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.pipe_index(peer) else { return };
        call.pipes[i].send(&mut self.out, call_id, PipeMessage::Close);
        self.drop_pipe(call_id, i);
    }

    /// A participant the control plane removed that is not here: the
    /// leaves linked to this router (its home) are told, the one holding it removes it.
    pub(crate) fn remove_on_leaves(&mut self, call_id: CallId, pid: ParticipantId) {
        let Some(call) = self.calls.get(&call_id) else { return };
        if call.index_of(pid).is_some() {
            return;
        }
        for p in call.pipes.iter().filter(|p| matches!(p.peer, PipePeer::Router(_)) && p.uplink_since.is_none()) {
            p.send(&mut self.out, call_id, PipeMessage::Remove(pid));
        }
    }

    /// Closes every link of `call` to another router (the call ends here).
    pub(crate) fn close_links(&mut self, call_id: CallId) {
        loop {
            let Some(call) = self.calls.get(&call_id) else { return };
            let Some(i) = call.pipes.iter().position(|p| matches!(p.peer, PipePeer::Router(_))) else { return };
            call.pipes[i].send(&mut self.out, call_id, PipeMessage::Close);
            self.drop_pipe(call_id, i);
        }
    }

    /// Removes pipe `i` of `call` (its far end closed, or we did): its
    /// producers' participants leave the other links too.
    pub(crate) fn drop_pipe(&mut self, call_id: CallId, i: usize) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let pipe = call.pipes.swap_remove(i);
        let mut gone: Vec<ParticipantId> = Vec::new();
        for p in &pipe.producers {
            call.ssrc_owner.remove(&p.ssrc);
            if !gone.contains(&p.participant) {
                gone.push(p.participant);
            }
        }
        for pid in gone {
            call.broadcast_pipes(&mut self.out, Some(pipe.peer), &PipeMessage::Left(pid));
        }
        if call.participants.is_empty() && call.pipes.is_empty() {
            self.calls.remove(&call_id);
            self.out.event(Event::CallClosed(call_id));
        }
    }

    /// Announces on the link to `peer` every producer of `call` known here
    /// but those that came over it.
    pub(crate) fn reannounce(&mut self, call_id: CallId, peer: PipePeer) {
        let Some(call) = self.calls.get(&call_id) else { return };
        let Some(i) = call.pipe_index(peer) else { return };
        let pipe = &call.pipes[i];
        let own = call.participants.iter().flat_map(|p| p.producers.iter());
        let others = call.pipes.iter().filter(|p| p.peer != peer).flat_map(|p| p.producers.iter());
        for p in own.chain(others) {
            pipe.send(&mut self.out, call_id, PipeMessage::producer(p));
        }
    }

    /// At every [`REANNOUNCE_SWEEPS`]th sweep: every link to another router
    /// gets its producers again.
    pub(crate) fn sweep_cascade(&mut self, now: Instant) {
        // Leaves' shares left empty (or opened for a join that never came).
        let idle: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.participants.is_empty() && c.pipes.iter().any(|p| p.uplink_since.is_some()))
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.close_idle_uplink(id, now);
        }
        self.sweeps = self.sweeps.wrapping_add(1);
        if !self.sweeps.is_multiple_of(REANNOUNCE_SWEEPS) {
            return;
        }
        let links: Vec<(CallId, PipePeer)> = self
            .calls
            .iter()
            .flat_map(|(id, c)| c.pipes.iter().map(move |p| (*id, p.peer)))
            .filter(|(_, p)| matches!(p, PipePeer::Router(_)))
            .collect();
        for (call, peer) in links {
            self.reannounce(call, peer);
        }
    }
}

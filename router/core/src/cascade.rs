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
//! speaker of the call.
//!
//! Every datagram is sealed with the link's key (`pipe_auth`,
//! `corecast_proto::pipe_seal`): AES-256-GCM, the header as AAD, the
//! header's per-direction counter as nonce; one that fails authentication
//! or is replayed is dropped and counted ([`DropReason::PipeAuthFailed`],
//! [`DropReason::PipeReplayed`]). It is sealed once per link crossing, in
//! the outbox's arena.
//!
//! Wire format (big-endian, version 2; see `router/PROTOCOL.md`):
//!
//! ```text
//! 0      1      2                 18          22          30
//! +------+------+-----------------+-----------+-----------+------------------+-----+
//! | 0xCC | 0x2T | call id (16)    | key id u32| counter u64| body by type T  | tag |
//! +------+------+-----------------+-----------+-----------+------------------+-----+
//! T=1 Media     the RTP or RTCP packet
//! T=2 Open      (empty)
//! T=3 Producer  participant u64, role u8, ssrc u32, kind u8 (0 unknown,
//!               1 audio, 2 video), layer group u32, layer index u8
//!               (0xFF: no layer)
//! T=4 Left      participant u64
//! T=5 Close     (empty)
//! T=6 Remove    participant u64 (home to leaf: the control plane removed it)
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use corecast_proto::demux::{classify, Kind};
use corecast_proto::pipe_seal::{LinkKeys, PipeKey, PipeSealError, PIPE_TAG_LEN};
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::api::Event;
use crate::call::Call;
use crate::outbox::Outbox;
use crate::pipe::{PipeMessage, PipePeer};
use crate::pipe_auth::LinkCrypto;
use crate::simulcast::Layer;
use crate::stats::DropReason;
use crate::Router;

/// The first byte of every pipe datagram (unused by RFC 7983's demux:
/// not STUN, DTLS, TURN or RTP/RTCP).
pub const PIPE_MAGIC: u8 = 0xCC;
/// The version in the second byte's high nibble: 2, sealed (version 1
/// was plain and is refused, counted as malformed).
const VERSION: u8 = 0x20;
/// Magic, version and type, call id, key id, counter: the AAD.
pub const PIPE_HEADER: usize = 30;
/// Every this many sweeps, each end announces its producers again.
pub const REANNOUNCE_SWEEPS: u32 = 4;
/// A leaf's uplink (re)opened less than this long ago stays when its last
/// participant leaves (the calls service may just have placed a join here
/// and opened it again); the sweep closes it afterwards if still empty.
pub const UPLINK_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

const MEDIA: u8 = 1;
const OPEN: u8 = 2;
const PRODUCER: u8 = 3;
const LEFT: u8 = 4;
const CLOSE: u8 = 5;
const REMOVE: u8 = 6;
const NO_LAYER: u8 = 0xFF;

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

/// Whether a datagram is a pipe datagram (by its first byte).
#[inline]
pub fn is_pipe_datagram(b: &[u8]) -> bool {
    b.first() == Some(&PIPE_MAGIC)
}

/// Writes one message of `call` under key `key_id` to `out`: the header
/// (its counter left zero, for the sealer) and the plaintext body. `false`
/// (nothing written): a message never sent to another router.
pub fn encode_into(out: &mut BytesMut, call: CallId, key_id: u32, m: &PipeMessage) -> bool {
    let t = match m {
        PipeMessage::Media(_) => MEDIA,
        PipeMessage::Open => OPEN,
        PipeMessage::Producer { .. } => PRODUCER,
        PipeMessage::Left(_) => LEFT,
        PipeMessage::Close => CLOSE,
        PipeMessage::Remove(_) => REMOVE,
        // Seats are the workers' business, never sent to another router.
        PipeMessage::Grant(_) | PipeMessage::Joined(_) => return false,
    };
    out.put_u8(PIPE_MAGIC);
    out.put_u8(VERSION | t);
    out.put_slice(&call.0);
    out.put_u32(key_id);
    out.put_u64(0);
    match m {
        PipeMessage::Media(p) => out.put_slice(p),
        PipeMessage::Producer { participant, role, ssrc, kind, layer } => {
            out.put_u64(participant.0);
            out.put_u8(role.code());
            out.put_u32(ssrc.0);
            out.put_u8(match kind {
                MediaKind::Unknown => 0,
                MediaKind::Audio => 1,
                MediaKind::Video => 2,
            });
            out.put_u32(layer.map_or(0, |l| l.group.0));
            out.put_u8(layer.map_or(NO_LAYER, |l| l.index));
        }
        PipeMessage::Left(p) | PipeMessage::Remove(p) => out.put_u64(p.0),
        _ => {}
    }
    true
}

/// Seals one message of `call` with `keys` (this end's) as one datagram:
/// for tests, fuzzing and tools (the router seals in its arena, see
/// [`Outbox::cascade`]). `None`: never sent to another router, or the
/// counter is used up.
pub fn seal(keys: &LinkKeys, call: CallId, m: &PipeMessage) -> Option<Bytes> {
    let mut b = BytesMut::with_capacity(PIPE_HEADER + 64 + PIPE_TAG_LEN);
    if !encode_into(&mut b, call, keys.id, m) {
        return None;
    }
    keys.sealer.seal(&mut b, 0, PIPE_HEADER).ok()?;
    Some(b.freeze())
}

/// Opens a datagram with `keys` (this end's) and parses it: for tests,
/// fuzzing and tools (the router keeps two keys a link, see `pipe_auth`).
pub fn open(keys: &mut LinkKeys, b: &[u8]) -> Result<(CallId, PipeMessage), CascadeParseError> {
    let (_, id) = parse_header(b)?;
    if id != keys.id {
        return Err(CascadeParseError::Unauthentic);
    }
    let mut out = BytesMut::new();
    keys.opener.open(b, PIPE_HEADER, &mut out).map_err(|e| match e {
        PipeSealError::Replayed => CascadeParseError::Replayed,
        _ => CascadeParseError::Unauthentic,
    })?;
    parse_opened(&out.freeze())
}

/// Why a pipe datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CascadeParseError {
    /// Shorter than its type needs (or than a header and a tag).
    Truncated,
    /// Not the magic byte, another version, or an unknown type or code.
    Unknown,
    /// Failed authentication (another key, tampered).
    Unauthentic,
    /// Replayed (its counter seen before, or older than the window).
    Replayed,
}

/// The header of a sealed pipe datagram: its call and key id, once the
/// magic, the version and the length (a header and a tag at least) are right.
pub fn parse_header(b: &[u8]) -> Result<(CallId, u32), CascadeParseError> {
    if b.len() < PIPE_HEADER + PIPE_TAG_LEN {
        return Err(CascadeParseError::Truncated);
    }
    if b[0] != PIPE_MAGIC || b[1] & 0xF0 != VERSION {
        return Err(CascadeParseError::Unknown);
    }
    let mut call = [0u8; 16];
    call.copy_from_slice(&b[2..18]);
    let mut id = [0u8; 4];
    id.copy_from_slice(&b[18..22]);
    Ok((CallId(call), u32::from_be_bytes(id)))
}

/// Parses an opened pipe datagram (header and plaintext); media is a slice
/// of `b` (no copy).
pub fn parse_opened(b: &Bytes) -> Result<(CallId, PipeMessage), CascadeParseError> {
    if b.len() < PIPE_HEADER {
        return Err(CascadeParseError::Truncated);
    }
    if b[0] != PIPE_MAGIC || b[1] & 0xF0 != VERSION {
        return Err(CascadeParseError::Unknown);
    }
    let mut call = [0u8; 16];
    call.copy_from_slice(&b[2..18]);
    let body = &b[PIPE_HEADER..];
    let u64_at = |i: usize| body.get(i..i + 8).map(|s| u64::from_be_bytes(s.try_into().unwrap_or_default()));
    let u32_at = |i: usize| body.get(i..i + 4).map(|s| u32::from_be_bytes(s.try_into().unwrap_or_default()));
    let m = match b[1] & 0x0F {
        MEDIA if !body.is_empty() => PipeMessage::Media(b.slice(PIPE_HEADER..)),
        MEDIA => return Err(CascadeParseError::Truncated),
        OPEN => PipeMessage::Open,
        CLOSE => PipeMessage::Close,
        LEFT => PipeMessage::Left(ParticipantId(u64_at(0).ok_or(CascadeParseError::Truncated)?)),
        REMOVE => PipeMessage::Remove(ParticipantId(u64_at(0).ok_or(CascadeParseError::Truncated)?)),
        PRODUCER => {
            if body.len() < 19 {
                return Err(CascadeParseError::Truncated);
            }
            let participant = ParticipantId(u64_at(0).ok_or(CascadeParseError::Truncated)?);
            let role = Role::from_code(body[8]).ok_or(CascadeParseError::Unknown)?;
            let ssrc = Ssrc(u32_at(9).ok_or(CascadeParseError::Truncated)?);
            let kind = match body[13] {
                0 => MediaKind::Unknown,
                1 => MediaKind::Audio,
                2 => MediaKind::Video,
                _ => return Err(CascadeParseError::Unknown),
            };
            let group = Ssrc(u32_at(14).ok_or(CascadeParseError::Truncated)?);
            let layer = match body[18] {
                NO_LAYER => None,
                index => Some(Layer { group, index }),
            };
            PipeMessage::Producer { participant, role, ssrc, kind, layer }
        }
        _ => return Err(CascadeParseError::Unknown),
    };
    Ok((CallId(call), m))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallId {
        CallId([7; 16])
    }

    fn ends() -> (LinkKeys, LinkKeys) {
        let key = PipeKey::new([0x42; 32]);
        (key.keys(true), key.keys(false))
    }

    #[test]
    fn round_trip() {
        let (home, mut leaf) = ends();
        let layer = Some(Layer { group: Ssrc(5), index: 2 });
        let msgs = [
            PipeMessage::Media(Bytes::from_static(&[0x80, 96, 0, 1])),
            PipeMessage::Open,
            PipeMessage::Close,
            PipeMessage::Left(ParticipantId(u64::MAX)),
            PipeMessage::Remove(ParticipantId(7)),
            PipeMessage::Producer {
                participant: ParticipantId(9),
                role: Role::Mixer,
                ssrc: Ssrc(77),
                kind: MediaKind::Video,
                layer,
            },
            PipeMessage::Producer {
                participant: ParticipantId(1),
                role: Role::Publisher,
                ssrc: Ssrc(1),
                kind: MediaKind::Audio,
                layer: None,
            },
        ];
        for m in msgs {
            let b = seal(&home, call(), &m).unwrap();
            assert!(is_pipe_datagram(&b));
            assert_eq!(parse_header(&b), Ok((call(), home.id)));
            assert_eq!(open(&mut leaf, &b), Ok((call(), m)));
        }
        assert_eq!(seal(&home, call(), &PipeMessage::Grant(ParticipantId(1))), None);
        // Media is encrypted: its bytes do not appear on the wire.
        let secret = [0x80, 96, 0xAB, 0xCD, 0xEF, 0x12, 0x34, 0x56];
        let b = seal(&home, call(), &PipeMessage::Media(Bytes::copy_from_slice(&secret))).unwrap();
        assert!(!b.windows(4).any(|w| w == &secret[2..6]));
    }

    #[test]
    fn malformed_tampered_and_replayed_are_refused() {
        let (home, mut leaf) = ends();
        let good = seal(&home, call(), &PipeMessage::Left(ParticipantId(3))).unwrap();
        for n in 0..good.len() {
            assert!(open(&mut leaf, &good[..n]).is_err(), "truncated to {n}");
        }
        for i in 0..good.len() {
            let mut v = good.to_vec();
            v[i] ^= 0x80;
            assert!(open(&mut leaf, &v).is_err(), "byte {i} flipped");
        }
        // Version 1 (plain) is refused before any key is tried.
        let mut v1 = good.to_vec();
        v1[1] = 0x10 | LEFT;
        assert_eq!(parse_header(&v1), Err(CascadeParseError::Unknown));
        assert_eq!(open(&mut leaf, &good), Ok((call(), PipeMessage::Left(ParticipantId(3)))));
        assert_eq!(open(&mut leaf, &good), Err(CascadeParseError::Replayed));
        // Opened, but an unknown type or an empty media body.
        let mut t = BytesMut::new();
        assert!(encode_into(&mut t, call(), home.id, &PipeMessage::Open));
        t[1] = VERSION | 9;
        home.sealer.seal(&mut t, 0, PIPE_HEADER).unwrap();
        assert_eq!(open(&mut leaf, &t), Err(CascadeParseError::Unknown));
        let media = seal(&home, call(), &PipeMessage::Media(Bytes::new())).unwrap();
        assert_eq!(open(&mut leaf, &media), Err(CascadeParseError::Truncated));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            let (_, mut leaf) = ends();
            let mut b = b;
            if b.len() > 1 {
                b[0] = PIPE_MAGIC;
                b[1] = VERSION | (b[1] & 0x0F);
            }
            let _ = open(&mut leaf, &b);
            let _ = parse_opened(&Bytes::from(b));
        }
    }
}

//! The wire format of pipe datagrams between routers (big-endian, version
//! 2; see `router/PROTOCOL.md` §6):
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
//!               (0xFF: no layer); then, optionally (a router that sends
//!               none reads as a native client's), the sender's format:
//!               audio-level id u8, Dependency Descriptor id u8 (0: none),
//!               n u8, n × (payload type u8, codec u8: 1 Opus, 2 AV1,
//!               3 VP8, 4 H.264, 5 RTX)
//! T=4 Left      participant u64
//! T=5 Close     (empty)
//! T=6 Remove    participant u64 (home to leaf: the control plane removed it)
//! ```
//!
//! A body longer than its type needs is read up to what it needs (later
//! fields go at the end, unread by older routers, as the sender's format
//! went after the layer); a format entry of an unknown codec is skipped
//! (a later codec: its packets read as of no codec known here), one whose
//! payload type is above 127 is malformed.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use corecast_proto::pipe_seal::{LinkKeys, PipeSealError, PIPE_TAG_LEN};
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::pipe::PipeMessage;
use crate::simulcast::Layer;
use crate::webrtc::{Codec, SenderFormat};

/// The first byte of every pipe datagram (unused by RFC 7983's demux:
/// not STUN, DTLS, TURN or RTP/RTCP).
pub const PIPE_MAGIC: u8 = 0xCC;
/// The version in the second byte's high nibble: 2, sealed (version 1
/// was plain and is refused, counted as malformed).
const VERSION: u8 = 0x20;
/// Magic, version and type, call id, key id, counter: the AAD.
pub const PIPE_HEADER: usize = 30;

const MEDIA: u8 = 1;
const OPEN: u8 = 2;
const PRODUCER: u8 = 3;
const LEFT: u8 = 4;
const CLOSE: u8 = 5;
const REMOVE: u8 = 6;
const NO_LAYER: u8 = 0xFF;
/// A producer's fields before its (optional) sender format.
const PRODUCER_LEN: usize = 19;
/// The highest RTP payload type (7 bits).
const MAX_PAYLOAD_TYPE: u8 = 127;

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
        PipeMessage::Producer { participant, role, ssrc, kind, layer, format } => {
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
            if let Some(f) = format {
                put_format(out, f);
            }
        }
        PipeMessage::Left(p) | PipeMessage::Remove(p) => out.put_u64(p.0),
        _ => {}
    }
    true
}

/// Seals one message of `call` with `keys` (this end's) as one datagram:
/// for tests, fuzzing and tools (the router seals in its arena, see
/// `Outbox::cascade`). `None`: never sent to another router, or the
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
            if body.len() < PRODUCER_LEN {
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
            let format = parse_format(&body[PRODUCER_LEN..])?.map(Arc::new);
            PipeMessage::Producer { participant, role, ssrc, kind, layer, format }
        }
        _ => return Err(CascadeParseError::Unknown),
    };
    Ok((CallId(call), m))
}

/// Appends `f` (a producer's sender format): its extension ids, then its
/// payload types and their codecs (at most 255; none above 127, which no
/// RTP packet carries).
fn put_format(out: &mut BytesMut, f: &SenderFormat) {
    let codecs = || f.codecs.iter().filter(|(pt, _)| *pt <= MAX_PAYLOAD_TYPE).take(usize::from(u8::MAX));
    out.put_u8(f.audio_level);
    out.put_u8(f.dependency_descriptor);
    out.put_u8(codecs().count() as u8);
    for (pt, codec) in codecs() {
        out.put_u8(*pt);
        out.put_u8(codec_code(*codec));
    }
}

/// The sender format that follows a producer's fields (`None`: there is
/// none, an older router's announcement). Entries of unknown codecs are
/// skipped; bytes after the entries are left unread.
fn parse_format(b: &[u8]) -> Result<Option<SenderFormat>, CascadeParseError> {
    let Some((&[audio_level, dependency_descriptor, n], rest)) = b.split_first_chunk::<3>() else {
        return if b.is_empty() { Ok(None) } else { Err(CascadeParseError::Truncated) };
    };
    let entries = rest.get(..2 * usize::from(n)).ok_or(CascadeParseError::Truncated)?;
    let mut codecs = Vec::with_capacity(usize::from(n));
    for e in entries.chunks_exact(2) {
        if e[0] > MAX_PAYLOAD_TYPE {
            return Err(CascadeParseError::Unknown);
        }
        if let Some(codec) = codec_of(e[1]) {
            codecs.push((e[0], codec));
        }
    }
    Ok(Some(SenderFormat { codecs, audio_level, dependency_descriptor }))
}

/// A codec's code on the wire.
fn codec_code(c: Codec) -> u8 {
    match c {
        Codec::Opus => 1,
        Codec::Av1 => 2,
        Codec::Vp8 => 3,
        Codec::H264 => 4,
        Codec::Rtx => 5,
    }
}

/// The codec of a code on the wire (`None`: one this router does not know).
fn codec_of(code: u8) -> Option<Codec> {
    Some(match code {
        1 => Codec::Opus,
        2 => Codec::Av1,
        3 => Codec::Vp8,
        4 => Codec::H264,
        5 => Codec::Rtx,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast_proto::pipe_seal::PipeKey;

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
                format: Some(Arc::new(browser())),
            },
            PipeMessage::Producer {
                participant: ParticipantId(1),
                role: Role::Publisher,
                ssrc: Ssrc(1),
                kind: MediaKind::Audio,
                layer: None,
                format: None,
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

    /// A browser's format: Opus 111, AV1 35 (its RTX 36), VP8 100; the
    /// audio level under 5, the Dependency Descriptor under 12.
    fn browser() -> SenderFormat {
        SenderFormat {
            codecs: vec![(111, Codec::Opus), (35, Codec::Av1), (36, Codec::Rtx), (100, Codec::Vp8), (108, Codec::H264)],
            audio_level: 5,
            dependency_descriptor: 12,
        }
    }

    /// A producer's announcement as opened (header and plaintext), with `format`.
    fn announced(format: Option<SenderFormat>) -> BytesMut {
        let m = PipeMessage::Producer {
            participant: ParticipantId(3),
            role: Role::Publisher,
            ssrc: Ssrc(0xB0),
            kind: MediaKind::Video,
            layer: None,
            format: format.map(Arc::new),
        };
        let mut b = BytesMut::new();
        assert!(encode_into(&mut b, call(), 1, &m));
        b
    }

    fn format_of(b: &[u8]) -> Result<Option<SenderFormat>, CascadeParseError> {
        match parse_opened(&Bytes::copy_from_slice(b))? {
            (_, PipeMessage::Producer { format, .. }) => Ok(format.map(|f| (*f).clone())),
            (_, m) => panic!("{m:?}"),
        }
    }

    #[test]
    fn a_producers_format_round_trips_and_a_cut_or_bad_one_is_refused() {
        let full = announced(Some(browser()));
        let fields = PIPE_HEADER + PRODUCER_LEN;
        assert_eq!(full.len(), fields + 3 + 2 * 5);
        assert_eq!(format_of(&full), Ok(Some(browser())));
        // An older router's announcement (the producer's fields only) reads as one without a format ...
        assert_eq!(&full[..fields], &announced(None)[..]);
        assert_eq!(format_of(&full[..fields]), Ok(None));
        // ... and one cut anywhere in the format is refused.
        for n in fields + 1..full.len() {
            assert_eq!(format_of(&full[..n]), Err(CascadeParseError::Truncated), "cut to {n}");
        }
        // An empty table is a format (extension ids, no payload type known).
        let empty = SenderFormat { codecs: vec![], ..browser() };
        assert_eq!(format_of(&announced(Some(empty.clone()))), Ok(Some(empty)));
        // Later fields after the format are left unread.
        let mut longer = full.clone();
        longer.extend_from_slice(&[9, 9, 9]);
        assert_eq!(format_of(&longer), Ok(Some(browser())));
        // An unknown codec (a later router's) is skipped; a payload type above 127 is malformed.
        let mut later = full.clone();
        later[fields + 3 + 1] = 0x40; // 111's codec
        let rest = SenderFormat { codecs: browser().codecs[1..].to_vec(), ..browser() };
        assert_eq!(format_of(&later), Ok(Some(rest)));
        let mut bad = full.clone();
        bad[fields + 3 + 2] = 0x80 | 35;
        assert_eq!(format_of(&bad), Err(CascadeParseError::Unknown));
        // Such a payload type is never written.
        let mut odd = browser();
        odd.codecs.insert(0, (200, Codec::Vp8));
        assert_eq!(format_of(&announced(Some(odd))), Ok(Some(browser())));
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

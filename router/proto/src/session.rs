//! corecast session messages, framed as STUN (RFC 8489) so that one UDP port
//! carries them beside RTP and RTCP (RFC 7983 demultiplexing), and so that a
//! later ICE-lite front end can share the same parser.
//!
//! | message    | STUN class / method            | attributes                              |
//! |------------|--------------------------------|-----------------------------------------|
//! | Join       | Binding request (0x0001)       | TOKEN, SSRCS?, MEDIA?, QUALITY?          |
//! | JoinAck    | Binding success (0x0101)       | XOR-MAPPED-ADDRESS, PARTICIPANT, TIMEOUT |
//! | JoinError  | Binding error (0x0111)         | ERROR-CODE, ALTERNATE-SERVER?            |
//! | Keepalive  | Binding indication (0x0011)    | (none)                                   |
//! | Leave      | Binding indication (0x0011)    | LEAVE                                    |
//! | Quality    | Binding indication (0x0011)    | QUALITY                                  |
//! | CallEnded  | Binding indication (0x0011)    | CALL-ENDED                               |
//!
//! See `router/PROTOCOL.md` for byte layouts and flows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ids::{MediaKind, Ssrc};

/// STUN magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// STUN header length.
pub const HEADER_LEN: usize = 20;
/// Largest session message accepted.
pub const MAX_LEN: usize = 1200;
/// Most SSRCs one join may declare.
pub const MAX_SSRCS: usize = 16;

/// Attribute types (comprehension-optional private range for corecast's own).
pub mod attr {
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: u16 = 0x0009;
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    pub const ALTERNATE_SERVER: u16 = 0x8023;
    /// The 98-byte join token.
    pub const TOKEN: u16 = 0xC001;
    /// SSRCs the participant will send, 4 bytes each.
    pub const SSRCS: u16 = 0xC002;
    /// Requested quality: 1 byte, 0 = HD, 1 = SD.
    pub const QUALITY: u16 = 0xC003;
    /// Participant id, 8 bytes.
    pub const PARTICIPANT: u16 = 0xC004;
    /// Silence timeout the router applies, u32 milliseconds.
    pub const TIMEOUT: u16 = 0xC005;
    /// Leave marker (empty).
    pub const LEAVE: u16 = 0xC006;
    /// Call-ended marker (empty).
    pub const CALL_ENDED: u16 = 0xC007;
    /// Media kind of each SSRC in SSRCS, 1 byte each in the same order (0 audio, 1 video, 2 unknown).
    pub const MEDIA: u16 = 0xC008;
}

/// Why a datagram is not a valid session message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Shorter than the header, or than the length it announces.
    #[error("session message truncated")]
    Truncated,
    /// Not a STUN message (top bits, cookie, or length not a multiple of 4).
    #[error("not a STUN message")]
    NotStun,
    /// Larger than [`MAX_LEN`].
    #[error("session message too large")]
    TooLarge,
    /// A STUN message that is not one of corecast's session messages.
    #[error("unknown session message")]
    Unknown,
    /// A required attribute is missing or malformed.
    #[error("session attribute missing or malformed: {0:#06x}")]
    Attribute(u16),
}

/// STUN message class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Request.
    Request,
    /// Indication.
    Indication,
    /// Success response.
    Success,
    /// Error response.
    Error,
}

/// A raw STUN message: class, method, transaction id and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunMessage {
    /// Message class.
    pub class: Class,
    /// 12-bit method (Binding is 1).
    pub method: u16,
    /// Transaction id.
    pub txid: [u8; 12],
    /// Attributes in order, `(type, value)`.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl StunMessage {
    /// Parses a STUN message.
    pub fn parse(b: &[u8]) -> Result<StunMessage, SessionError> {
        if b.len() > MAX_LEN {
            return Err(SessionError::TooLarge);
        }
        if b.len() < HEADER_LEN {
            return Err(SessionError::Truncated);
        }
        let ty = u16::from_be_bytes([b[0], b[1]]);
        if ty & 0xC000 != 0 {
            return Err(SessionError::NotStun);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if u32::from_be_bytes([b[4], b[5], b[6], b[7]]) != MAGIC_COOKIE || !len.is_multiple_of(4) {
            return Err(SessionError::NotStun);
        }
        if b.len() != HEADER_LEN + len {
            return Err(SessionError::Truncated);
        }
        let class = match ((ty >> 7) & 2) | ((ty >> 4) & 1) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::Success,
            _ => Class::Error,
        };
        let method = (ty & 0x000F) | ((ty & 0x00E0) >> 1) | ((ty & 0x3E00) >> 2);
        let mut txid = [0u8; 12];
        txid.copy_from_slice(&b[8..20]);
        let mut attrs = Vec::new();
        let mut p = HEADER_LEN;
        while p < b.len() {
            if p + 4 > b.len() {
                return Err(SessionError::Truncated);
            }
            let t = u16::from_be_bytes([b[p], b[p + 1]]);
            let l = u16::from_be_bytes([b[p + 2], b[p + 3]]) as usize;
            let s = p + 4;
            if s + l > b.len() {
                return Err(SessionError::Truncated);
            }
            attrs.push((t, b[s..s + l].to_vec()));
            p = s + l.div_ceil(4) * 4;
        }
        Ok(StunMessage { class, method, txid, attrs })
    }

    /// Serializes the message.
    pub fn to_vec(&self) -> Vec<u8> {
        let c = match self.class {
            Class::Request => 0u16,
            Class::Indication => 1,
            Class::Success => 2,
            Class::Error => 3,
        };
        let m = self.method & 0x0FFF;
        let ty = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7);
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.txid);
        for (t, v) in &self.attrs {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let len = (out.len() - HEADER_LEN) as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    fn get(&self, t: u16) -> Option<&[u8]> {
        self.attrs.iter().find(|(ty, _)| *ty == t).map(|(_, v)| v.as_slice())
    }
}

/// Requested media quality for a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// Every other participant's streams as received.
    #[default]
    Hd,
    /// The call's composite stream from the codec pool, plus audio.
    Sd,
}

/// Error codes carried in JoinError.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinErrorCode {
    /// 300: the call lives on another port of this router (ALTERNATE-SERVER says which).
    TryAlternate,
    /// 400: the join message is malformed.
    BadRequest,
    /// 401: the token is malformed, forged or expired.
    Unauthorized,
    /// 403: the token is valid but the join is not allowed (call ended, SSRC taken).
    Forbidden,
    /// 486: the call is full.
    CallFull,
    /// 508: the router is at capacity.
    Overloaded,
}

impl JoinErrorCode {
    /// Numeric code.
    pub fn code(self) -> u16 {
        match self {
            JoinErrorCode::TryAlternate => 300,
            JoinErrorCode::BadRequest => 400,
            JoinErrorCode::Unauthorized => 401,
            JoinErrorCode::Forbidden => 403,
            JoinErrorCode::CallFull => 486,
            JoinErrorCode::Overloaded => 508,
        }
    }
    /// From numeric code.
    pub fn from_code(c: u16) -> Option<Self> {
        Some(match c {
            300 => JoinErrorCode::TryAlternate,
            400 => JoinErrorCode::BadRequest,
            401 => JoinErrorCode::Unauthorized,
            403 => JoinErrorCode::Forbidden,
            486 => JoinErrorCode::CallFull,
            508 => JoinErrorCode::Overloaded,
            _ => return None,
        })
    }
}

/// A corecast session message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMessage {
    /// Client → router: join with a token.
    Join {
        /// Transaction id, echoed in the reply.
        txid: [u8; 12],
        /// The 98-byte join token.
        token: Vec<u8>,
        /// SSRCs the participant will send, with their kinds (empty: learn them on first use).
        ssrcs: Vec<(Ssrc, MediaKind)>,
        /// Requested quality.
        quality: Quality,
    },
    /// Router → client: joined.
    JoinAck {
        /// Transaction id of the join.
        txid: [u8; 12],
        /// The address the router saw the join from.
        mapped: SocketAddr,
        /// Participant id from the token.
        participant: u64,
        /// Silence timeout in milliseconds: send something more often than that.
        timeout_ms: u32,
    },
    /// Router → client: join refused.
    JoinError {
        /// Transaction id of the join.
        txid: [u8; 12],
        /// Why.
        code: JoinErrorCode,
        /// Human-readable reason.
        reason: String,
        /// Where to join instead (with [`JoinErrorCode::TryAlternate`]).
        alternate: Option<SocketAddr>,
    },
    /// Client → router: I am still here.
    Keepalive {
        /// Transaction id (unused, random).
        txid: [u8; 12],
    },
    /// Client → router: I am leaving.
    Leave {
        /// Transaction id (unused, random).
        txid: [u8; 12],
    },
    /// Client → router: switch my receive quality.
    Quality {
        /// Transaction id (unused, random).
        txid: [u8; 12],
        /// Requested quality.
        quality: Quality,
    },
    /// Router → client: the call has ended or you were removed.
    CallEnded {
        /// Transaction id (random).
        txid: [u8; 12],
    },
}

const BINDING: u16 = 1;

fn xor_addr(a: SocketAddr, txid: &[u8; 12]) -> Vec<u8> {
    let mut v = vec![0u8];
    let port = a.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match a.ip() {
        IpAddr::V4(ip) => {
            v.push(1);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
        }
        IpAddr::V6(ip) => {
            v.push(2);
            v.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let o = ip.octets();
            v.extend((0..16).map(|i| o[i] ^ key[i]));
        }
    }
    v
}

fn parse_xor_addr(v: &[u8], txid: &[u8; 12], t: u16) -> Result<SocketAddr, SessionError> {
    let e = SessionError::Attribute(t);
    if v.len() < 4 {
        return Err(e);
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (v[1], v.len()) {
        (1, 8) => {
            let ip = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC_COOKIE;
            Ok(SocketAddr::new(Ipv4Addr::from(ip).into(), port))
        }
        (2, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let mut o = [0u8; 16];
            for i in 0..16 {
                o[i] = v[4 + i] ^ key[i];
            }
            Ok(SocketAddr::new(Ipv6Addr::from(o).into(), port))
        }
        _ => Err(e),
    }
}

fn plain_addr(a: SocketAddr) -> Vec<u8> {
    let mut v = vec![0u8];
    match a.ip() {
        IpAddr::V4(ip) => {
            v.push(1);
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            v.push(2);
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&ip.octets());
        }
    }
    v
}

fn parse_plain_addr(v: &[u8]) -> Result<SocketAddr, SessionError> {
    let e = SessionError::Attribute(attr::ALTERNATE_SERVER);
    if v.len() < 4 {
        return Err(e);
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    match (v[1], v.len()) {
        (1, 8) => Ok(SocketAddr::new(Ipv4Addr::new(v[4], v[5], v[6], v[7]).into(), port)),
        (2, 20) => {
            let o: [u8; 16] = v[4..20].try_into().map_err(|_| e)?;
            Ok(SocketAddr::new(Ipv6Addr::from(o).into(), port))
        }
        _ => Err(e),
    }
}

fn quality_attr(q: Quality) -> Vec<u8> {
    vec![match q {
        Quality::Hd => 0,
        Quality::Sd => 1,
    }]
}

fn parse_quality(v: &[u8]) -> Result<Quality, SessionError> {
    match v {
        [0] => Ok(Quality::Hd),
        [1] => Ok(Quality::Sd),
        _ => Err(SessionError::Attribute(attr::QUALITY)),
    }
}

/// What the router's answer to a join means for the joining side
/// ([`SessionMessage::join_reply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinReply {
    /// Admitted.
    Admitted {
        /// Participant id from the token.
        participant: u64,
        /// The router's silence timeout, milliseconds.
        timeout_ms: u32,
    },
    /// Join this other worker instead (300 Try Alternate).
    Redirect(SocketAddr),
    /// Refused.
    Refused {
        /// Why.
        code: JoinErrorCode,
        /// The router's words.
        reason: String,
    },
}

/// Parses `datagram` as the answer to the join with `txid`; `None` if it is
/// anything else (another transaction, media, garbage).
pub fn join_reply(datagram: &[u8], txid: &[u8; 12]) -> Option<JoinReply> {
    match SessionMessage::parse(datagram).ok()? {
        SessionMessage::JoinAck { txid: t, participant, timeout_ms, .. } if &t == txid => {
            Some(JoinReply::Admitted { participant, timeout_ms })
        }
        SessionMessage::JoinError { txid: t, code: JoinErrorCode::TryAlternate, alternate: Some(alt), .. }
            if &t == txid =>
        {
            Some(JoinReply::Redirect(alt))
        }
        SessionMessage::JoinError { txid: t, code, reason, .. } if &t == txid => {
            Some(JoinReply::Refused { code, reason })
        }
        _ => None,
    }
}

impl SessionMessage {
    /// Parses a session message.
    pub fn parse(b: &[u8]) -> Result<SessionMessage, SessionError> {
        let m = StunMessage::parse(b)?;
        if m.method != BINDING {
            return Err(SessionError::Unknown);
        }
        let txid = m.txid;
        match m.class {
            Class::Request => {
                let token = m.get(attr::TOKEN).ok_or(SessionError::Attribute(attr::TOKEN))?.to_vec();
                let list: Vec<Ssrc> = match m.get(attr::SSRCS) {
                    None => Vec::new(),
                    Some(v) if v.len().is_multiple_of(4) && v.len() / 4 <= MAX_SSRCS => {
                        v.chunks_exact(4).map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
                    }
                    Some(_) => return Err(SessionError::Attribute(attr::SSRCS)),
                };
                let kinds: Vec<MediaKind> = match m.get(attr::MEDIA) {
                    None => vec![MediaKind::Unknown; list.len()],
                    Some(v) if v.len() == list.len() => v
                        .iter()
                        .map(|&c| MediaKind::from_code(c))
                        .collect::<Option<_>>()
                        .ok_or(SessionError::Attribute(attr::MEDIA))?,
                    Some(_) => return Err(SessionError::Attribute(attr::MEDIA)),
                };
                let ssrcs = list.into_iter().zip(kinds).collect();
                let quality = m.get(attr::QUALITY).map(parse_quality).transpose()?.unwrap_or_default();
                Ok(SessionMessage::Join { txid, token, ssrcs, quality })
            }
            Class::Success => {
                let mapped = parse_xor_addr(
                    m.get(attr::XOR_MAPPED_ADDRESS).ok_or(SessionError::Attribute(attr::XOR_MAPPED_ADDRESS))?,
                    &txid,
                    attr::XOR_MAPPED_ADDRESS,
                )?;
                let participant = m
                    .get(attr::PARTICIPANT)
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    .map(u64::from_be_bytes)
                    .ok_or(SessionError::Attribute(attr::PARTICIPANT))?;
                let timeout_ms = m
                    .get(attr::TIMEOUT)
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_be_bytes)
                    .ok_or(SessionError::Attribute(attr::TIMEOUT))?;
                Ok(SessionMessage::JoinAck { txid, mapped, participant, timeout_ms })
            }
            Class::Error => {
                let v = m.get(attr::ERROR_CODE).ok_or(SessionError::Attribute(attr::ERROR_CODE))?;
                if v.len() < 4 {
                    return Err(SessionError::Attribute(attr::ERROR_CODE));
                }
                let num = (v[2] & 7) as u16 * 100 + v[3] as u16;
                let code = JoinErrorCode::from_code(num).ok_or(SessionError::Attribute(attr::ERROR_CODE))?;
                let reason = String::from_utf8_lossy(&v[4..]).into_owned();
                let alternate = m.get(attr::ALTERNATE_SERVER).map(parse_plain_addr).transpose()?;
                Ok(SessionMessage::JoinError { txid, code, reason, alternate })
            }
            Class::Indication => {
                if m.get(attr::LEAVE).is_some() {
                    Ok(SessionMessage::Leave { txid })
                } else if m.get(attr::CALL_ENDED).is_some() {
                    Ok(SessionMessage::CallEnded { txid })
                } else if let Some(q) = m.get(attr::QUALITY) {
                    Ok(SessionMessage::Quality { txid, quality: parse_quality(q)? })
                } else {
                    Ok(SessionMessage::Keepalive { txid })
                }
            }
        }
    }

    /// Serializes the message.
    pub fn to_vec(&self) -> Vec<u8> {
        let (class, txid, attrs) = match self {
            SessionMessage::Join { txid, token, ssrcs, quality } => {
                let mut a = vec![(attr::TOKEN, token.clone())];
                if !ssrcs.is_empty() {
                    a.push((attr::SSRCS, ssrcs.iter().flat_map(|(s, _)| s.0.to_be_bytes()).collect()));
                    if ssrcs.iter().any(|(_, k)| *k != MediaKind::Unknown) {
                        a.push((attr::MEDIA, ssrcs.iter().map(|(_, k)| k.code()).collect()));
                    }
                }
                if *quality != Quality::Hd {
                    a.push((attr::QUALITY, quality_attr(*quality)));
                }
                (Class::Request, txid, a)
            }
            SessionMessage::JoinAck { txid, mapped, participant, timeout_ms } => (
                Class::Success,
                txid,
                vec![
                    (attr::XOR_MAPPED_ADDRESS, xor_addr(*mapped, txid)),
                    (attr::PARTICIPANT, participant.to_be_bytes().to_vec()),
                    (attr::TIMEOUT, timeout_ms.to_be_bytes().to_vec()),
                ],
            ),
            SessionMessage::JoinError { txid, code, reason, alternate } => {
                let n = code.code();
                let mut v = vec![0, 0, (n / 100) as u8, (n % 100) as u8];
                // Keep the reason within STUN's 763-byte limit on whole characters.
                let mut r = reason.as_str();
                while r.len() > 500 {
                    let mut cut = 500;
                    while !r.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    r = &r[..cut];
                }
                v.extend_from_slice(r.as_bytes());
                let mut a = vec![(attr::ERROR_CODE, v)];
                if let Some(alt) = alternate {
                    a.push((attr::ALTERNATE_SERVER, plain_addr(*alt)));
                }
                (Class::Error, txid, a)
            }
            SessionMessage::Keepalive { txid } => (Class::Indication, txid, vec![]),
            SessionMessage::Leave { txid } => (Class::Indication, txid, vec![(attr::LEAVE, vec![])]),
            SessionMessage::Quality { txid, quality } => {
                (Class::Indication, txid, vec![(attr::QUALITY, quality_attr(*quality))])
            }
            SessionMessage::CallEnded { txid } => (Class::Indication, txid, vec![(attr::CALL_ENDED, vec![])]),
        };
        StunMessage { class, method: BINDING, txid: *txid, attrs }.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn join_replies_are_classified_for_their_transaction_only() {
        let (t, other) = ([1u8; 12], [2u8; 12]);
        let mapped: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let ack = SessionMessage::JoinAck { txid: t, mapped, participant: 7, timeout_ms: 15_000 }.to_vec();
        assert_eq!(join_reply(&ack, &t), Some(JoinReply::Admitted { participant: 7, timeout_ms: 15_000 }));
        assert_eq!(join_reply(&ack, &other), None, "another transaction");
        let alt: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let redirect = SessionMessage::JoinError {
            txid: t,
            code: JoinErrorCode::TryAlternate,
            reason: "other worker".into(),
            alternate: Some(alt),
        };
        assert_eq!(join_reply(&redirect.to_vec(), &t), Some(JoinReply::Redirect(alt)));
        let refused =
            SessionMessage::JoinError { txid: t, code: JoinErrorCode::Forbidden, reason: "no".into(), alternate: None };
        assert_eq!(
            join_reply(&refused.to_vec(), &t),
            Some(JoinReply::Refused { code: JoinErrorCode::Forbidden, reason: "no".into() })
        );
        assert_eq!(join_reply(b"\x80\x60 not a session message", &t), None);
        assert_eq!(join_reply(&[], &t), None);
    }

    /// RFC 5769 §2.1 sample request header: a Binding request parses as STUN.
    #[test]
    fn rfc5769_request_header() {
        let mut b = vec![
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
            0xdf, 0xae,
        ];
        let m = StunMessage::parse(&b).unwrap();
        assert_eq!((m.class, m.method), (Class::Request, 1));
        assert_eq!(m.to_vec(), b);
        // RFC 5769 §2.2 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853
        b[0] = 0x01;
        b[1] = 0x01;
        b[3] = 12;
        b.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
        let m = StunMessage::parse(&b).unwrap();
        assert_eq!(m.class, Class::Success);
        let a = parse_xor_addr(&m.attrs[0].1, &m.txid, 0x20).unwrap();
        assert_eq!(a, "192.0.2.1:32853".parse().unwrap());
    }

    #[test]
    fn malformed() {
        assert_eq!(SessionMessage::parse(&[0; 4]), Err(SessionError::Truncated));
        let mut j = SessionMessage::Keepalive { txid: [1; 12] }.to_vec();
        j[4] = 0;
        assert_eq!(SessionMessage::parse(&j), Err(SessionError::NotStun));
        let join = SessionMessage::Join { txid: [1; 12], token: vec![1; 98], ssrcs: vec![], quality: Quality::Hd };
        let kinds_mismatch = StunMessage {
            class: Class::Request,
            method: 1,
            txid: [0; 12],
            attrs: vec![(attr::TOKEN, vec![1; 98]), (attr::SSRCS, vec![0, 0, 0, 1]), (attr::MEDIA, vec![0, 1])],
        };
        assert_eq!(SessionMessage::parse(&kinds_mismatch.to_vec()), Err(SessionError::Attribute(attr::MEDIA)));
        let mut b = join.to_vec();
        b.truncate(b.len() - 4);
        assert_eq!(SessionMessage::parse(&b), Err(SessionError::Truncated));
        let no_token = StunMessage { class: Class::Request, method: 1, txid: [0; 12], attrs: vec![] };
        assert_eq!(SessionMessage::parse(&no_token.to_vec()), Err(SessionError::Attribute(attr::TOKEN)));
        let other = StunMessage { class: Class::Request, method: 3, txid: [0; 12], attrs: vec![] };
        assert_eq!(SessionMessage::parse(&other.to_vec()), Err(SessionError::Unknown));
        assert_eq!(SessionMessage::parse(&vec![0u8; 2000]), Err(SessionError::TooLarge));
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<u32>(), any::<u16>()).prop_map(|(i, p)| SocketAddr::new(Ipv4Addr::from(i).into(), p)),
            (any::<u128>(), any::<u16>()).prop_map(|(i, p)| SocketAddr::new(Ipv6Addr::from(i).into(), p)),
        ]
    }

    fn arb_msg() -> impl Strategy<Value = SessionMessage> {
        let tx = any::<[u8; 12]>();
        let q = prop_oneof![Just(Quality::Hd), Just(Quality::Sd)];
        prop_oneof![
            (
                tx,
                proptest::collection::vec(any::<u8>(), 1..120),
                proptest::collection::vec((any::<u32>(), 0u8..3), 0..=16),
                q.clone()
            )
                .prop_map(|(txid, token, s, quality)| SessionMessage::Join {
                    txid,
                    token,
                    ssrcs: s.into_iter().map(|(x, k)| (Ssrc(x), MediaKind::from_code(k).unwrap())).collect(),
                    quality
                }),
            (tx, arb_addr(), any::<u64>(), any::<u32>()).prop_map(|(txid, mapped, participant, timeout_ms)| {
                SessionMessage::JoinAck { txid, mapped, participant, timeout_ms }
            }),
            (
                tx,
                prop_oneof![Just(300u16), Just(400), Just(401), Just(403), Just(486), Just(508)],
                "[a-z ]{0,40}",
                proptest::option::of(arb_addr())
            )
                .prop_map(|(txid, c, reason, alternate)| SessionMessage::JoinError {
                    txid,
                    code: JoinErrorCode::from_code(c).unwrap(),
                    reason,
                    alternate
                }),
            tx.prop_map(|txid| SessionMessage::Keepalive { txid }),
            tx.prop_map(|txid| SessionMessage::Leave { txid }),
            tx.prop_map(|txid| SessionMessage::CallEnded { txid }),
            (tx, q).prop_map(|(txid, quality)| SessionMessage::Quality { txid, quality }),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(m in arb_msg()) {
            let b = m.to_vec();
            prop_assert_eq!(b.len() % 4, 0);
            prop_assert_eq!(crate::demux::classify(&b), crate::demux::Kind::Stun);
            prop_assert_eq!(SessionMessage::parse(&b).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SessionMessage::parse(&b);
        }

        #[test]
        fn stun_framed_garbage_never_panics(tx in any::<[u8;12]>(), body in proptest::collection::vec(any::<u8>(), 0..64), ty in any::<u16>()) {
            let mut b = vec![];
            b.extend_from_slice(&(ty & 0x3fff).to_be_bytes());
            let len = (body.len() / 4 * 4) as u16;
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            b.extend_from_slice(&tx);
            b.extend_from_slice(&body[..len as usize]);
            let _ = SessionMessage::parse(&b);
        }
    }
}

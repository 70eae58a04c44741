//! The session messages and their mapping onto STUN Binding messages.

use super::stun::{parse_plain_addr, parse_xor_addr, plain_addr, xor_addr};
use super::{attr, Class, SessionError, StunMessage, MAX_SSRCS};
use crate::ids::{MediaKind, Ssrc};
use crate::join_key::{JoinKey, NATIVE_SRTP_PROFILE};
use std::net::SocketAddr;

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
        /// Media over SRTP with the keys of the join key
        /// ([`JoinKey::native_srtp_keys`]); `false`: plain RTP.
        srtp: bool,
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
    /// Client → router: receive only the video of the call's `n` most
    /// active speakers (Last-N; `n` 0: everyone's, the default).
    LastN {
        /// Transaction id (unused, random).
        txid: [u8; 12],
        /// How many speakers' video.
        n: u8,
    },
    /// Client → router: send me no video taller than `height` pixels where
    /// a source has a smaller layer (simulcast layers, SVC spatial layers;
    /// 0: no limit, the default). Like a WHEP leg's `max_height`.
    MaxHeight {
        /// Transaction id (unused, random).
        txid: [u8; 12],
        /// The tallest video wanted: 0 or within [`MAX_HEIGHT_RANGE`].
        height: u16,
    },
    /// Client → router: these video streams it sends are simulcast layers
    /// of one source, lowest quality first (2 to [`MAX_LAYERS`] SSRCs it
    /// declared or sent). Each receiver gets one layer, as one stream under
    /// the first SSRC.
    Simulcast {
        /// Transaction id (unused, random).
        txid: [u8; 12],
        /// The layers' SSRCs, lowest quality first.
        layers: Vec<Ssrc>,
    },
    /// Router → client: the call has ended or you were removed.
    CallEnded {
        /// Transaction id (random).
        txid: [u8; 12],
    },
    /// Router → client: prove, from the address this reaches, that you
    /// hold the join key (a join for an admitted participant came from a
    /// new address; answered with [`CheckReply`](Self::CheckReply)).
    Check {
        /// Transaction id (unpredictable without the key), echoed in the reply.
        txid: [u8; 12],
    },
    /// Client → router: the answer to a [`Check`](Self::Check), signed.
    CheckReply {
        /// The check's transaction id.
        txid: [u8; 12],
    },
}

const BINDING: u16 = 1;

/// Simulcast layers per source at most (a [`SessionMessage::Simulcast`]).
pub const MAX_LAYERS: usize = 4;

/// The heights a client may ask for (pixels: 16 up to 8K), in a
/// [`SessionMessage::MaxHeight`] as in a WHEP leg's `max_height`.
pub const MAX_HEIGHT_RANGE: std::ops::RangeInclusive<u16> = 16..=4320;

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

impl SessionMessage {
    /// Parses a session message.
    pub fn parse(b: &[u8]) -> Result<SessionMessage, SessionError> {
        let m = StunMessage::parse(b)?;
        if m.method != BINDING {
            return Err(SessionError::Unknown);
        }
        let txid = m.txid;
        match m.class {
            Class::Request if m.get(attr::CHECK).is_some() => Ok(SessionMessage::Check { txid }),
            Class::Success if m.get(attr::CHECK).is_some() => Ok(SessionMessage::CheckReply { txid }),
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
                let srtp = match m.get(attr::SRTP) {
                    None => false,
                    Some(v) if v == NATIVE_SRTP_PROFILE.dtls_id().to_be_bytes() => true,
                    Some(_) => return Err(SessionError::Attribute(attr::SRTP)),
                };
                Ok(SessionMessage::Join { txid, token, ssrcs, quality, srtp })
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
                } else if let Some(v) = m.get(attr::LAST_N) {
                    match v {
                        [n] => Ok(SessionMessage::LastN { txid, n: *n }),
                        _ => Err(SessionError::Attribute(attr::LAST_N)),
                    }
                } else if let Some(v) = m.get(attr::MAX_HEIGHT) {
                    let height = match v {
                        [a, b] => u16::from_be_bytes([*a, *b]),
                        _ => return Err(SessionError::Attribute(attr::MAX_HEIGHT)),
                    };
                    if height != 0 && !MAX_HEIGHT_RANGE.contains(&height) {
                        return Err(SessionError::Attribute(attr::MAX_HEIGHT));
                    }
                    Ok(SessionMessage::MaxHeight { txid, height })
                } else if let Some(v) = m.get(attr::SIMULCAST) {
                    let n = v.len() / 4;
                    if !v.len().is_multiple_of(4) || !(2..=MAX_LAYERS).contains(&n) {
                        return Err(SessionError::Attribute(attr::SIMULCAST));
                    }
                    let layers: Vec<Ssrc> =
                        v.chunks_exact(4).map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect();
                    if layers.iter().enumerate().any(|(i, s)| layers[..i].contains(s)) {
                        return Err(SessionError::Attribute(attr::SIMULCAST));
                    }
                    Ok(SessionMessage::Simulcast { txid, layers })
                } else if let Some(q) = m.get(attr::QUALITY) {
                    Ok(SessionMessage::Quality { txid, quality: parse_quality(q)? })
                } else {
                    Ok(SessionMessage::Keepalive { txid })
                }
            }
        }
    }

    /// Serializes the message, signed with `key` (a join key) as its last
    /// attribute: what clients send, and the router's Check and CallEnded.
    pub fn to_signed_vec(&self, key: &JoinKey) -> Vec<u8> {
        let mut v = self.to_vec();
        super::sign(&mut v, key.as_bytes());
        v
    }

    /// Serializes the message.
    pub fn to_vec(&self) -> Vec<u8> {
        let (class, txid, attrs) = match self {
            SessionMessage::Join { txid, token, ssrcs, quality, srtp } => {
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
                if *srtp {
                    a.push((attr::SRTP, NATIVE_SRTP_PROFILE.dtls_id().to_be_bytes().to_vec()));
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
            SessionMessage::LastN { txid, n } => (Class::Indication, txid, vec![(attr::LAST_N, vec![*n])]),
            SessionMessage::MaxHeight { txid, height } => {
                (Class::Indication, txid, vec![(attr::MAX_HEIGHT, height.to_be_bytes().to_vec())])
            }
            SessionMessage::Simulcast { txid, layers } => (
                Class::Indication,
                txid,
                vec![(attr::SIMULCAST, layers.iter().flat_map(|s| s.0.to_be_bytes()).collect())],
            ),
            SessionMessage::CallEnded { txid } => (Class::Indication, txid, vec![(attr::CALL_ENDED, vec![])]),
            SessionMessage::Check { txid } => (Class::Request, txid, vec![(attr::CHECK, vec![])]),
            SessionMessage::CheckReply { txid } => (Class::Success, txid, vec![(attr::CHECK, vec![])]),
        };
        StunMessage { class, method: BINDING, txid: *txid, attrs }.to_vec()
    }
}

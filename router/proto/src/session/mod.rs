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
//! | Check      | Binding request (0x0001)       | CHECK                                    |
//! | CheckReply | Binding success (0x0101)       | CHECK                                    |
//!
//! Every message a client sends ends with MESSAGE-INTEGRITY keyed with its
//! join key ([`sign`], [`verify`]); so do the router's Check and CallEnded.
//!
//! See `router/PROTOCOL.md` for byte layouts and flows.
//!
//! Layout: `stun` is the STUN framing ([`Frame`] and its [`Attrs`], shared with
//! [`crate::ice`]; [`StunMessage`], [`Class`]) and the
//! address attributes; [`attr`] the attribute types; `message` the session
//! messages ([`SessionMessage`], [`Quality`], [`JoinErrorCode`]); `join` the
//! client's reading of a join answer ([`join_reply`]); `error` the
//! [`SessionError`]; [`speakers`] the speakers list the router sends a mixer
//! in an RTCP APP packet.

/// STUN magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// STUN header length.
pub const HEADER_LEN: usize = 20;
/// Largest session message accepted.
pub const MAX_LEN: usize = 1200;
/// Most SSRCs one join may declare.
pub const MAX_SSRCS: usize = 16;

/// Attribute types (comprehension-optional private range for corecast's own).
pub mod attr;
mod error;
mod integrity;
mod join;
mod message;
pub mod speakers;
mod stun;

pub use error::SessionError;
pub use integrity::{sign, verify};
pub use join::{join_reply, JoinReply};
pub use message::{JoinErrorCode, Quality, SessionMessage, MAX_HEIGHT_RANGE, MAX_LAYERS};
#[cfg(test)]
pub(crate) use stun::parse_xor_addr;
pub(crate) use stun::{put_attr, put_header, put_xor_addr, set_len};
pub use stun::{Attrs, Class, Frame, FrameError, RawAttr, StunMessage};

#[cfg(test)]
mod tests;

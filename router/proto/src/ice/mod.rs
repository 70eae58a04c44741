//! The STUN side of ICE-lite (RFC 8445 §2.5): parsing and authenticating a
//! peer's Binding request (connectivity check) and answering it, sans I/O.
//!
//! Short-term credentials (RFC 8489 §9.1): the MESSAGE-INTEGRITY key is the
//! password as bytes. A router handles a check as:
//!
//! 1. [`BindingRequest::parse`] the datagram (structure only, no crypto);
//! 2. look up the session by the [`Username`]'s `local` part (the router's ufrag);
//! 3. [`BindingRequest::verify`] with the router's password (FINGERPRINT and
//!    MESSAGE-INTEGRITY);
//! 4. answer with [`BindingResponse::success`] (XOR-MAPPED-ADDRESS of the
//!    datagram's source), or [`BindingResponse::error`] with the
//!    [`ErrorCode`] [`IceError::response_code`] suggests (none: drop it).
//!
//! Layout: `request` the parsed request (and [`Check`], the request a
//! full agent sends); `response` the response writers;
//! `integrity` MESSAGE-INTEGRITY (HMAC-SHA1, from the `hmac` and `sha1`
//! crates) and FINGERPRINT (CRC-32, from `crc32fast`), and
//! [`verify_message`] for any message carrying both. The framing is
//! [`crate::session::Frame`]'s.

pub(crate) mod integrity;
mod request;
mod response;

pub use integrity::verify_message;
pub use request::{BindingRequest, Check, Role, Username};
pub use response::{BindingResponse, ErrorCode};

use crate::session::FrameError;

/// The Binding method.
pub const BINDING: u16 = 0x0001;

/// Attribute types ICE-lite reads or writes (RFC 8489 §18.3, RFC 8445 §16.1).
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME: `local_ufrag:remote_ufrag` from the receiver's view.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY: HMAC-SHA1, 20 bytes.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// MESSAGE-INTEGRITY-SHA256 (read past, not checked).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY, u32.
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE, empty.
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT: CRC-32 XOR 0x5354554e, 4 bytes.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED: tie-breaker, u64.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING: tie-breaker, u64.
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// Longest USERNAME accepted (RFC 8489 §14.3: less than 513 bytes).
pub const MAX_USERNAME: usize = 512;

/// Why a STUN message is not an acceptable ICE connectivity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IceError {
    /// Not a well-formed STUN message.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A STUN message, but not a Binding request.
    #[error("not a STUN Binding request")]
    NotBindingRequest,
    /// An attribute ICE-lite understands has a bad length or value.
    #[error("malformed attribute {0:#06x}")]
    Malformed(u16),
    /// A comprehension-required attribute (type below 0x8000) this parser
    /// does not know (RFC 8489 §7.3.1: answer 420).
    #[error("unknown comprehension-required attribute {0:#06x}")]
    UnknownRequired(u16),
    /// An attribute after FINGERPRINT, which must be last (this includes a
    /// MESSAGE-INTEGRITY after FINGERPRINT).
    #[error("attribute {0:#06x} after FINGERPRINT")]
    AfterFingerprint(u16),
    /// No USERNAME.
    #[error("USERNAME missing")]
    MissingUsername,
    /// USERNAME is not UTF-8 `local:remote` with both parts non-empty.
    #[error("USERNAME is not local_ufrag:remote_ufrag")]
    BadUsername,
    /// Both ICE-CONTROLLING and ICE-CONTROLLED.
    #[error("both ICE-CONTROLLING and ICE-CONTROLLED")]
    BothRoles,
    /// No MESSAGE-INTEGRITY.
    #[error("MESSAGE-INTEGRITY missing")]
    MissingIntegrity,
    /// No FINGERPRINT.
    #[error("FINGERPRINT missing")]
    MissingFingerprint,
    /// MESSAGE-INTEGRITY does not match the password.
    #[error("MESSAGE-INTEGRITY check failed")]
    IntegrityMismatch,
    /// FINGERPRINT does not match the message.
    #[error("FINGERPRINT check failed")]
    FingerprintMismatch,
}

impl IceError {
    /// The error response RFC 8489 §6.3 / RFC 8445 §7.3 call for, or `None`
    /// when the datagram should be dropped silently (not STUN, not a Binding
    /// request, or a FINGERPRINT mismatch, which means "not STUN").
    pub fn response_code(&self) -> Option<ErrorCode> {
        match self {
            IceError::Frame(_) | IceError::NotBindingRequest | IceError::FingerprintMismatch => None,
            IceError::UnknownRequired(t) => Some(ErrorCode::UnknownAttribute(*t)),
            IceError::IntegrityMismatch => Some(ErrorCode::Unauthorized),
            IceError::Malformed(_)
            | IceError::AfterFingerprint(_)
            | IceError::MissingUsername
            | IceError::BadUsername
            | IceError::BothRoles
            | IceError::MissingIntegrity
            | IceError::MissingFingerprint => Some(ErrorCode::BadRequest),
        }
    }
}

#[cfg(test)]
mod tests;

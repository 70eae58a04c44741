//! Why a datagram is not a valid session message.

/// Why a datagram is not a valid session message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Shorter than the header, or than the length it announces.
    #[error("session message truncated")]
    Truncated,
    /// Not a STUN message (top bits, cookie, or length not a multiple of 4).
    #[error("not a STUN message")]
    NotStun,
    /// Larger than [`MAX_LEN`](super::MAX_LEN).
    #[error("session message too large")]
    TooLarge,
    /// A STUN message that is not one of corecast's session messages.
    #[error("unknown session message")]
    Unknown,
    /// A required attribute is missing or malformed.
    #[error("session attribute missing or malformed: {0:#06x}")]
    Attribute(u16),
    /// MESSAGE-INTEGRITY missing, not the last attribute, or not made with
    /// the participant's join key.
    #[error("session message not signed with the join key")]
    Integrity,
}

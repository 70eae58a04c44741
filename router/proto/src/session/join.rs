//! The joining side's reading of the router's answer to a join.

use std::net::SocketAddr;

use super::{JoinErrorCode, SessionMessage};

/// What the router's answer to a join means for the joining side
/// ([`join_reply`]).
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

//! MESSAGE-INTEGRITY on session messages (RFC 8489 §14.5, HMAC-SHA1) keyed
//! with the participant's join key ([`crate::join_key`]): the client signs
//! every message it sends, the router its address checks and call-ended
//! notices. The attribute must be the message's last.

use super::{SessionError, HEADER_LEN};
use crate::ice::attr::MESSAGE_INTEGRITY;
use crate::ice::integrity::{check_integrity, integrity, MI_LEN};
use crate::session::{put_attr, set_len, Frame};

/// Appends MESSAGE-INTEGRITY keyed with `key` to `msg` (one whole session
/// message, as [`SessionMessage::to_vec`](super::SessionMessage::to_vec) writes it).
pub fn sign(msg: &mut Vec<u8>, key: &[u8]) {
    // The HMAC covers the header with the length already counting the attribute.
    let len = msg.len() - HEADER_LEN + 4 + MI_LEN;
    set_len(msg, 0, len);
    let tag = integrity(key, msg);
    put_attr(msg, 0, MESSAGE_INTEGRITY, &tag);
}

/// Checks that `msg` ends with a MESSAGE-INTEGRITY attribute keyed with
/// `key` (in constant time); any attribute after it, a missing one or a
/// wrong tag is an error.
pub fn verify(msg: &[u8], key: &[u8]) -> Result<(), SessionError> {
    let f = Frame::parse(msg)?;
    let mut mi = None;
    for a in f.attrs() {
        let a = a?;
        if mi.is_some() {
            return Err(SessionError::Integrity);
        }
        if a.ty == MESSAGE_INTEGRITY {
            if a.value.len() != MI_LEN {
                return Err(SessionError::Integrity);
            }
            mi = Some(a.offset);
        }
    }
    let mi = mi.ok_or(SessionError::Integrity)?;
    check_integrity(key, msg, mi).map_err(|_| SessionError::Integrity)
}

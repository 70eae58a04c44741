//! Binding responses: success with XOR-MAPPED-ADDRESS, or an error with
//! ERROR-CODE; both end with MESSAGE-INTEGRITY (when keyed) and FINGERPRINT.

use std::net::SocketAddr;

use super::integrity::{fingerprint, integrity, FP_LEN};
use super::{attr, BINDING};
use crate::session::{put_attr, put_header, put_xor_addr, set_len};
use crate::session::{Class, HEADER_LEN};

/// Error codes a Binding request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: malformed, or USERNAME / MESSAGE-INTEGRITY / FINGERPRINT missing.
    BadRequest,
    /// 401: MESSAGE-INTEGRITY does not match (sent without integrity).
    Unauthorized,
    /// 420: a comprehension-required attribute that is not understood
    /// (listed in UNKNOWN-ATTRIBUTES).
    UnknownAttribute(u16),
    /// 487: role conflict (RFC 8445 §7.3.1.1).
    RoleConflict,
    /// 500: server error.
    ServerError,
}

impl ErrorCode {
    /// Numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::UnknownAttribute(_) => 420,
            ErrorCode::RoleConflict => 487,
            ErrorCode::ServerError => 500,
        }
    }

    /// Reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad Request",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::UnknownAttribute(_) => "Unknown Attribute",
            ErrorCode::RoleConflict => "Role Conflict",
            ErrorCode::ServerError => "Server Error",
        }
    }
}

/// Writes Binding responses to one request. Each writer appends one whole
/// message to `out` (reuse the buffer to avoid allocating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingResponse<'a> {
    /// The request's transaction id.
    pub txid: [u8; 12],
    /// SOFTWARE, first in the message when set (RFC 8489 §14.14: under 128 characters).
    pub software: Option<&'a str>,
}

impl<'a> BindingResponse<'a> {
    /// Responses to the request with transaction id `txid`, without SOFTWARE.
    pub fn new(txid: [u8; 12]) -> Self {
        BindingResponse { txid, software: None }
    }

    fn start(&self, out: &mut Vec<u8>, class: Class) -> usize {
        let start = out.len();
        put_header(out, class, BINDING, &self.txid);
        if let Some(s) = self.software {
            // At most 763 bytes (RFC 8489 §14.14), cut at a character boundary.
            let mut n = s.len().min(763);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            put_attr(out, start, attr::SOFTWARE, &s.as_bytes()[..n]);
        }
        start
    }

    /// Appends a success response: XOR-MAPPED-ADDRESS `mapped` (the
    /// request's source), MESSAGE-INTEGRITY keyed with our `password`, and
    /// FINGERPRINT.
    pub fn success(&self, out: &mut Vec<u8>, mapped: SocketAddr, password: &[u8]) {
        let start = self.start(out, Class::Success);
        // XOR-MAPPED-ADDRESS, its value written in place (8 or 20 bytes: no padding).
        let at = out.len();
        out.extend_from_slice(&attr::XOR_MAPPED_ADDRESS.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        put_xor_addr(out, mapped, &self.txid);
        let vlen = (out.len() - at - 4) as u16;
        out[at + 2..at + 4].copy_from_slice(&vlen.to_be_bytes());
        let len = out.len() - start - HEADER_LEN;
        set_len(out, start, len);
        finish(out, start, Some(password));
    }

    /// Appends an error response with ERROR-CODE `code` (and
    /// UNKNOWN-ATTRIBUTES for 420), MESSAGE-INTEGRITY when `password` is
    /// given (not for 400 or 401, RFC 8489 §9.1.3), and FINGERPRINT.
    pub fn error(&self, out: &mut Vec<u8>, code: ErrorCode, password: Option<&[u8]>) {
        let start = self.start(out, Class::Error);
        let n = code.code();
        let reason = code.reason().as_bytes();
        let mut v = [0u8; 4 + 32];
        v[2] = (n / 100) as u8;
        v[3] = (n % 100) as u8;
        v[4..4 + reason.len()].copy_from_slice(reason);
        put_attr(out, start, attr::ERROR_CODE, &v[..4 + reason.len()]);
        if let ErrorCode::UnknownAttribute(t) = code {
            put_attr(out, start, attr::UNKNOWN_ATTRIBUTES, &t.to_be_bytes());
        }
        finish(out, start, password);
    }
}

/// Appends MESSAGE-INTEGRITY (if keyed) and FINGERPRINT to the message
/// starting at `start` in `out`.
pub(super) fn finish(out: &mut Vec<u8>, start: usize, key: Option<&[u8]>) {
    if let Some(key) = key {
        let tag = integrity(key, &out[start..]);
        put_attr(out, start, attr::MESSAGE_INTEGRITY, &tag);
    }
    let len = out.len() - start - HEADER_LEN + 4 + FP_LEN;
    set_len(out, start, len);
    let crc = fingerprint(&out[start..]);
    put_attr(out, start, attr::FINGERPRINT, &crc.to_be_bytes());
}

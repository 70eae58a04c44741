//! Goodbye (RFC 3550 §6.6).

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// Goodbye.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    /// Sources leaving.
    pub ssrcs: Vec<Ssrc>,
    /// Optional reason.
    pub reason: Option<Vec<u8>>,
}

impl Bye {
    /// Parses the body (after the common header) of a BYE with `count` sources.
    pub(super) fn parse(body: &[u8], count: usize) -> Result<Bye, RtcpError> {
        if body.len() < 4 * count {
            return Err(RtcpError::Malformed);
        }
        let ssrcs = (0..count).map(|i| Ssrc(u32_at(body, 4 * i))).collect();
        let rest = &body[4 * count..];
        let reason = match rest.first() {
            Some(&l) if l > 0 => {
                let l = l as usize;
                if 1 + l > rest.len() {
                    return Err(RtcpError::Malformed);
                }
                Some(rest[1..1 + l].to_vec())
            }
            _ => None,
        };
        Ok(Bye { ssrcs, reason })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.ssrcs.len() > 31 {
            return Err(RtcpError::Range);
        }
        let at = header(out, self.ssrcs.len() as u8, pt::BYE);
        for s in &self.ssrcs {
            out.extend_from_slice(&s.0.to_be_bytes());
        }
        if let Some(r) = &self.reason {
            if r.is_empty() || r.len() > 255 {
                return Err(RtcpError::Range);
            }
            out.push(r.len() as u8);
            out.extend_from_slice(r);
            while !(out.len() - at).is_multiple_of(4) {
                out.push(0);
            }
        }
        finish(out, at)
    }
}

//! Application-defined packet (RFC 3550 §6.7).
//!
//! corecast's own use of it, the speakers list the router sends a mixer, is
//! in [`crate::session::speakers`].

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// Application-defined packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct App {
    /// Subtype (5 bits).
    pub subtype: u8,
    /// Source.
    pub ssrc: Ssrc,
    /// Four ASCII characters.
    pub name: [u8; 4],
    /// Data (multiple of 4 bytes).
    pub data: Vec<u8>,
}

impl App {
    /// Parses the body (after the common header) of an APP packet whose
    /// header count field (the subtype) is `subtype`.
    pub(super) fn parse(body: &[u8], subtype: u8) -> Result<App, RtcpError> {
        if body.len() < 8 {
            return Err(RtcpError::Malformed);
        }
        Ok(App {
            subtype,
            ssrc: Ssrc(u32_at(body, 0)),
            name: [body[4], body[5], body[6], body[7]],
            data: body[8..].to_vec(),
        })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.subtype > 31 || !self.data.len().is_multiple_of(4) {
            return Err(RtcpError::Range);
        }
        let at = header(out, self.subtype, pt::APP);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&self.data);
        finish(out, at)
    }
}

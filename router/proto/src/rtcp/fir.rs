//! Full intra request (RFC 5104 §4.3.1): payload-specific feedback, FMT 4.

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// Full intra request (RFC 5104 §4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fir {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// `(media source, command sequence number)` entries.
    pub entries: Vec<(Ssrc, u8)>,
}

impl Fir {
    /// Parses the feedback control information after the two SSRCs (the
    /// media SSRC of a FIR is unused).
    pub(super) fn parse(sender_ssrc: Ssrc, fci: &[u8]) -> Result<Fir, RtcpError> {
        if !fci.len().is_multiple_of(8) {
            return Err(RtcpError::Malformed);
        }
        let entries = fci.chunks_exact(8).map(|c| (Ssrc(u32_at(c, 0)), c[4])).collect();
        Ok(Fir { sender_ssrc, entries })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let at = header(out, 4, pt::PSFB);
        out.extend_from_slice(&self.sender_ssrc.0.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        for (s, n) in &self.entries {
            out.extend_from_slice(&s.0.to_be_bytes());
            out.extend_from_slice(&[*n, 0, 0, 0]);
        }
        finish(out, at)
    }
}

//! Picture loss indication (RFC 4585 §6.3.1): payload-specific feedback, FMT 1.

use super::{finish, header, pt, RtcpError};
use crate::ids::Ssrc;

/// Picture loss indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pli {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Media source that should send a keyframe.
    pub media_ssrc: Ssrc,
}

impl Pli {
    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let at = header(out, 1, pt::PSFB);
        out.extend_from_slice(&self.sender_ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.media_ssrc.0.to_be_bytes());
        finish(out, at)
    }
}

//! Application-defined packet (RFC 3550 §6.7).

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

/// Name of the APP packet in which the router tells a call's mixer who is
/// speaking: the data is the video SSRCs of the call's loudest participants,
/// loudest first, four bytes each (corecast's own, see `router/PROTOCOL.md`).
pub const SPEAKERS_APP_NAME: [u8; 4] = *b"SPKR";

/// Most SSRCs a speakers APP packet carries.
pub const MAX_SPEAKERS: usize = 32;

impl App {
    /// A speakers packet from `sender` listing `video_ssrcs` (loudest first;
    /// beyond [`MAX_SPEAKERS`] dropped).
    pub fn speakers(sender: Ssrc, video_ssrcs: &[Ssrc]) -> App {
        let data = video_ssrcs.iter().take(MAX_SPEAKERS).flat_map(|s| s.0.to_be_bytes()).collect();
        App { subtype: 0, ssrc: sender, name: SPEAKERS_APP_NAME, data }
    }

    /// The SSRCs of a speakers packet; `None` for any other APP packet or a
    /// malformed one.
    pub fn parse_speakers(&self) -> Option<Vec<Ssrc>> {
        if self.name != SPEAKERS_APP_NAME || self.subtype != 0 || !self.data.len().is_multiple_of(4) {
            return None;
        }
        let v: Vec<Ssrc> =
            self.data.chunks_exact(4).map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect();
        (v.len() <= MAX_SPEAKERS).then_some(v)
    }

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

//! Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb):
//! payload-specific feedback, FMT 15, with the `REMB` identifier.

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// The largest bitrate a REMB carries in a `u64`: the full 18-bit mantissa
/// at the exponent that keeps it within 64 bits.
const REMB_MAX_BPS: u64 = 0x3_ffff << 46;

/// Receiver estimated maximum bitrate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Remb {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Estimate in bits per second (as representable by 6-bit exp, 18-bit mantissa).
    pub bitrate_bps: u64,
    /// Sources the estimate applies to.
    pub ssrcs: Vec<Ssrc>,
}

impl Remb {
    /// True when `fci` (after the two SSRCs of an FMT 15 packet) is a REMB.
    pub(super) fn matches(fci: &[u8]) -> bool {
        fci.len() >= 8 && &fci[0..4] == b"REMB"
    }

    /// Parses the feedback control information after the two SSRCs; the
    /// caller has checked [`Remb::matches`].
    pub(super) fn parse(sender_ssrc: Ssrc, fci: &[u8]) -> Result<Remb, RtcpError> {
        let n = fci[4] as usize;
        let exp = fci[5] >> 2;
        let mantissa = (((fci[5] & 3) as u64) << 16) | ((fci[6] as u64) << 8) | fci[7] as u64;
        if fci.len() < 8 + 4 * n {
            return Err(RtcpError::Malformed);
        }
        let ssrcs = (0..n).map(|i| Ssrc(u32_at(fci, 8 + 4 * i))).collect();
        // A value past u64 (exponent up to 63) reads as the largest one the
        // form can carry in a u64, which writes back as itself.
        let bitrate_bps = mantissa.checked_shl(exp as u32).filter(|v| v >> exp == mantissa).unwrap_or(REMB_MAX_BPS);
        Ok(Remb { sender_ssrc, bitrate_bps, ssrcs })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.ssrcs.len() > 255 {
            return Err(RtcpError::Range);
        }
        let at = header(out, 15, pt::PSFB);
        out.extend_from_slice(&self.sender_ssrc.0.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(b"REMB");
        let mut exp = 0u8;
        let mut m = self.bitrate_bps;
        while m >= 1 << 18 {
            m >>= 1;
            exp += 1;
        }
        if exp > 63 {
            return Err(RtcpError::Range);
        }
        out.push(self.ssrcs.len() as u8);
        out.push((exp << 2) | ((m >> 16) as u8 & 3));
        out.push((m >> 8) as u8);
        out.push(m as u8);
        for s in &self.ssrcs {
            out.extend_from_slice(&s.0.to_be_bytes());
        }
        finish(out, at)
    }
}

/// REMB bitrates are sent with an 18-bit mantissa; this rounds a value the
/// way the serializer does, for round-trip comparisons.
pub fn remb_representable(bps: u64) -> u64 {
    let mut exp = 0;
    let mut m = bps;
    while m >= 1 << 18 {
        m >>= 1;
        exp += 1;
    }
    m << exp
}

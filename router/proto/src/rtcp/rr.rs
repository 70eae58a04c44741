//! Receiver report and the reception report block both report types carry
//! (RFC 3550 §6.4.1, §6.4.2).

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub ext_highest_seq: u32,
    /// Interarrival jitter.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp.
    pub last_sr: u32,
    /// Delay since last SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Receiver report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// Reporter.
    pub ssrc: Ssrc,
    /// Reception reports.
    pub reports: Vec<ReportBlock>,
}

impl ReceiverReport {
    /// Parses the body (after the common header) of an RR with `count` report blocks.
    pub(super) fn parse(body: &[u8], count: usize) -> Result<ReceiverReport, RtcpError> {
        if body.len() < 4 {
            return Err(RtcpError::Malformed);
        }
        Ok(ReceiverReport { ssrc: Ssrc(u32_at(body, 0)), reports: parse_blocks(&body[4..], count)? })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.reports.len() > 31 {
            return Err(RtcpError::Range);
        }
        let at = header(out, self.reports.len() as u8, pt::RR);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        put_blocks(out, &self.reports);
        finish(out, at)
    }
}

/// Parses `count` report blocks from the start of `b`.
pub(super) fn parse_blocks(b: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if b.len() < 24 * count {
        return Err(RtcpError::Malformed);
    }
    Ok((0..count)
        .map(|i| {
            let o = i * 24;
            let lost = u32_at(b, o + 4) & 0x00ff_ffff;
            // sign-extend 24 bits
            let cumulative_lost = ((lost << 8) as i32) >> 8;
            ReportBlock {
                ssrc: Ssrc(u32_at(b, o)),
                fraction_lost: b[o + 4],
                cumulative_lost,
                ext_highest_seq: u32_at(b, o + 8),
                jitter: u32_at(b, o + 12),
                last_sr: u32_at(b, o + 16),
                delay_since_last_sr: u32_at(b, o + 20),
            }
        })
        .collect())
}

/// Appends report blocks.
pub(super) fn put_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for r in blocks {
        out.extend_from_slice(&r.ssrc.0.to_be_bytes());
        let lost = (r.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&(((r.fraction_lost as u32) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&r.ext_highest_seq.to_be_bytes());
        out.extend_from_slice(&r.jitter.to_be_bytes());
        out.extend_from_slice(&r.last_sr.to_be_bytes());
        out.extend_from_slice(&r.delay_since_last_sr.to_be_bytes());
    }
}

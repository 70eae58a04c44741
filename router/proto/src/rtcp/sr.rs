//! Sender report (RFC 3550 §6.4.1).

use super::rr::{parse_blocks, put_blocks, ReportBlock};
use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// Sender report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// Sender.
    pub ssrc: Ssrc,
    /// NTP timestamp (64-bit).
    pub ntp_time: u64,
    /// RTP timestamp matching `ntp_time`.
    pub rtp_time: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    /// Reception reports.
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// Parses the body (after the common header) of an SR with `count` report blocks.
    pub(super) fn parse(body: &[u8], count: usize) -> Result<SenderReport, RtcpError> {
        if body.len() < 24 {
            return Err(RtcpError::Malformed);
        }
        Ok(SenderReport {
            ssrc: Ssrc(u32_at(body, 0)),
            ntp_time: ((u32_at(body, 4) as u64) << 32) | u32_at(body, 8) as u64,
            rtp_time: u32_at(body, 12),
            packet_count: u32_at(body, 16),
            octet_count: u32_at(body, 20),
            reports: parse_blocks(&body[24..], count)?,
        })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.reports.len() > 31 {
            return Err(RtcpError::Range);
        }
        let at = header(out, self.reports.len() as u8, pt::SR);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.ntp_time.to_be_bytes());
        out.extend_from_slice(&self.rtp_time.to_be_bytes());
        out.extend_from_slice(&self.packet_count.to_be_bytes());
        out.extend_from_slice(&self.octet_count.to_be_bytes());
        put_blocks(out, &self.reports);
        finish(out, at)
    }
}

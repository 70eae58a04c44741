//! Extended reports (RFC 3611): the two blocks that give a receiver the
//! round trip to a sender that sends it nothing to report on. The router
//! sends a publisher a Receiver Reference Time Report (RRTR, §4.4) with its
//! receiver reports; the publisher echoes it in a DLRR block (§4.5), and
//! `now - LRR - DLRR` is the round trip, as `now - LSR - DLSR` is for SRs.
//! Browsers (libwebrtc) answer an RRTR with a DLRR in their next report.
//! Other block types are passed over.
//!
//! ```text
//! XR:    V=2 P reserved(5) PT=207 length | SSRC of the sender | report blocks
//! block: BT(8) type-specific(8) block length(16, 32-bit words after this word)
//! RRTR:  BT=4, length 2: NTP timestamp (64 bits)
//! DLRR:  BT=5, length 3n: n × (SSRC, last RR (compact NTP), delay since last RR (1/65536 s))
//! ```

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// Block type of a Receiver Reference Time Report.
const RRTR: u8 = 4;
/// Block type of a DLRR report.
const DLRR: u8 = 5;

/// One DLRR sub-block: about the RRTR `ssrc` sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DlrrItem {
    /// Who sent the RRTR.
    pub ssrc: Ssrc,
    /// The middle 32 bits of the RRTR's NTP timestamp (0: none received).
    pub last_rr: u32,
    /// Time since that RRTR arrived, 1/65536 s.
    pub delay_since_last_rr: u32,
}

/// An extended report: the blocks the router uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedReport {
    /// Its sender.
    pub ssrc: Ssrc,
    /// A Receiver Reference Time Report: the sender's NTP time.
    pub rrtr: Option<u64>,
    /// DLRR sub-blocks (all DLRR blocks of the packet, in order).
    pub dlrr: Vec<DlrrItem>,
}

/// The most DLRR sub-blocks kept from one packet (more are passed over).
pub const MAX_DLRR_ITEMS: usize = 32;

impl ExtendedReport {
    /// Parses the body (after the common header).
    pub(super) fn parse(body: &[u8]) -> Result<ExtendedReport, RtcpError> {
        if body.len() < 4 {
            return Err(RtcpError::Malformed);
        }
        let mut xr = ExtendedReport { ssrc: Ssrc(u32_at(body, 0)), ..Default::default() };
        let mut at = 4;
        while at < body.len() {
            if body.len() - at < 4 {
                return Err(RtcpError::Malformed);
            }
            let bt = body[at];
            let words = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
            let block = body.get(at + 4..at + 4 + 4 * words).ok_or(RtcpError::Malformed)?;
            match bt {
                RRTR if words == 2 => {
                    xr.rrtr = Some((u64::from(u32_at(block, 0)) << 32) | u64::from(u32_at(block, 4)));
                }
                RRTR => return Err(RtcpError::Malformed),
                DLRR if words % 3 == 0 => {
                    for item in block.chunks_exact(12).take(MAX_DLRR_ITEMS - xr.dlrr.len().min(MAX_DLRR_ITEMS)) {
                        xr.dlrr.push(DlrrItem {
                            ssrc: Ssrc(u32_at(item, 0)),
                            last_rr: u32_at(item, 4),
                            delay_since_last_rr: u32_at(item, 8),
                        });
                    }
                }
                DLRR => return Err(RtcpError::Malformed),
                _ => {}
            }
            at += 4 + 4 * words;
        }
        Ok(xr)
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.dlrr.len() > MAX_DLRR_ITEMS {
            return Err(RtcpError::Range);
        }
        let at = header(out, 0, pt::XR);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        if let Some(ntp) = self.rrtr {
            out.extend_from_slice(&[RRTR, 0, 0, 2]);
            out.extend_from_slice(&ntp.to_be_bytes());
        }
        if !self.dlrr.is_empty() {
            let words = (3 * self.dlrr.len()) as u16;
            out.extend_from_slice(&[DLRR, 0]);
            out.extend_from_slice(&words.to_be_bytes());
            for d in &self.dlrr {
                out.extend_from_slice(&d.ssrc.0.to_be_bytes());
                out.extend_from_slice(&d.last_rr.to_be_bytes());
                out.extend_from_slice(&d.delay_since_last_rr.to_be_bytes());
            }
        }
        finish(out, at)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_compound, write_compound, RtcpPacket};
    use super::*;

    #[test]
    fn rrtr_and_dlrr_round_trip() {
        let xr = ExtendedReport {
            ssrc: Ssrc(0x1234),
            rrtr: Some(0x0102_0304_0506_0708),
            dlrr: vec![DlrrItem { ssrc: Ssrc(7), last_rr: 0x0304_0506, delay_since_last_rr: 65536 }],
        };
        let b = write_compound(&[RtcpPacket::ExtendedReport(xr.clone())]).unwrap();
        assert_eq!(b.len(), 4 + 4 + 12 + 16);
        assert_eq!(parse_compound(&b).unwrap(), vec![RtcpPacket::ExtendedReport(xr)]);
    }

    #[test]
    fn other_blocks_are_passed_over_and_bad_lengths_refused() {
        // An unknown block (BT 42, one word) before a DLRR with one item.
        let mut b = vec![0x80, 207, 0, 7, 0, 0, 0, 9, 42, 0, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD, 5, 0, 0, 3];
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        let p = parse_compound(&b).unwrap();
        let want = DlrrItem { ssrc: Ssrc(1), last_rr: 2, delay_since_last_rr: 3 };
        assert_eq!(p, vec![RtcpPacket::ExtendedReport(ExtendedReport { ssrc: Ssrc(9), rrtr: None, dlrr: vec![want] })]);
        // A DLRR whose length is not a multiple of 3 words, an RRTR of 1 word, a block past the end.
        for bad in [
            vec![0x80, 207, 0, 3, 0, 0, 0, 9, 5, 0, 0, 1, 0, 0, 0, 0],
            vec![0x80, 207, 0, 3, 0, 0, 0, 9, 4, 0, 0, 1, 0, 0, 0, 0],
            vec![0x80, 207, 0, 2, 0, 0, 0, 9, 4, 0, 0, 2],
            vec![0x80, 207, 0, 2, 0, 0, 0, 9, 4, 0],
        ] {
            assert!(parse_compound(&bad).is_err(), "{bad:?}");
        }
    }
}

//! Generic NACK (RFC 4585 §6.2.1): transport-layer feedback, FMT 1.

use super::{finish, header, pt, RtcpError};
use crate::ids::{SeqNo, Ssrc};

/// Generic NACK: packets the receiver asks to be retransmitted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Media source the NACK is about.
    pub media_ssrc: Ssrc,
    /// `(pid, blp)` pairs as on the wire.
    pub pairs: Vec<(SeqNo, u16)>,
}

impl Nack {
    /// Every sequence number the NACK asks for.
    pub fn lost(&self) -> impl Iterator<Item = SeqNo> + '_ {
        self.pairs.iter().flat_map(|&(pid, blp)| {
            std::iter::once(pid)
                .chain((0..16).filter(move |i| blp & (1 << i) != 0).map(move |i| pid.wrapping_add(i + 1)))
        })
    }

    /// Builds a NACK covering `seqs` (any order, duplicates ignored).
    pub fn from_lost(sender_ssrc: Ssrc, media_ssrc: Ssrc, seqs: &[SeqNo]) -> Nack {
        let mut s: Vec<SeqNo> = seqs.to_vec();
        if let Some(&first) = s.first() {
            // Sort in serial order relative to the first element.
            s.sort_by_key(|x| first.delta(*x));
        }
        s.dedup();
        let mut pairs: Vec<(SeqNo, u16)> = Vec::new();
        for q in s {
            if let Some((pid, blp)) = pairs.last_mut() {
                let d = pid.delta(q);
                if (1..=16).contains(&d) {
                    *blp |= 1 << (d - 1);
                    continue;
                }
            }
            pairs.push((q, 0));
        }
        Nack { sender_ssrc, media_ssrc, pairs }
    }

    /// Parses the feedback control information after the two SSRCs.
    pub(super) fn parse(sender_ssrc: Ssrc, media_ssrc: Ssrc, fci: &[u8]) -> Result<Nack, RtcpError> {
        if !fci.len().is_multiple_of(4) {
            return Err(RtcpError::Malformed);
        }
        let pairs = fci
            .chunks_exact(4)
            .map(|c| (SeqNo(u16::from_be_bytes([c[0], c[1]])), u16::from_be_bytes([c[2], c[3]])))
            .collect();
        Ok(Nack { sender_ssrc, media_ssrc, pairs })
    }

    /// Appends the packet, header included.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let at = header(out, 1, pt::RTPFB);
        out.extend_from_slice(&self.sender_ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.media_ssrc.0.to_be_bytes());
        for (pid, blp) in &self.pairs {
            out.extend_from_slice(&pid.0.to_be_bytes());
            out.extend_from_slice(&blp.to_be_bytes());
        }
        finish(out, at)
    }
}

//! RTCP (RFC 3550 §6) with the feedback messages an SFU acts on: generic
//! NACK (RFC 4585 §6.2.1), PLI (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1),
//! REMB (draft-alvestrand-rmcat-remb) and transport-wide congestion control
//! feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01). Compound
//! and reduced-size (RFC 5506) packets are both accepted; unknown packet types and formats are kept as
//! [`RtcpPacket::Unknown`] and never fail the compound.
//!
//! This module holds the common header, [`RtcpPacket`], [`parse_compound`]
//! and [`write_compound`]; each message type has its own file, and every
//! type is re-exported here:
//!
//! - `sr`: [`SenderReport`];
//! - `rr`: [`ReceiverReport`] and the [`ReportBlock`] both reports carry;
//! - `sdes`: [`SdesChunk`];
//! - `bye`: [`Bye`];
//! - `app`: [`App`] (corecast's speakers list in an APP packet is in
//!   [`crate::session::speakers`]);
//! - `nack`: [`Nack`] (RTPFB FMT 1);
//! - `pli`: [`Pli`] (PSFB FMT 1);
//! - `fir`: [`Fir`] (PSFB FMT 4);
//! - `remb`: [`Remb`] (PSFB FMT 15) and [`remb_representable`];
//! - `twcc`: [`TransportFeedback`] (RTPFB FMT 15);
//! - `xr`: [`ExtendedReport`] (RFC 3611: the RRTR and DLRR blocks);
//! - `twcc_recorder`: [`TwccRecorder`], the receiver side that turns packet
//!   arrivals into [`TransportFeedback`].

mod app;
mod bye;
mod fir;
mod nack;
mod pli;
mod remb;
mod rr;
mod sdes;
mod sr;
mod twcc;
mod twcc_recorder;
mod xr;

pub use app::App;
pub use bye::Bye;
pub use fir::Fir;
pub use nack::Nack;
pub use pli::Pli;
pub use remb::{remb_representable, Remb};
pub use rr::{ReceiverReport, ReportBlock};
pub use sdes::SdesChunk;
pub use sr::SenderReport;
pub use twcc::{
    TransportFeedback, TWCC_DELTA_TICK_US, TWCC_FMT, TWCC_REFERENCE_TIME_MAX, TWCC_REFERENCE_TIME_MIN,
    TWCC_REFERENCE_TIME_UNIT_US,
};
pub use twcc_recorder::{
    TwccRecorder, TWCC_FEEDBACK_INTERVAL, TWCC_HISTORY, TWCC_MAX_FEEDBACK_BYTES, TWCC_MAX_HISTORY_PACKETS,
};
pub use xr::{DlrrItem, ExtendedReport, MAX_DLRR_ITEMS};

use crate::ids::Ssrc;

/// Why an RTCP datagram is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Shorter than a header or than the length it announces.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version is not 2.
    #[error("RTCP version is not 2")]
    Version,
    /// A field is inconsistent with the packet length.
    #[error("RTCP packet is malformed")]
    Malformed,
    /// A field does not fit on the wire.
    #[error("RTCP field out of range")]
    Range,
}

/// Packet types.
pub mod pt {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
    /// Transport-layer feedback (RFC 4585).
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback (RFC 4585).
    pub const PSFB: u8 = 206;
    /// Extended report (RFC 3611).
    pub const XR: u8 = 207;
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR.
    SenderReport(SenderReport),
    /// RR.
    ReceiverReport(ReceiverReport),
    /// SDES.
    Sdes(Vec<SdesChunk>),
    /// BYE.
    Bye(Bye),
    /// APP.
    App(App),
    /// RTPFB generic NACK.
    Nack(Nack),
    /// PSFB PLI.
    Pli(Pli),
    /// PSFB FIR.
    Fir(Fir),
    /// PSFB REMB.
    Remb(Remb),
    /// RTPFB transport-wide congestion control feedback.
    TransportFeedback(TransportFeedback),
    /// XR (its RRTR and DLRR blocks).
    ExtendedReport(ExtendedReport),
    /// Anything else, kept whole (header included).
    Unknown {
        /// Packet type.
        pt: u8,
        /// Count / format field.
        fmt: u8,
        /// The whole packet.
        raw: Vec<u8>,
    },
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Splits a compound datagram into its packets and parses each.
///
/// Returns an error only for a framing error (the datagram cannot be split);
/// a packet of unknown type is returned as [`RtcpPacket::Unknown`].
pub fn parse_compound(b: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut p = 0;
    if b.is_empty() {
        return Err(RtcpError::Truncated);
    }
    while p < b.len() {
        let (pkt, len) = parse_one(&b[p..])?;
        out.push(pkt);
        p += len;
    }
    Ok(out)
}

/// Parses one packet at the start of `b`, returning it and its length.
pub fn parse_one(b: &[u8]) -> Result<(RtcpPacket, usize), RtcpError> {
    if b.len() < 4 {
        return Err(RtcpError::Truncated);
    }
    if b[0] >> 6 != 2 {
        return Err(RtcpError::Version);
    }
    let padding = b[0] & 0x20 != 0;
    let count = (b[0] & 0x1f) as usize;
    let ty = b[1];
    let len = (u16::from_be_bytes([b[2], b[3]]) as usize + 1) * 4;
    if b.len() < len {
        return Err(RtcpError::Truncated);
    }
    let mut body = &b[4..len];
    if padding {
        let n = *body.last().ok_or(RtcpError::Malformed)? as usize;
        if n == 0 || n > body.len() {
            return Err(RtcpError::Malformed);
        }
        body = &body[..body.len() - n];
    }
    let pkt = match ty {
        pt::SR => RtcpPacket::SenderReport(SenderReport::parse(body, count)?),
        pt::RR => RtcpPacket::ReceiverReport(ReceiverReport::parse(body, count)?),
        pt::SDES => RtcpPacket::Sdes(sdes::parse(body, count)?),
        pt::BYE => RtcpPacket::Bye(Bye::parse(body, count)?),
        pt::APP => RtcpPacket::App(App::parse(body, count as u8)?),
        pt::XR => RtcpPacket::ExtendedReport(ExtendedReport::parse(body)?),
        pt::RTPFB | pt::PSFB => {
            // Common feedback header (RFC 4585 §6.1): sender and media SSRC.
            if body.len() < 8 {
                return Err(RtcpError::Malformed);
            }
            let sender_ssrc = Ssrc(u32_at(body, 0));
            let media_ssrc = Ssrc(u32_at(body, 4));
            let fci = &body[8..];
            match (ty, count) {
                (pt::RTPFB, 1) => RtcpPacket::Nack(Nack::parse(sender_ssrc, media_ssrc, fci)?),
                (pt::RTPFB, 15) => {
                    RtcpPacket::TransportFeedback(TransportFeedback::parse(sender_ssrc, media_ssrc, fci)?)
                }
                (pt::PSFB, 1) => RtcpPacket::Pli(Pli { sender_ssrc, media_ssrc }),
                (pt::PSFB, 4) => RtcpPacket::Fir(Fir::parse(sender_ssrc, fci)?),
                (pt::PSFB, 15) if Remb::matches(fci) => RtcpPacket::Remb(Remb::parse(sender_ssrc, fci)?),
                _ => RtcpPacket::Unknown { pt: ty, fmt: count as u8, raw: b[..len].to_vec() },
            }
        }
        _ => RtcpPacket::Unknown { pt: ty, fmt: count as u8, raw: b[..len].to_vec() },
    };
    Ok((pkt, len))
}

/// Appends a common header with a zero length; returns where it starts, for [`finish`].
fn header(out: &mut Vec<u8>, count: u8, ty: u8) -> usize {
    let at = out.len();
    out.push(0x80 | (count & 0x1f));
    out.push(ty);
    out.extend_from_slice(&[0, 0]);
    at
}

/// Fills in the length of the packet whose header starts at `at`.
fn finish(out: &mut [u8], at: usize) -> Result<(), RtcpError> {
    let len = out.len() - at;
    debug_assert_eq!(len % 4, 0);
    let words = u16::try_from(len / 4 - 1).map_err(|_| RtcpError::Range)?;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
    Ok(())
}

impl RtcpPacket {
    /// Appends this packet to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        match self {
            RtcpPacket::SenderReport(sr) => sr.write(out),
            RtcpPacket::ReceiverReport(rr) => rr.write(out),
            RtcpPacket::Sdes(chunks) => sdes::write(chunks, out),
            RtcpPacket::Bye(bye) => bye.write(out),
            RtcpPacket::App(app) => app.write(out),
            RtcpPacket::Nack(n) => n.write(out),
            RtcpPacket::Pli(p) => p.write(out),
            RtcpPacket::Fir(f) => f.write(out),
            RtcpPacket::Remb(r) => r.write(out),
            RtcpPacket::TransportFeedback(t) => t.write(out),
            RtcpPacket::ExtendedReport(x) => x.write(out),
            RtcpPacket::Unknown { raw, .. } => {
                if !raw.len().is_multiple_of(4) || raw.len() < 4 {
                    return Err(RtcpError::Range);
                }
                out.extend_from_slice(raw);
                Ok(())
            }
        }
    }
}

/// Serializes a compound packet.
pub fn write_compound(pkts: &[RtcpPacket]) -> Result<Vec<u8>, RtcpError> {
    let mut out = Vec::with_capacity(64);
    for p in pkts {
        p.write_to(&mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod twcc_tests;

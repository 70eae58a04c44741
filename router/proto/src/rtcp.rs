//! RTCP (RFC 3550 §6) with the feedback messages an SFU acts on: generic
//! NACK (RFC 4585 §6.2.1), PLI (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1) and
//! REMB (draft-alvestrand-rmcat-remb). Compound and reduced-size (RFC 5506)
//! packets are both accepted; unknown packet types and formats are kept as
//! [`RtcpPacket::Unknown`] and never fail the compound.

use crate::ids::{SeqNo, Ssrc};

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
}

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

/// Receiver report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// Reporter.
    pub ssrc: Ssrc,
    /// Reception reports.
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk: a source and its `(item type, text)` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    /// Source.
    pub ssrc: Ssrc,
    /// Items (type 1 = CNAME, ...), each at most 255 bytes.
    pub items: Vec<(u8, Vec<u8>)>,
}

/// Goodbye.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    /// Sources leaving.
    pub ssrcs: Vec<Ssrc>,
    /// Optional reason.
    pub reason: Option<Vec<u8>>,
}

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
}

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
}

/// Picture loss indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pli {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Media source that should send a keyframe.
    pub media_ssrc: Ssrc,
}

/// Full intra request (RFC 5104 §4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fir {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// `(media source, command sequence number)` entries.
    pub entries: Vec<(Ssrc, u8)>,
}

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

fn parse_blocks(b: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
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
        pt::SR => {
            if body.len() < 24 {
                return Err(RtcpError::Malformed);
            }
            RtcpPacket::SenderReport(SenderReport {
                ssrc: Ssrc(u32_at(body, 0)),
                ntp_time: ((u32_at(body, 4) as u64) << 32) | u32_at(body, 8) as u64,
                rtp_time: u32_at(body, 12),
                packet_count: u32_at(body, 16),
                octet_count: u32_at(body, 20),
                reports: parse_blocks(&body[24..], count)?,
            })
        }
        pt::RR => {
            if body.len() < 4 {
                return Err(RtcpError::Malformed);
            }
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(u32_at(body, 0)),
                reports: parse_blocks(&body[4..], count)?,
            })
        }
        pt::SDES => {
            let mut chunks = Vec::with_capacity(count);
            let mut o = 0;
            for _ in 0..count {
                if o + 4 > body.len() {
                    return Err(RtcpError::Malformed);
                }
                let ssrc = Ssrc(u32_at(body, o));
                o += 4;
                let mut items = Vec::new();
                loop {
                    let t = *body.get(o).ok_or(RtcpError::Malformed)?;
                    if t == 0 {
                        o += 1;
                        // skip to the next 32-bit boundary
                        o = o.div_ceil(4) * 4;
                        break;
                    }
                    let l = *body.get(o + 1).ok_or(RtcpError::Malformed)? as usize;
                    let s = o + 2;
                    if s + l > body.len() {
                        return Err(RtcpError::Malformed);
                    }
                    items.push((t, body[s..s + l].to_vec()));
                    o = s + l;
                }
                chunks.push(SdesChunk { ssrc, items });
            }
            RtcpPacket::Sdes(chunks)
        }
        pt::BYE => {
            if body.len() < 4 * count {
                return Err(RtcpError::Malformed);
            }
            let ssrcs = (0..count).map(|i| Ssrc(u32_at(body, 4 * i))).collect();
            let rest = &body[4 * count..];
            let reason = match rest.first() {
                Some(&l) if l > 0 => {
                    let l = l as usize;
                    if 1 + l > rest.len() {
                        return Err(RtcpError::Malformed);
                    }
                    Some(rest[1..1 + l].to_vec())
                }
                _ => None,
            };
            RtcpPacket::Bye(Bye { ssrcs, reason })
        }
        pt::APP => {
            if body.len() < 8 {
                return Err(RtcpError::Malformed);
            }
            RtcpPacket::App(App {
                subtype: count as u8,
                ssrc: Ssrc(u32_at(body, 0)),
                name: [body[4], body[5], body[6], body[7]],
                data: body[8..].to_vec(),
            })
        }
        pt::RTPFB | pt::PSFB => {
            if body.len() < 8 {
                return Err(RtcpError::Malformed);
            }
            let sender_ssrc = Ssrc(u32_at(body, 0));
            let media_ssrc = Ssrc(u32_at(body, 4));
            let fci = &body[8..];
            match (ty, count) {
                (pt::RTPFB, 1) => {
                    if !fci.len().is_multiple_of(4) {
                        return Err(RtcpError::Malformed);
                    }
                    let pairs = fci
                        .chunks_exact(4)
                        .map(|c| (SeqNo(u16::from_be_bytes([c[0], c[1]])), u16::from_be_bytes([c[2], c[3]])))
                        .collect();
                    RtcpPacket::Nack(Nack { sender_ssrc, media_ssrc, pairs })
                }
                (pt::PSFB, 1) => RtcpPacket::Pli(Pli { sender_ssrc, media_ssrc }),
                (pt::PSFB, 4) => {
                    if !fci.len().is_multiple_of(8) {
                        return Err(RtcpError::Malformed);
                    }
                    let entries = fci.chunks_exact(8).map(|c| (Ssrc(u32_at(c, 0)), c[4])).collect();
                    RtcpPacket::Fir(Fir { sender_ssrc, entries })
                }
                (pt::PSFB, 15) if fci.len() >= 8 && &fci[0..4] == b"REMB" => {
                    let n = fci[4] as usize;
                    let exp = fci[5] >> 2;
                    let mantissa = (((fci[5] & 3) as u64) << 16) | ((fci[6] as u64) << 8) | fci[7] as u64;
                    if fci.len() < 8 + 4 * n {
                        return Err(RtcpError::Malformed);
                    }
                    let ssrcs = (0..n).map(|i| Ssrc(u32_at(fci, 8 + 4 * i))).collect();
                    let bitrate_bps =
                        mantissa.checked_shl(exp as u32).filter(|v| v >> exp == mantissa).unwrap_or(u64::MAX);
                    RtcpPacket::Remb(Remb { sender_ssrc, bitrate_bps, ssrcs })
                }
                _ => RtcpPacket::Unknown { pt: ty, fmt: count as u8, raw: b[..len].to_vec() },
            }
        }
        _ => RtcpPacket::Unknown { pt: ty, fmt: count as u8, raw: b[..len].to_vec() },
    };
    Ok((pkt, len))
}

fn header(out: &mut Vec<u8>, count: u8, ty: u8) -> usize {
    let at = out.len();
    out.push(0x80 | (count & 0x1f));
    out.push(ty);
    out.extend_from_slice(&[0, 0]);
    at
}

fn finish(out: &mut [u8], at: usize) -> Result<(), RtcpError> {
    let len = out.len() - at;
    debug_assert_eq!(len % 4, 0);
    let words = u16::try_from(len / 4 - 1).map_err(|_| RtcpError::Range)?;
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
    Ok(())
}

fn put_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
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

impl RtcpPacket {
    /// Appends this packet to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        match self {
            RtcpPacket::SenderReport(sr) => {
                if sr.reports.len() > 31 {
                    return Err(RtcpError::Range);
                }
                let at = header(out, sr.reports.len() as u8, pt::SR);
                out.extend_from_slice(&sr.ssrc.0.to_be_bytes());
                out.extend_from_slice(&sr.ntp_time.to_be_bytes());
                out.extend_from_slice(&sr.rtp_time.to_be_bytes());
                out.extend_from_slice(&sr.packet_count.to_be_bytes());
                out.extend_from_slice(&sr.octet_count.to_be_bytes());
                put_blocks(out, &sr.reports);
                finish(out, at)
            }
            RtcpPacket::ReceiverReport(rr) => {
                if rr.reports.len() > 31 {
                    return Err(RtcpError::Range);
                }
                let at = header(out, rr.reports.len() as u8, pt::RR);
                out.extend_from_slice(&rr.ssrc.0.to_be_bytes());
                put_blocks(out, &rr.reports);
                finish(out, at)
            }
            RtcpPacket::Sdes(chunks) => {
                if chunks.len() > 31 {
                    return Err(RtcpError::Range);
                }
                let at = header(out, chunks.len() as u8, pt::SDES);
                for c in chunks {
                    out.extend_from_slice(&c.ssrc.0.to_be_bytes());
                    for (t, v) in &c.items {
                        if *t == 0 || v.len() > 255 {
                            return Err(RtcpError::Range);
                        }
                        out.push(*t);
                        out.push(v.len() as u8);
                        out.extend_from_slice(v);
                    }
                    out.push(0);
                    while !(out.len() - at).is_multiple_of(4) {
                        out.push(0);
                    }
                }
                finish(out, at)
            }
            RtcpPacket::Bye(bye) => {
                if bye.ssrcs.len() > 31 {
                    return Err(RtcpError::Range);
                }
                let at = header(out, bye.ssrcs.len() as u8, pt::BYE);
                for s in &bye.ssrcs {
                    out.extend_from_slice(&s.0.to_be_bytes());
                }
                if let Some(r) = &bye.reason {
                    if r.is_empty() || r.len() > 255 {
                        return Err(RtcpError::Range);
                    }
                    out.push(r.len() as u8);
                    out.extend_from_slice(r);
                    while !(out.len() - at).is_multiple_of(4) {
                        out.push(0);
                    }
                }
                finish(out, at)
            }
            RtcpPacket::App(app) => {
                if app.subtype > 31 || !app.data.len().is_multiple_of(4) {
                    return Err(RtcpError::Range);
                }
                let at = header(out, app.subtype, pt::APP);
                out.extend_from_slice(&app.ssrc.0.to_be_bytes());
                out.extend_from_slice(&app.name);
                out.extend_from_slice(&app.data);
                finish(out, at)
            }
            RtcpPacket::Nack(n) => {
                let at = header(out, 1, pt::RTPFB);
                out.extend_from_slice(&n.sender_ssrc.0.to_be_bytes());
                out.extend_from_slice(&n.media_ssrc.0.to_be_bytes());
                for (pid, blp) in &n.pairs {
                    out.extend_from_slice(&pid.0.to_be_bytes());
                    out.extend_from_slice(&blp.to_be_bytes());
                }
                finish(out, at)
            }
            RtcpPacket::Pli(p) => {
                let at = header(out, 1, pt::PSFB);
                out.extend_from_slice(&p.sender_ssrc.0.to_be_bytes());
                out.extend_from_slice(&p.media_ssrc.0.to_be_bytes());
                finish(out, at)
            }
            RtcpPacket::Fir(f) => {
                let at = header(out, 4, pt::PSFB);
                out.extend_from_slice(&f.sender_ssrc.0.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                for (s, n) in &f.entries {
                    out.extend_from_slice(&s.0.to_be_bytes());
                    out.extend_from_slice(&[*n, 0, 0, 0]);
                }
                finish(out, at)
            }
            RtcpPacket::Remb(r) => {
                if r.ssrcs.len() > 255 {
                    return Err(RtcpError::Range);
                }
                let at = header(out, 15, pt::PSFB);
                out.extend_from_slice(&r.sender_ssrc.0.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(b"REMB");
                let mut exp = 0u8;
                let mut m = r.bitrate_bps;
                while m >= 1 << 18 {
                    m >>= 1;
                    exp += 1;
                }
                if exp > 63 {
                    return Err(RtcpError::Range);
                }
                out.push(r.ssrcs.len() as u8);
                out.push((exp << 2) | ((m >> 16) as u8 & 3));
                out.push((m >> 8) as u8);
                out.push(m as u8);
                for s in &r.ssrcs {
                    out.extend_from_slice(&s.0.to_be_bytes());
                }
                finish(out, at)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A receiver report with one block, byte for byte per RFC 3550 §6.4.2.
    #[test]
    fn rr_vector() {
        let b = [
            0x81, 0xC9, 0x00, 0x07, // V=2 RC=1 PT=201 len=7
            0x00, 0x00, 0x00, 0x01, // reporter
            0x00, 0x00, 0x00, 0x02, // source
            0x40, 0xFF, 0xFF, 0xFE, // fraction 64/256, cumulative -2
            0x00, 0x01, 0x00, 0x10, // ext highest seq
            0x00, 0x00, 0x00, 0x20, // jitter
            0x11, 0x22, 0x33, 0x44, // LSR
            0x00, 0x00, 0x80, 0x00, // DLSR 0.5 s
        ];
        let p = parse_compound(&b).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &p[0] else { panic!() };
        assert_eq!(rr.ssrc, Ssrc(1));
        assert_eq!(rr.reports[0].fraction_lost, 64);
        assert_eq!(rr.reports[0].cumulative_lost, -2);
        assert_eq!(rr.reports[0].ext_highest_seq, 0x10010);
        assert_eq!(write_compound(&p).unwrap(), b);
    }

    /// PLI and NACK vectors per RFC 4585 §6.
    #[test]
    fn feedback_vectors() {
        let pli = [0x81, 0xCE, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(
            parse_compound(&pli).unwrap(),
            vec![RtcpPacket::Pli(Pli { sender_ssrc: Ssrc(1), media_ssrc: Ssrc(2) })]
        );
        let nack = [0x81, 0xCD, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x64, 0x00, 0x05];
        let p = parse_compound(&nack).unwrap();
        let RtcpPacket::Nack(n) = &p[0] else { panic!() };
        assert_eq!(n.lost().map(|s| s.0).collect::<Vec<_>>(), vec![100, 101, 103]);
        let fir = [0x84, 0xCE, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 7, 0, 0, 0];
        assert_eq!(
            parse_compound(&fir).unwrap(),
            vec![RtcpPacket::Fir(Fir { sender_ssrc: Ssrc(1), entries: vec![(Ssrc(9), 7)] })]
        );
    }

    #[test]
    fn remb_vector() {
        // 1,000,000 bps = mantissa 250000 exp 2 ; 1 SSRC
        let r = RtcpPacket::Remb(Remb { sender_ssrc: Ssrc(1), bitrate_bps: 1_000_000, ssrcs: vec![Ssrc(5)] });
        let b = write_compound(std::slice::from_ref(&r)).unwrap();
        assert_eq!(&b[12..16], b"REMB");
        assert_eq!(parse_compound(&b).unwrap(), vec![r]);
    }

    #[test]
    fn unknown_is_skipped_not_fatal() {
        let mut b = write_compound(&[RtcpPacket::Pli(Pli::default())]).unwrap();
        b.extend_from_slice(&[0x80, 210, 0, 1, 1, 2, 3, 4]); // unknown PT 210
        b.extend_from_slice(&write_compound(&[RtcpPacket::Bye(Bye { ssrcs: vec![Ssrc(3)], reason: None })]).unwrap());
        let p = parse_compound(&b).unwrap();
        assert_eq!(p.len(), 3);
        assert!(matches!(p[1], RtcpPacket::Unknown { pt: 210, .. }));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
        assert_eq!(parse_compound(&[0x81, 0xC9, 0x00, 0x07, 0, 0]), Err(RtcpError::Truncated));
        assert_eq!(parse_compound(&[0x41, 0xC9, 0x00, 0x00]), Err(RtcpError::Version));
        // RR claims 2 blocks but has room for none
        assert_eq!(parse_compound(&[0x82, 0xC9, 0x00, 0x01, 0, 0, 0, 1]), Err(RtcpError::Malformed));
        // SDES item overruns
        assert_eq!(parse_compound(&[0x81, 0xCA, 0x00, 0x02, 0, 0, 0, 1, 1, 9, 0, 0]), Err(RtcpError::Malformed));
    }

    #[test]
    fn nack_from_lost_packs_bitmask() {
        let seqs: Vec<SeqNo> = [65534u16, 65535, 0, 3, 40].iter().map(|&s| SeqNo(s)).collect();
        let n = Nack::from_lost(Ssrc(1), Ssrc(2), &seqs);
        assert_eq!(n.pairs.len(), 2);
        assert_eq!(n.lost().collect::<Vec<_>>(), seqs);
    }

    fn arb_block() -> impl Strategy<Value = ReportBlock> + Clone {
        (any::<u32>(), any::<u8>(), -0x80_0000i32..=0x7f_ffff, any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(s, f, c, h, j, l, d)| ReportBlock {
                ssrc: Ssrc(s),
                fraction_lost: f,
                cumulative_lost: c,
                ext_highest_seq: h,
                jitter: j,
                last_sr: l,
                delay_since_last_sr: d,
            })
    }

    fn arb_packet() -> impl Strategy<Value = RtcpPacket> {
        let ssrc = any::<u32>().prop_map(Ssrc);
        let blocks = proptest::collection::vec(arb_block(), 0..4);
        prop_oneof![
            (ssrc.clone(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), blocks.clone()).prop_map(
                |(ssrc, ntp_time, rtp_time, packet_count, octet_count, reports)| RtcpPacket::SenderReport(
                    SenderReport { ssrc, ntp_time, rtp_time, packet_count, octet_count, reports }
                )
            ),
            (ssrc.clone(), blocks)
                .prop_map(|(ssrc, reports)| RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports })),
            proptest::collection::vec(
                (
                    ssrc.clone(),
                    proptest::collection::vec((1u8..=8, proptest::collection::vec(any::<u8>(), 0..20)), 0..3)
                )
                    .prop_map(|(ssrc, items)| SdesChunk { ssrc, items }),
                0..3
            )
            .prop_map(RtcpPacket::Sdes),
            (
                proptest::collection::vec(ssrc.clone(), 0..4),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 1..30))
            )
                .prop_map(|(ssrcs, reason)| RtcpPacket::Bye(Bye { ssrcs, reason })),
            (0u8..32, ssrc.clone(), any::<[u8; 4]>(), proptest::collection::vec(any::<[u8; 4]>(), 0..4))
                .prop_map(|(subtype, ssrc, name, d)| RtcpPacket::App(App { subtype, ssrc, name, data: d.concat() })),
            (ssrc.clone(), ssrc.clone(), proptest::collection::vec((any::<u16>(), any::<u16>()), 0..5)).prop_map(
                |(a, b, p)| {
                    RtcpPacket::Nack(Nack {
                        sender_ssrc: a,
                        media_ssrc: b,
                        pairs: p.into_iter().map(|(x, y)| (SeqNo(x), y)).collect(),
                    })
                }
            ),
            (ssrc.clone(), ssrc.clone()).prop_map(|(a, b)| RtcpPacket::Pli(Pli { sender_ssrc: a, media_ssrc: b })),
            (ssrc.clone(), proptest::collection::vec((ssrc.clone(), any::<u8>()), 0..4))
                .prop_map(|(a, entries)| RtcpPacket::Fir(Fir { sender_ssrc: a, entries })),
            (ssrc.clone(), any::<u64>(), proptest::collection::vec(ssrc, 0..4)).prop_map(|(a, bps, ssrcs)| {
                RtcpPacket::Remb(Remb { sender_ssrc: a, bitrate_bps: remb_representable(bps >> 2), ssrcs })
            }),
        ]
    }

    proptest! {
        #[test]
        fn compound_roundtrip(pkts in proptest::collection::vec(arb_packet(), 1..5)) {
            let b = write_compound(&pkts).unwrap();
            prop_assert_eq!(crate::demux::classify(&b), crate::demux::Kind::Rtcp);
            prop_assert_eq!(parse_compound(&b).unwrap(), pkts);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_compound(&b);
        }

        #[test]
        fn valid_header_garbage_body_never_panics(count in 0u8..32, ty in 200u8..=206, body in proptest::collection::vec(any::<u8>(), 0..40)) {
            let words = body.len() / 4;
            let mut b = vec![0x80 | count, ty, 0, words as u8];
            b.extend_from_slice(&body[..words * 4]);
            let _ = parse_compound(&b);
        }
    }

    #[test]
    fn speakers_app_round_trips_and_rejects_others() {
        let ssrcs = [Ssrc(7), Ssrc(0xdead_beef), Ssrc(3)];
        let b = write_compound(&[RtcpPacket::App(App::speakers(Ssrc(1), &ssrcs))]).unwrap();
        let back = parse_compound(&b).unwrap();
        let RtcpPacket::App(app) = &back[0] else { panic!("{back:?}") };
        assert_eq!(app.parse_speakers().unwrap(), ssrcs);
        assert_eq!(App::speakers(Ssrc(1), &[]).parse_speakers(), Some(vec![]));
        let many: Vec<Ssrc> = (0..40).map(Ssrc).collect();
        assert_eq!(App::speakers(Ssrc(1), &many).parse_speakers().unwrap().len(), MAX_SPEAKERS);
        assert_eq!(App { name: *b"XXXX", ..App::speakers(Ssrc(1), &ssrcs) }.parse_speakers(), None);
        assert_eq!(App { data: vec![0; 6], ..App::speakers(Ssrc(1), &ssrcs) }.parse_speakers(), None);
        assert_eq!(App { data: vec![0; 4 * 33], ..App::speakers(Ssrc(1), &ssrcs) }.parse_speakers(), None);
    }
}

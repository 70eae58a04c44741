//! Synthetic media: packets a receiver can check on its own.
//!
//! Every RTP payload starts with a 40-byte probe header and is filled with a
//! pattern derived from it, so a receiver detects loss (sequence gaps),
//! duplicates, reordering, corruption (checksum) and latency (send time)
//! without any side channel:
//!
//! ```text
//! 0       4               12      16      20  22  24              32      36  38  40
//! | magic | sender (u64)  | ssrc  | frame | i | n | sent_us (u64) | cksum | len ...filler
//! ```
//!
//! `i`/`n` are the packet's index in its frame and the frame's packet count;
//! `cksum` is FNV-1a over the whole RTP packet with the checksum field zeroed.

use corecast_proto::rtp::{RtpHeader, RtpPacket};
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

/// Magic at the start of every synthetic payload.
pub const MAGIC: [u8; 4] = *b"CCST";
/// Probe header length.
pub const PROBE_LEN: usize = 40;
const CKSUM_AT: usize = 32;

/// What a synthetic payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Sending participant.
    pub sender: u64,
    /// Stream.
    pub ssrc: Ssrc,
    /// Frame number.
    pub frame: u32,
    /// Index of the packet within its frame.
    pub index: u16,
    /// Packets in the frame.
    pub count: u16,
    /// Send time, microseconds on the sender's clock (Unix time).
    pub sent_us: u64,
}

/// Why a received packet failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not an RTP packet.
    #[error("not RTP")]
    NotRtp,
    /// Payload too short or without the magic.
    #[error("not a synthetic payload")]
    NotProbe,
    /// Checksum mismatch or filler differs from the pattern.
    #[error("corrupt")]
    Corrupt,
}

fn fnv(bytes: &[u8], skip: std::ops::Range<usize>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, &b) in bytes.iter().enumerate() {
        let b = if skip.contains(&i) { 0 } else { b };
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn filler(seed: u64, out: &mut [u8]) {
    let mut x = seed | 1;
    for b in out {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// RFC 8285 id the client gives the RFC 6464 audio level (the router's default).
pub const AUDIO_LEVEL_EXT_ID: u8 = 1;

/// Builds one synthetic RTP packet of exactly `size` bytes (≥ 12 + 40, plus
/// 8 with a level). `audio_level` (dBov, 0 loudest ..= 127 silence) adds an
/// RFC 6464 audio level header extension, as WebRTC senders do on audio.
#[allow(clippy::too_many_arguments)]
pub fn build(
    probe: &Probe,
    pt: Pt,
    seq: SeqNo,
    ts: MediaTime,
    marker: bool,
    size: usize,
    audio_level: Option<u8>,
    out: &mut Vec<u8>,
) -> Result<(), corecast_proto::rtp::RtpError> {
    let extensions = match audio_level.map(|l| l.min(127)) {
        // The V bit: voice activity, for anything above silence.
        Some(l) => vec![(AUDIO_LEVEL_EXT_ID, vec![if l < 127 { 0x80 | l } else { l }])],
        None => Vec::new(),
    };
    // One one-byte element of one byte: 4 bytes of extension header + 1 word.
    let header_len = 12 + if extensions.is_empty() { 0 } else { 8 };
    let payload_len = size.saturating_sub(header_len).max(PROBE_LEN);
    let mut payload = vec![0u8; payload_len];
    payload[0..4].copy_from_slice(&MAGIC);
    payload[4..12].copy_from_slice(&probe.sender.to_be_bytes());
    payload[12..16].copy_from_slice(&probe.ssrc.0.to_be_bytes());
    payload[16..20].copy_from_slice(&probe.frame.to_be_bytes());
    payload[20..22].copy_from_slice(&probe.index.to_be_bytes());
    payload[22..24].copy_from_slice(&probe.count.to_be_bytes());
    payload[24..32].copy_from_slice(&probe.sent_us.to_be_bytes());
    payload[36..38].copy_from_slice(&(payload_len as u16).to_be_bytes());
    filler(probe.sent_us ^ ((seq.0 as u64) << 32) ^ probe.ssrc.0 as u64, &mut payload[PROBE_LEN..]);
    let p = RtpPacket { marker, pt, seq, timestamp: ts, ssrc: probe.ssrc, payload, extensions, ..Default::default() };
    let start = out.len();
    p.write_to(out)?;
    let at = start + header_len + CKSUM_AT;
    let c = fnv(&out[start..], at - start..at - start + 4);
    out[at..at + 4].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Verifies a received packet and returns its header and probe.
pub fn verify(b: &[u8]) -> Result<(RtpHeader, Probe), VerifyError> {
    let h = RtpHeader::parse(b).map_err(|_| VerifyError::NotRtp)?;
    let p = h.payload(b);
    if p.len() < PROBE_LEN || p[0..4] != MAGIC {
        return Err(VerifyError::NotProbe);
    }
    let u64_at = |o: usize| u64::from_be_bytes(p[o..o + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |o: usize| u32::from_be_bytes(p[o..o + 4].try_into().unwrap_or([0; 4]));
    let u16_at = |o: usize| u16::from_be_bytes([p[o], p[o + 1]]);
    let at = h.payload_offset + CKSUM_AT;
    if fnv(b, at..at + 4) != u32_at(CKSUM_AT) || u16_at(36) as usize != p.len() {
        return Err(VerifyError::Corrupt);
    }
    let probe = Probe {
        sender: u64_at(4),
        ssrc: Ssrc(u32_at(12)),
        frame: u32_at(16),
        index: u16_at(20),
        count: u16_at(22),
        sent_us: u64_at(24),
    };
    if probe.ssrc != h.ssrc {
        return Err(VerifyError::Corrupt);
    }
    let mut expect = vec![0u8; p.len() - PROBE_LEN];
    filler(probe.sent_us ^ ((h.seq.0 as u64) << 32) ^ probe.ssrc.0 as u64, &mut expect);
    if expect[..] != p[PROBE_LEN..] {
        return Err(VerifyError::Corrupt);
    }
    Ok((h, probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_verify_and_detect_corruption() {
        let probe = Probe { sender: 7, ssrc: Ssrc(9), frame: 3, index: 1, count: 4, sent_us: 123 };
        let mut b = Vec::new();
        build(&probe, Pt(96), SeqNo(5), MediaTime(90), false, 1200, None, &mut b).unwrap();
        assert_eq!(b.len(), 1200);
        let (h, p) = verify(&b).unwrap();
        assert_eq!((h.seq, p), (SeqNo(5), probe));
        for i in [0usize, 3, 20, 60, 1199] {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(verify(&c).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn audio_level_extension_keeps_the_size_and_reads_back() {
        let probe = Probe { sender: 7, ssrc: Ssrc(9), frame: 3, index: 0, count: 1, sent_us: 123 };
        for (level, byte) in [(30u8, 0x80 | 30), (127, 127), (200, 127)] {
            let mut b = Vec::new();
            build(&probe, Pt(111), SeqNo(5), MediaTime(960), true, 160, Some(level), &mut b).unwrap();
            assert_eq!(b.len(), 160);
            let (h, p) = verify(&b).unwrap();
            assert_eq!(p, probe);
            let e: Vec<_> = h.extensions(&b).map(|e| e.unwrap()).collect();
            assert_eq!((e.len(), e[0].id, e[0].data), (1, AUDIO_LEVEL_EXT_ID, &[byte][..]));
        }
    }
}

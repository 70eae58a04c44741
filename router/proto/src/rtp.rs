//! RTP packets (RFC 3550 §5.1) and header extensions (RFC 8285).
//!
//! [`RtpHeader::parse`] validates a datagram once and records where each part
//! lies, so the router can forward the original bytes and rewrite fields in
//! place without re-serializing. [`RtpPacket`] is the owned form used to build
//! packets.

use crate::ids::{MediaTime, Pt, SeqNo, Ssrc};

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header, CSRC list or extension it announces.
    #[error("RTP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("RTP version is not 2")]
    Version,
    /// Padding length is zero or larger than the payload.
    #[error("RTP padding is invalid")]
    Padding,
    /// A header extension element is malformed.
    #[error("RTP header extension is malformed")]
    Extension,
    /// Something to serialize does not fit the format.
    #[error("RTP field out of range")]
    Range,
}

/// Fixed header fields plus where the variable parts lie in the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub pt: Pt,
    /// Sequence number.
    pub seq: SeqNo,
    /// Media timestamp.
    pub timestamp: MediaTime,
    /// Synchronization source.
    pub ssrc: Ssrc,
    /// Number of CSRCs (0..=15).
    pub csrc_count: u8,
    /// Extension profile (`0xBEDE` one-byte, `0x100x` two-byte) if any.
    pub ext_profile: Option<u16>,
    /// Offset and length of the extension data (after the 4-byte ext header).
    pub ext_range: (usize, usize),
    /// Offset of the payload.
    pub payload_offset: usize,
    /// Length of the payload (padding excluded).
    pub payload_len: usize,
    /// Padding bytes at the end, including the count byte.
    pub padding: u8,
}

impl RtpHeader {
    /// Minimum length of an RTP packet.
    pub const MIN_LEN: usize = 12;

    /// Parses and validates the header of `b`.
    pub fn parse(b: &[u8]) -> Result<RtpHeader, RtpError> {
        if b.len() < Self::MIN_LEN {
            return Err(RtpError::Truncated);
        }
        if b[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let has_padding = b[0] & 0x20 != 0;
        let has_ext = b[0] & 0x10 != 0;
        let csrc_count = b[0] & 0x0f;
        let marker = b[1] & 0x80 != 0;
        let pt = Pt(b[1] & 0x7f);
        let seq = SeqNo(u16::from_be_bytes([b[2], b[3]]));
        let timestamp = MediaTime(u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
        let ssrc = Ssrc(u32::from_be_bytes([b[8], b[9], b[10], b[11]]));
        let mut off = 12 + 4 * csrc_count as usize;
        if b.len() < off {
            return Err(RtpError::Truncated);
        }
        let mut ext_profile = None;
        let mut ext_range = (off, 0);
        if has_ext {
            if b.len() < off + 4 {
                return Err(RtpError::Truncated);
            }
            let profile = u16::from_be_bytes([b[off], b[off + 1]]);
            let words = u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize;
            let start = off + 4;
            let end = start + 4 * words;
            if b.len() < end {
                return Err(RtpError::Truncated);
            }
            ext_profile = Some(profile);
            ext_range = (start, 4 * words);
            // Validate RFC 8285 elements so later iteration cannot fail.
            if is_one_byte(profile) || is_two_byte(profile) {
                for e in (Extensions { profile, data: &b[start..end], pos: 0 }) {
                    e?;
                }
            }
            off = end;
        }
        let mut padding = 0u8;
        let mut end = b.len();
        if has_padding {
            padding = b[b.len() - 1];
            if padding == 0 || padding as usize > b.len() - off {
                return Err(RtpError::Padding);
            }
            end -= padding as usize;
        }
        Ok(RtpHeader {
            marker,
            pt,
            seq,
            timestamp,
            ssrc,
            csrc_count,
            ext_profile,
            ext_range,
            payload_offset: off,
            payload_len: end - off,
            padding,
        })
    }

    /// The CSRC list of the packet this header was parsed from.
    pub fn csrcs<'a>(&self, b: &'a [u8]) -> impl Iterator<Item = Ssrc> + 'a {
        let n = self.csrc_count as usize;
        b[12..12 + 4 * n].chunks_exact(4).map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// The RFC 8285 extension elements of the packet this header was parsed from.
    pub fn extensions<'a>(&self, b: &'a [u8]) -> Extensions<'a> {
        let (s, l) = self.ext_range;
        match self.ext_profile {
            Some(p) if is_one_byte(p) || is_two_byte(p) => Extensions { profile: p, data: &b[s..s + l], pos: 0 },
            _ => Extensions { profile: 0, data: &[], pos: 0 },
        }
    }

    /// The payload of the packet this header was parsed from.
    pub fn payload<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        &b[self.payload_offset..self.payload_offset + self.payload_len]
    }
}

fn is_one_byte(p: u16) -> bool {
    p == 0xBEDE
}
fn is_two_byte(p: u16) -> bool {
    p & 0xfff0 == 0x1000
}

/// Rewrites the sequence number of a serialized RTP packet in place.
pub fn set_seq(b: &mut [u8], seq: SeqNo) {
    b[2..4].copy_from_slice(&seq.0.to_be_bytes());
}

/// Rewrites the SSRC of a serialized RTP packet in place.
pub fn set_ssrc(b: &mut [u8], ssrc: Ssrc) {
    b[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
}

/// Rewrites the timestamp of a serialized RTP packet in place.
pub fn set_timestamp(b: &mut [u8], ts: MediaTime) {
    b[4..8].copy_from_slice(&ts.0.to_be_bytes());
}

/// One RFC 8285 header extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtElement<'a> {
    /// Extension id (1..=14 one-byte, 1..=255 two-byte).
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

/// Iterator over RFC 8285 elements.
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    profile: u16,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<ExtElement<'a>, RtpError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let d = self.data;
            if self.pos >= d.len() {
                return None;
            }
            if is_one_byte(self.profile) {
                let h = d[self.pos];
                if h == 0 {
                    self.pos += 1; // padding
                    continue;
                }
                let id = h >> 4;
                if id == 0 {
                    // RFC 8285 §4.2: id 0 is padding, a zero byte; with a length it is no
                    // element (found by fuzz/fuzz_targets/rtp_ext.rs).
                    self.pos = d.len();
                    return Some(Err(RtpError::Extension));
                }
                if id == 15 {
                    // RFC 8285 §4.2: id 15 ends processing.
                    self.pos = d.len();
                    return None;
                }
                let len = (h & 0x0f) as usize + 1;
                let s = self.pos + 1;
                if s + len > d.len() {
                    self.pos = d.len();
                    return Some(Err(RtpError::Extension));
                }
                self.pos = s + len;
                return Some(Ok(ExtElement { id, data: &d[s..s + len] }));
            } else {
                let id = d[self.pos];
                if id == 0 {
                    self.pos += 1;
                    continue;
                }
                if self.pos + 1 >= d.len() {
                    self.pos = d.len();
                    return Some(Err(RtpError::Extension));
                }
                let len = d[self.pos + 1] as usize;
                let s = self.pos + 2;
                if s + len > d.len() {
                    self.pos = d.len();
                    return Some(Err(RtpError::Extension));
                }
                self.pos = s + len;
                return Some(Ok(ExtElement { id, data: &d[s..s + len] }));
            }
        }
    }
}

/// An owned RTP packet, for building and for round-trip tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpPacket {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub pt: Pt,
    /// Sequence number.
    pub seq: SeqNo,
    /// Media timestamp.
    pub timestamp: MediaTime,
    /// Synchronization source.
    pub ssrc: Ssrc,
    /// Contributing sources (at most 15).
    pub csrcs: Vec<Ssrc>,
    /// RFC 8285 extension elements `(id, data)`.
    pub extensions: Vec<(u8, Vec<u8>)>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Padding length to append (0 = none; otherwise 1..=255 including the count byte).
    pub padding: u8,
}

impl RtpPacket {
    /// Parses an owned packet.
    pub fn parse(b: &[u8]) -> Result<RtpPacket, RtpError> {
        let h = RtpHeader::parse(b)?;
        let mut extensions = Vec::new();
        for e in h.extensions(b) {
            let e = e?;
            extensions.push((e.id, e.data.to_vec()));
        }
        Ok(RtpPacket {
            marker: h.marker,
            pt: h.pt,
            seq: h.seq,
            timestamp: h.timestamp,
            ssrc: h.ssrc,
            csrcs: h.csrcs(b).collect(),
            extensions,
            payload: h.payload(b).to_vec(),
            padding: h.padding,
        })
    }

    /// Serializes into `out` (appending). Uses the one-byte extension form
    /// when every element fits it, the two-byte form otherwise.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        if self.csrcs.len() > 15 || self.pt.0 > 127 {
            return Err(RtpError::Range);
        }
        let has_ext = !self.extensions.is_empty();
        let b0 =
            0x80 | if self.padding > 0 { 0x20 } else { 0 } | if has_ext { 0x10 } else { 0 } | self.csrcs.len() as u8;
        out.push(b0);
        out.push(if self.marker { 0x80 } else { 0 } | self.pt.0);
        out.extend_from_slice(&self.seq.0.to_be_bytes());
        out.extend_from_slice(&self.timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        for c in &self.csrcs {
            out.extend_from_slice(&c.0.to_be_bytes());
        }
        if has_ext {
            let one = self.extensions.iter().all(|(id, d)| (1..=14).contains(id) && (1..=16).contains(&d.len()));
            let mut body = Vec::new();
            for (id, d) in &self.extensions {
                if one {
                    body.push((id << 4) | (d.len() as u8 - 1));
                } else {
                    if *id == 0 || d.len() > 255 {
                        return Err(RtpError::Range);
                    }
                    body.push(*id);
                    body.push(d.len() as u8);
                }
                body.extend_from_slice(d);
            }
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let words = u16::try_from(body.len() / 4).map_err(|_| RtpError::Range)?;
            out.extend_from_slice(&(if one { 0xBEDEu16 } else { 0x1000u16 }).to_be_bytes());
            out.extend_from_slice(&words.to_be_bytes());
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(&self.payload);
        if self.padding > 0 {
            out.extend(std::iter::repeat_n(0u8, self.padding as usize - 1));
            out.push(self.padding);
        }
        Ok(())
    }

    /// Serializes into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, RtpError> {
        let mut v = Vec::with_capacity(12 + self.payload.len() + 16);
        self.write_to(&mut v)?;
        Ok(v)
    }
}

/// RFC 6464 audio level element: `(voice_activity, level_dbov)` where level
/// is 0 (loudest) ..= 127 (silence).
pub fn parse_audio_level(data: &[u8]) -> Option<(bool, u8)> {
    let b = *data.first()?;
    Some((b & 0x80 != 0, b & 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8285 §4.2 style packet with one-byte extensions, built by hand.
    #[test]
    fn hand_built_one_byte_extension_vector() {
        let b: Vec<u8> = vec![
            0x90, 0xE0, 0x12, 0x34, // V=2 X=1, M=1 PT=96, seq 0x1234
            0x00, 0x00, 0x10, 0x00, // ts
            0xDE, 0xAD, 0xBE, 0xEF, // ssrc
            0xBE, 0xDE, 0x00, 0x02, // one-byte profile, 2 words
            0x10, 0xAA, 0x00, 0x21, // id1 len1 "AA", padding, id2 len2 ...
            0xBB, 0xCC, 0x00, 0x00, // ... "BBCC", padding
            0x01, 0x02, 0x03, // payload
        ];
        let h = RtpHeader::parse(&b).unwrap();
        assert!(h.marker);
        assert_eq!(h.pt, Pt(96));
        assert_eq!(h.seq, SeqNo(0x1234));
        assert_eq!(h.ssrc, Ssrc(0xDEADBEEF));
        let ext: Vec<_> = h.extensions(&b).map(|e| e.unwrap()).collect();
        assert_eq!(ext, vec![ExtElement { id: 1, data: &[0xAA] }, ExtElement { id: 2, data: &[0xBB, 0xCC] }]);
        assert_eq!(h.payload(&b), &[1, 2, 3]);
    }

    /// RFC 8285 §4.2: a one-byte header with id 0 and a length is not padding and no element:
    /// the packet does not parse (as for any malformed element).
    #[test]
    fn one_byte_id_zero_with_a_length_is_an_error() {
        let b: Vec<u8> = vec![
            0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, // RTP, X=1
            0xBE, 0xDE, 0x00, 0x01, // one-byte profile, 1 word
            0x00, 0x01, 0xAA, 0xBB, // padding, then "id 0, length 2" and its data
            0x01, 0x02, // payload
        ];
        assert_eq!(RtpHeader::parse(&b).unwrap_err(), RtpError::Extension);
        let ext: Vec<_> = Extensions { profile: 0xBEDE, data: &b[16..20], pos: 0 }.collect();
        assert_eq!(ext, vec![Err(RtpError::Extension)]);
    }

    #[test]
    fn rfc3550_minimal_and_padding_and_csrc() {
        let p = RtpPacket {
            marker: false,
            pt: Pt(0),
            seq: SeqNo(1),
            timestamp: MediaTime(160),
            ssrc: Ssrc(1),
            csrcs: vec![Ssrc(2), Ssrc(3)],
            extensions: vec![],
            payload: vec![9; 5],
            padding: 3,
        };
        let b = p.to_vec().unwrap();
        assert_eq!(b.len(), 12 + 8 + 5 + 3);
        assert_eq!(b[0], 0xA2);
        let h = RtpHeader::parse(&b).unwrap();
        assert_eq!(h.csrcs(&b).collect::<Vec<_>>(), vec![Ssrc(2), Ssrc(3)]);
        assert_eq!(RtpPacket::parse(&b).unwrap(), p);
    }

    #[test]
    fn malformed_is_rejected() {
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpHeader::parse(&[0x40; 12]), Err(RtpError::Version));
        let mut b = vec![0x8F; 12]; // 15 CSRCs announced, none present
        b[1] = 96;
        assert_eq!(RtpHeader::parse(&b), Err(RtpError::Truncated));
        let mut pad = vec![0u8; 13];
        pad[0] = 0xA0;
        pad[12] = 0; // padding count 0
        assert_eq!(RtpHeader::parse(&pad), Err(RtpError::Padding));
        pad[12] = 5; // more than payload
        assert_eq!(RtpHeader::parse(&pad), Err(RtpError::Padding));
        let mut ext = vec![0u8; 16];
        ext[0] = 0x90;
        ext[12..16].copy_from_slice(&[0xBE, 0xDE, 0, 1]); // one word announced, none present
        assert_eq!(RtpHeader::parse(&ext), Err(RtpError::Truncated));
        let mut bad_el = vec![0u8; 20];
        bad_el[0] = 0x90;
        bad_el[12..20].copy_from_slice(&[0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0]); // len 16 overruns
        assert_eq!(RtpHeader::parse(&bad_el), Err(RtpError::Extension));
    }

    #[test]
    fn two_byte_extensions_roundtrip() {
        let p = RtpPacket {
            pt: Pt(111),
            extensions: vec![(1, vec![]), (200, vec![7; 40])],
            payload: vec![1],
            ..Default::default()
        };
        let b = p.to_vec().unwrap();
        assert_eq!(&b[12..14], &[0x10, 0x00]);
        assert_eq!(RtpPacket::parse(&b).unwrap(), p);
    }

    #[test]
    fn in_place_rewrites() {
        let mut b = RtpPacket { pt: Pt(96), payload: vec![1, 2], ..Default::default() }.to_vec().unwrap();
        set_seq(&mut b, SeqNo(77));
        set_ssrc(&mut b, Ssrc(5));
        set_timestamp(&mut b, MediaTime(9));
        let h = RtpHeader::parse(&b).unwrap();
        assert_eq!((h.seq, h.ssrc, h.timestamp), (SeqNo(77), Ssrc(5), MediaTime(9)));
    }

    fn arb_packet() -> impl Strategy<Value = RtpPacket> {
        let ext_one = proptest::collection::vec((1u8..=14, proptest::collection::vec(any::<u8>(), 1..=16)), 0..4);
        let ext_two = proptest::collection::vec((1u8..=255, proptest::collection::vec(any::<u8>(), 0..=40)), 0..4);
        (
            any::<bool>(),
            0u8..128,
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..=15),
            prop_oneof![ext_one, ext_two],
            proptest::collection::vec(any::<u8>(), 0..1300),
            prop_oneof![Just(0u8), 1u8..=255],
        )
            .prop_map(|(m, pt, seq, ts, ssrc, csrcs, extensions, payload, padding)| RtpPacket {
                marker: m,
                pt: Pt(pt),
                seq: SeqNo(seq),
                timestamp: MediaTime(ts),
                ssrc: Ssrc(ssrc),
                csrcs: csrcs.into_iter().map(Ssrc).collect(),
                extensions,
                payload,
                padding,
            })
    }

    proptest! {
        #[test]
        fn roundtrip(p in arb_packet()) {
            let b = p.to_vec().unwrap();
            prop_assert_eq!(RtpPacket::parse(&b).unwrap(), p.clone());
            let h = RtpHeader::parse(&b).unwrap();
            prop_assert_eq!(h.payload_offset + h.payload_len + h.padding as usize, b.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(h) = RtpHeader::parse(&b) {
                let _ = h.extensions(&b).count();
                let _ = h.csrcs(&b).count();
                prop_assert!(h.payload_offset + h.payload_len <= b.len());
            }
        }
    }
}

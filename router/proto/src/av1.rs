//! AV1 RTP payload format (AOM "RTP Payload Format for AV1", v1.0).
//!
//! - [`Packetizer`] splits one temporal unit, given as a low-overhead OBU
//!   stream (AV1 spec §5.2, `obu_has_size_field` set on all OBUs except
//!   possibly the last), into RTP payloads of at most `max_payload` bytes,
//!   each starting with the aggregation header. Temporal delimiters, tile
//!   lists and padding OBUs are not sent (RTP spec §5); the N bit marks the
//!   first packet of a coded video sequence.
//! - [`Depacketizer`] takes the payloads of one stream (with the RTP
//!   sequence number, timestamp and marker bit) and gives back complete
//!   temporal units as low-overhead OBU streams with size fields, starting
//!   with a temporal delimiter, which is what dav1d (and an IVF file) expects.
//!   It detects sequence-number gaps, drops what they corrupt, and asks for a
//!   keyframe; until one arrives it drops frames that cannot be decoded.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! +-+-+-+-+-+-+-+-+
//! |Z|Y| W |N|-|-|-|   aggregation header (RTP spec §4.4)
//! +-+-+-+-+-+-+-+-+
//! ```
//!
//! Z: the first OBU element continues an OBU fragment of the previous packet.
//! Y: the last OBU element continues in the next packet.
//! W: number of OBU elements (1..=3; the last one then has no length field),
//! or 0 (every element has a LEB128 length field).
//! N: first packet of a coded video sequence.

use std::collections::VecDeque;

use crate::ids::{MediaTime, SeqNo};

/// OBU type: sequence header.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type: temporal delimiter.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// OBU type: frame header.
pub const OBU_FRAME_HEADER: u8 = 3;
/// OBU type: tile group.
pub const OBU_TILE_GROUP: u8 = 4;
/// OBU type: metadata.
pub const OBU_METADATA: u8 = 5;
/// OBU type: frame (frame header + tile group).
pub const OBU_FRAME: u8 = 6;
/// OBU type: redundant frame header.
pub const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;
/// OBU type: tile list.
pub const OBU_TILE_LIST: u8 = 8;
/// OBU type: padding.
pub const OBU_PADDING: u8 = 15;

const OBU_FORBIDDEN_BIT: u8 = 0x80;
const OBU_EXTENSION_BIT: u8 = 0x04;
const OBU_HAS_SIZE_BIT: u8 = 0x02;

const AGG_Z: u8 = 0x80;
const AGG_Y: u8 = 0x40;
const AGG_W_SHIFT: u8 = 4;
const AGG_N: u8 = 0x08;

/// A temporal delimiter OBU with a zero size field.
pub const TEMPORAL_DELIMITER: [u8; 2] = [(OBU_TEMPORAL_DELIMITER << 3) | OBU_HAS_SIZE_BIT, 0];

/// Why an AV1 bitstream or payload could not be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Av1Error {
    /// A LEB128 value is truncated or longer than 8 bytes.
    #[error("invalid LEB128 value")]
    Leb128,
    /// An OBU is shorter than its header or size field says.
    #[error("OBU truncated")]
    Truncated,
    /// The OBU forbidden bit is set.
    #[error("OBU forbidden bit set")]
    ForbiddenBit,
    /// The maximum payload size is too small to carry anything.
    #[error("maximum payload size too small")]
    MtuTooSmall,
}

/// Reads a LEB128 value (AV1 spec §4.10.5): `(value, bytes used)`.
pub fn read_leb128(b: &[u8]) -> Result<(u64, usize), Av1Error> {
    let mut value = 0u64;
    for (i, &byte) in b.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(Av1Error::Leb128)
}

/// Number of bytes [`write_leb128`] uses for `v`.
pub fn leb128_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends `v` as LEB128 (shortest form).
pub fn write_leb128(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One OBU: header byte, optional extension byte and payload (without any size field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// The OBU header byte as found (the has-size bit may be either).
    pub header: u8,
    /// The extension header byte, if the extension flag is set.
    pub extension: Option<u8>,
    /// The OBU payload.
    pub payload: &'a [u8],
}

impl<'a> Obu<'a> {
    /// Parses one OBU from the start of `b`: `(obu, bytes used)`. Without a
    /// size field the OBU extends to the end of `b`.
    pub fn parse(b: &'a [u8]) -> Result<(Obu<'a>, usize), Av1Error> {
        let header = *b.first().ok_or(Av1Error::Truncated)?;
        if header & OBU_FORBIDDEN_BIT != 0 {
            return Err(Av1Error::ForbiddenBit);
        }
        let mut pos = 1;
        let extension = if header & OBU_EXTENSION_BIT != 0 {
            let e = *b.get(1).ok_or(Av1Error::Truncated)?;
            pos = 2;
            Some(e)
        } else {
            None
        };
        let len = if header & OBU_HAS_SIZE_BIT != 0 {
            let (size, n) = read_leb128(&b[pos..])?;
            pos += n;
            usize::try_from(size).map_err(|_| Av1Error::Truncated)?
        } else {
            b.len() - pos
        };
        let end = pos.checked_add(len).filter(|&e| e <= b.len()).ok_or(Av1Error::Truncated)?;
        Ok((Obu { header, extension, payload: &b[pos..end] }, end))
    }

    /// The OBU type (0..=15).
    pub fn obu_type(&self) -> u8 {
        (self.header >> 3) & 0x0f
    }

    /// Appends the OBU as an RTP OBU element: without a size field.
    pub fn write_element(&self, out: &mut Vec<u8>) {
        out.push(self.header & !OBU_HAS_SIZE_BIT);
        out.extend(self.extension);
        out.extend_from_slice(self.payload);
    }

    /// Appends the OBU in low-overhead format: with a size field.
    pub fn write_sized(&self, out: &mut Vec<u8>) {
        out.push(self.header | OBU_HAS_SIZE_BIT);
        out.extend(self.extension);
        write_leb128(self.payload.len() as u64, out);
        out.extend_from_slice(self.payload);
    }

    /// True for a frame or frame header OBU that starts a key frame
    /// (`show_existing_frame == 0`, `frame_type == KEY_FRAME`). Assumes the
    /// sequence header does not use `reduced_still_picture_header`.
    pub fn is_key_frame_header(&self) -> bool {
        matches!(self.obu_type(), OBU_FRAME | OBU_FRAME_HEADER) && self.payload.first().is_some_and(|b| b & 0xe0 == 0)
    }
}

/// Iterator over the OBUs of a low-overhead bitstream.
#[derive(Debug, Clone)]
pub struct ObuIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ObuIter<'a> {
    type Item = Result<Obu<'a>, Av1Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Obu::parse(self.rest) {
            Ok((obu, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(obu))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The OBUs of a low-overhead bitstream (AV1 spec §5.2).
pub fn obus(b: &[u8]) -> ObuIter<'_> {
    ObuIter { rest: b }
}

/// True when the temporal unit starts a coded video sequence: it has a
/// sequence header and a key frame.
pub fn starts_sequence(tu: &[u8]) -> bool {
    let mut seq = false;
    for obu in obus(tu) {
        let Ok(obu) = obu else { return false };
        match obu.obu_type() {
            OBU_SEQUENCE_HEADER => seq = true,
            OBU_FRAME | OBU_FRAME_HEADER => return seq && obu.is_key_frame_header(),
            _ => {}
        }
    }
    false
}

fn is_sent(obu_type: u8) -> bool {
    !matches!(obu_type, OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING)
}

/// Splits temporal units into RTP payloads (RTP spec §4.4, §5).
#[derive(Debug, Clone)]
pub struct Packetizer {
    max_payload: usize,
}

/// Smallest `max_payload` a [`Packetizer`] accepts.
pub const MIN_PAYLOAD: usize = 8;

impl Packetizer {
    /// A packetizer producing payloads of at most `max_payload` bytes
    /// (RTP MTU minus RTP header and extensions).
    pub fn new(max_payload: usize) -> Result<Packetizer, Av1Error> {
        if max_payload < MIN_PAYLOAD {
            return Err(Av1Error::MtuTooSmall);
        }
        Ok(Packetizer { max_payload })
    }

    /// Maximum payload size.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends the payloads for one temporal unit to `out` and returns how
    /// many were added (0 if the unit had nothing to send). The caller sends
    /// them with one RTP timestamp and sets the marker bit on the last one.
    pub fn packetize(&self, tu: &[u8], out: &mut Vec<Vec<u8>>) -> Result<usize, Av1Error> {
        // OBU elements: OBUs without size fields, in one buffer.
        let mut elems = Vec::with_capacity(tu.len());
        let mut bounds = Vec::new();
        let mut seq_header = false;
        let mut key = false;
        let mut first_frame = true;
        for obu in obus(tu) {
            let obu = obu?;
            let t = obu.obu_type();
            if !is_sent(t) {
                continue;
            }
            if t == OBU_SEQUENCE_HEADER {
                seq_header = true;
            }
            if first_frame && matches!(t, OBU_FRAME | OBU_FRAME_HEADER) {
                first_frame = false;
                key = obu.is_key_frame_header();
            }
            let start = elems.len();
            obu.write_element(&mut elems);
            bounds.push((start, elems.len()));
        }
        if bounds.is_empty() {
            return Ok(0);
        }

        // Plan the packets: each is a list of (start, end) ranges of `elems`.
        struct Plan {
            parts: Vec<(usize, usize)>,
            z: bool,
            y: bool,
        }
        let mut plans: Vec<Plan> = Vec::new();
        let mut parts = Vec::new();
        let mut room = self.max_payload - 1;
        let mut z = false;
        for &(start, end) in &bounds {
            let mut off = start;
            while off < end {
                let rest = end - off;
                let need = leb128_len(rest as u64) + rest;
                if need <= room {
                    parts.push((off, end));
                    room -= need;
                    off = end;
                    continue;
                }
                // With at most three elements (W != 0) the last one needs
                // no length field, so it may take the whole room.
                let w_last = parts.len() < 3;
                if w_last && rest <= room {
                    parts.push((off, end));
                    off = end;
                    plans.push(Plan { parts: std::mem::take(&mut parts), z, y: false });
                    z = false;
                    room = self.max_payload - 1;
                    continue;
                }
                // Does not fit: fragment into what is left, unless that is
                // only a sliver and the packet already carries something.
                let mut f = room;
                if !w_last {
                    f -= leb128_len(room as u64).min(room);
                    while f > 0 && f + leb128_len(f as u64) > room {
                        f -= 1;
                    }
                }
                let fragment = f > 0 && (parts.is_empty() || f >= 16);
                if fragment {
                    parts.push((off, off + f));
                    off += f;
                }
                plans.push(Plan { parts: std::mem::take(&mut parts), z, y: fragment });
                z = fragment;
                room = self.max_payload - 1;
            }
        }
        if !parts.is_empty() {
            plans.push(Plan { parts, z, y: false });
        }

        let n = plans.len();
        for (i, plan) in plans.into_iter().enumerate() {
            let count = plan.parts.len();
            let w = if count <= 3 { count as u8 } else { 0 };
            let mut agg = w << AGG_W_SHIFT;
            if plan.z {
                agg |= AGG_Z;
            }
            if plan.y {
                agg |= AGG_Y;
            }
            if i == 0 && seq_header && key {
                agg |= AGG_N;
            }
            let mut p = Vec::with_capacity(self.max_payload);
            p.push(agg);
            for (j, &(s, e)) in plan.parts.iter().enumerate() {
                if w == 0 || j + 1 < count {
                    write_leb128((e - s) as u64, &mut p);
                }
                p.extend_from_slice(&elems[s..e]);
            }
            debug_assert!(p.len() <= self.max_payload);
            out.push(p);
        }
        Ok(n)
    }
}

/// One complete temporal unit from the [`Depacketizer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Frame {
    /// RTP timestamp of the unit.
    pub timestamp: MediaTime,
    /// Low-overhead OBU stream: a temporal delimiter, then every received
    /// OBU with its size field.
    pub data: Vec<u8>,
    /// The unit has a sequence header and a key frame (a decoder can start here).
    pub keyframe: bool,
}

/// Counters kept by the [`Depacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Payloads handled (not counting late ones).
    pub packets: u64,
    /// Packets missing according to sequence numbers.
    pub lost_packets: u64,
    /// Packets older than one already handled (reordered or duplicated), ignored.
    pub late_packets: u64,
    /// Payloads or OBUs that did not parse.
    pub malformed: u64,
    /// Complete temporal units given out.
    pub frames: u64,
    /// Temporal units dropped because data was missing or malformed.
    pub corrupt_frames: u64,
    /// Temporal units dropped while waiting for a keyframe.
    pub skipped_frames: u64,
}

/// Reassembles temporal units from the RTP payloads of one AV1 stream.
///
/// Feed packets in arrival order with [`Depacketizer::handle_packet`], then
/// drain [`Depacketizer::poll_frame`] and [`Depacketizer::poll_keyframe_request`].
/// A unit ends at the marker bit (or, leniently, when the timestamp changes
/// with nothing pending). Any sequence-number gap drops the unit it hits and
/// everything up to the next keyframe, and raises a keyframe request; so does
/// the start of the stream, since a decoder must start at a keyframe.
#[derive(Debug)]
pub struct Depacketizer {
    last_seq: Option<SeqNo>,
    ts: Option<MediaTime>,
    /// Sized OBUs of the current unit.
    tu: Vec<u8>,
    /// OBU element being assembled across packets.
    frag: Vec<u8>,
    in_frag: bool,
    /// The current unit lost data.
    broken: bool,
    /// Whether anything was received for the current unit.
    started: bool,
    seq_header: bool,
    key: Option<bool>,
    waiting_keyframe: bool,
    keyframe_request: bool,
    frames: VecDeque<Av1Frame>,
    stats: DepacketizerStats,
}

impl Default for Depacketizer {
    fn default() -> Self {
        Depacketizer::new()
    }
}

impl Depacketizer {
    /// A depacketizer that waits for a keyframe and has a keyframe request pending.
    pub fn new() -> Depacketizer {
        Depacketizer {
            last_seq: None,
            ts: None,
            tu: Vec::new(),
            frag: Vec::new(),
            in_frag: false,
            broken: false,
            started: false,
            seq_header: false,
            key: None,
            waiting_keyframe: true,
            keyframe_request: true,
            frames: VecDeque::new(),
            stats: DepacketizerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// True while frames are dropped until a keyframe arrives.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Handles one RTP payload of the stream.
    pub fn handle_packet(&mut self, seq: SeqNo, timestamp: MediaTime, marker: bool, payload: &[u8]) {
        let mut lost = false;
        if let Some(last) = self.last_seq {
            if !seq.is_newer_than(last) {
                self.stats.late_packets += 1;
                return;
            }
            let gap = last.delta(seq) as u16 - 1;
            if gap > 0 {
                self.stats.lost_packets += u64::from(gap);
                lost = true;
            }
        }
        self.last_seq = Some(seq);
        self.stats.packets += 1;
        let agg = payload.first().copied().unwrap_or(0);

        if self.ts != Some(timestamp) {
            if self.started {
                // The previous unit ended without its marker bit.
                let complete = !lost && !self.in_frag;
                self.end_unit(complete);
            }
            self.ts = Some(timestamp);
        }
        if lost {
            self.waiting_keyframe = true;
            self.keyframe_request = true;
            // What was lost may belong to this unit, unless this packet
            // visibly starts a coded video sequence.
            let starts_here = !self.started && agg & AGG_N != 0 && agg & AGG_Z == 0;
            if !starts_here {
                self.broken = true;
            }
            self.in_frag = false;
            self.frag.clear();
        }
        self.started = true;

        if self.parse_payload(payload).is_err() {
            self.stats.malformed += 1;
            self.broken = true;
            self.in_frag = false;
            self.frag.clear();
        }
        if marker {
            if self.in_frag {
                // Y set on the last packet of a unit.
                self.stats.malformed += 1;
                self.broken = true;
                self.in_frag = false;
                self.frag.clear();
            }
            self.end_unit(true);
        }
    }

    /// The next complete temporal unit, in order.
    pub fn poll_frame(&mut self) -> Option<Av1Frame> {
        self.frames.pop_front()
    }

    /// True once after each event that needs a keyframe from the sender
    /// (stream start, loss). The caller sends PLI and should repeat it at
    /// its own pace while [`Depacketizer::waiting_for_keyframe`] holds.
    pub fn poll_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// Asks for a keyframe request to be raised again (e.g. after the
    /// decoder failed on a unit this depacketizer gave out).
    pub fn request_keyframe(&mut self) {
        self.waiting_keyframe = true;
        self.keyframe_request = true;
    }

    fn parse_payload(&mut self, payload: &[u8]) -> Result<(), Av1Error> {
        let (&agg, body) = payload.split_first().ok_or(Av1Error::Truncated)?;
        let z = agg & AGG_Z != 0;
        let y = agg & AGG_Y != 0;
        let w = usize::from((agg >> AGG_W_SHIFT) & 3);
        let mut pos = 0;
        let mut idx = 0;
        while pos < body.len() {
            let last_by_w = w != 0 && idx + 1 == w;
            let len = if last_by_w {
                body.len() - pos
            } else {
                let (v, n) = read_leb128(&body[pos..])?;
                pos += n;
                usize::try_from(v).map_err(|_| Av1Error::Truncated)?
            };
            let end = pos.checked_add(len).filter(|&e| e <= body.len()).ok_or(Av1Error::Truncated)?;
            let elem = &body[pos..end];
            pos = end;
            let is_last = pos == body.len();
            if idx == 0 && z {
                if self.in_frag {
                    self.frag.extend_from_slice(elem);
                } else {
                    // The start of this OBU is missing.
                    self.broken = true;
                }
            } else {
                if self.in_frag {
                    // A fragment was announced (Y) but never continued (Z).
                    self.broken = true;
                }
                self.frag.clear();
                self.frag.extend_from_slice(elem);
                self.in_frag = true;
            }
            if !(is_last && y) && self.in_frag {
                self.in_frag = false;
                let r = self.finish_obu();
                self.frag.clear();
                r?;
            }
            idx += 1;
            if last_by_w {
                break;
            }
        }
        if w != 0 && idx != w {
            return Err(Av1Error::Truncated);
        }
        Ok(())
    }

    fn finish_obu(&mut self) -> Result<(), Av1Error> {
        if self.frag.is_empty() {
            return Ok(());
        }
        let (obu, _) = Obu::parse(&self.frag)?;
        let t = obu.obu_type();
        if !is_sent(t) {
            return Ok(());
        }
        if t == OBU_SEQUENCE_HEADER {
            self.seq_header = true;
        }
        if self.key.is_none() && matches!(t, OBU_FRAME | OBU_FRAME_HEADER) {
            self.key = Some(obu.is_key_frame_header());
        }
        obu.write_sized(&mut self.tu);
        Ok(())
    }

    fn end_unit(&mut self, complete: bool) {
        let keyframe = self.seq_header && self.key == Some(true);
        let has_data = !self.tu.is_empty();
        if !complete || self.broken {
            if has_data || self.broken {
                self.stats.corrupt_frames += 1;
            }
            if !self.waiting_keyframe {
                self.waiting_keyframe = true;
                self.keyframe_request = true;
            }
        } else if has_data {
            if self.waiting_keyframe && !keyframe {
                self.stats.skipped_frames += 1;
            } else {
                self.waiting_keyframe = false;
                let mut data = Vec::with_capacity(TEMPORAL_DELIMITER.len() + self.tu.len());
                data.extend_from_slice(&TEMPORAL_DELIMITER);
                data.extend_from_slice(&self.tu);
                self.stats.frames += 1;
                self.frames.push_back(Av1Frame { timestamp: self.ts.unwrap_or_default(), data, keyframe });
            }
        }
        self.tu.clear();
        self.frag.clear();
        self.in_frag = false;
        self.broken = false;
        self.started = false;
        self.seq_header = false;
        self.key = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sized OBU header byte for a type.
    fn hs(t: u8) -> u8 {
        (t << 3) | OBU_HAS_SIZE_BIT
    }
    /// Element (unsized) OBU header byte for a type.
    fn he(t: u8) -> u8 {
        t << 3
    }

    fn sized(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![hs(t)];
        write_leb128(payload.len() as u64, &mut v);
        v.extend_from_slice(payload);
        v
    }

    /// A key frame OBU payload: show_existing_frame=0, frame_type=KEY (0).
    fn key_payload(n: usize) -> Vec<u8> {
        let mut p = vec![0x10; n];
        p[0] = 0x10;
        p
    }

    /// An inter frame OBU payload: show_existing_frame=0, frame_type=INTER (1).
    fn inter_payload(n: usize) -> Vec<u8> {
        let mut p = vec![0x55; n];
        p[0] = 0x30;
        p
    }

    fn key_tu(n: usize) -> Vec<u8> {
        let mut tu = TEMPORAL_DELIMITER.to_vec();
        tu.extend(sized(OBU_SEQUENCE_HEADER, &[0, 0, 0, 0x0a, 0x0b]));
        tu.extend(sized(OBU_FRAME, &key_payload(n)));
        tu
    }

    fn inter_tu(n: usize) -> Vec<u8> {
        let mut tu = TEMPORAL_DELIMITER.to_vec();
        tu.extend(sized(OBU_FRAME, &inter_payload(n)));
        tu
    }

    fn feed(d: &mut Depacketizer, seq: &mut u16, ts: u32, payloads: &[Vec<u8>]) {
        for (i, p) in payloads.iter().enumerate() {
            d.handle_packet(SeqNo(*seq), MediaTime(ts), i + 1 == payloads.len(), p);
            *seq = seq.wrapping_add(1);
        }
    }

    #[test]
    fn leb128_vectors() {
        for (v, bytes) in [
            (0u64, &[0x00u8][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16384, &[0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            write_leb128(v, &mut out);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(leb128_len(v), bytes.len());
            assert_eq!(read_leb128(bytes), Ok((v, bytes.len())));
        }
        // Non-minimal encodings are valid (AV1 spec §4.10.5).
        assert_eq!(read_leb128(&[0x85, 0x80, 0x00]), Ok((5, 3)));
        assert_eq!(read_leb128(&[0x80, 0x80]), Err(Av1Error::Leb128));
        assert_eq!(read_leb128(&[0x80; 9]), Err(Av1Error::Leb128));
    }

    /// RTP spec §4.4/§4.5: one packet, W=2, N=1: a sequence header element
    /// with a length field, then a frame element taking the rest. The
    /// temporal delimiter is not sent; size fields are removed.
    #[test]
    fn packetize_single_packet_vector() {
        let tu = key_tu(4);
        let mut out = Vec::new();
        assert_eq!(Packetizer::new(1200).unwrap().packetize(&tu, &mut out), Ok(1));
        let expected = vec![
            0b0010_1000, // Z=0 Y=0 W=2 N=1
            6,           // element 1 length
            he(OBU_SEQUENCE_HEADER),
            0,
            0,
            0,
            0x0a,
            0x0b,
            he(OBU_FRAME), // element 2: the rest of the packet
            0x10,
            0x10,
            0x10,
            0x10,
        ];
        assert_eq!(out, vec![expected]);
    }

    /// RTP spec §4.4: an OBU fragmented over three packets: Y=1 on the
    /// first, Z=1 Y=1 on the middle, Z=1 on the last; W=1 everywhere.
    #[test]
    fn packetize_fragment_vector() {
        let mut tu = TEMPORAL_DELIMITER.to_vec();
        tu.extend(sized(OBU_FRAME, &inter_payload(20)));
        let mut out = Vec::new();
        assert_eq!(Packetizer::new(8).unwrap().packetize(&tu, &mut out), Ok(3));
        // 21 element bytes, 7 per packet (W=1: the only element has no length field).
        assert_eq!(out[0][0], 0b0101_0000);
        assert_eq!(out[1][0], 0b1101_0000);
        assert_eq!(out[2][0], 0b1001_0000);
        for p in &out {
            assert_eq!(p.len(), 8);
        }
        let mut elem = Vec::new();
        for p in &out {
            elem.extend_from_slice(&p[1..]);
        }
        // W=1: no length fields at all.
        assert_eq!(elem[0], he(OBU_FRAME));
        assert_eq!(&elem[1..], &inter_payload(20)[..]);
    }

    /// Depacketizer on hand-built payloads in the spec's layouts: W=0 with
    /// all lengths, an OBU kept with its size field (allowed for senders),
    /// and a fragmented OBU.
    #[test]
    fn depacketize_hand_built() {
        let sh = [he(OBU_SEQUENCE_HEADER), 1, 2, 3];
        let fr = [he(OBU_FRAME), 0x10, 0xaa, 0xbb, 0xcc];
        // Packet 1: Y=1 W=0 N=1: [len sh][sh][len frag][frame part 1].
        let mut p1 = vec![0b0100_1000, sh.len() as u8];
        p1.extend_from_slice(&sh);
        p1.push(3);
        p1.extend_from_slice(&fr[..3]);
        // Packet 2: Z=1 W=2: [len][frame part 2][metadata OBU with its size field kept].
        let mut p2 = vec![0b1010_0000, 2];
        p2.extend_from_slice(&fr[3..]);
        p2.extend(sized(OBU_METADATA, &[9, 9]));
        let mut d = Depacketizer::new();
        assert!(d.poll_keyframe_request(), "stream start asks for a keyframe");
        let mut seq = 65535;
        feed(&mut d, &mut seq, 1000, &[p1, p2]);
        let f = d.poll_frame().expect("frame");
        let mut expected = TEMPORAL_DELIMITER.to_vec();
        expected.extend(sized(OBU_SEQUENCE_HEADER, &[1, 2, 3]));
        expected.extend(sized(OBU_FRAME, &[0x10, 0xaa, 0xbb, 0xcc]));
        expected.extend(sized(OBU_METADATA, &[9, 9]));
        assert_eq!(f, Av1Frame { timestamp: MediaTime(1000), data: expected, keyframe: true });
        assert!(d.poll_frame().is_none());
        assert!(!d.waiting_for_keyframe());
        assert!(!d.poll_keyframe_request());
    }

    #[test]
    fn loss_requests_keyframe_and_skips_until_one() {
        let p = Packetizer::new(100).unwrap();
        let mut d = Depacketizer::new();
        let _ = d.poll_keyframe_request();
        let mut seq = 10;
        let mut out = Vec::new();
        p.packetize(&inter_tu(50), &mut out).unwrap();
        feed(&mut d, &mut seq, 0, &out);
        assert!(d.poll_frame().is_none(), "inter frame before any keyframe is skipped");
        assert_eq!(d.stats().skipped_frames, 1);

        out.clear();
        p.packetize(&key_tu(300), &mut out).unwrap();
        assert!(out.len() >= 3);
        assert_eq!(out[0][0] & AGG_N, AGG_N);
        assert!(out[1..].iter().all(|p| p[0] & AGG_N == 0));
        feed(&mut d, &mut seq, 3000, &out);
        let f = d.poll_frame().unwrap();
        assert!(f.keyframe);
        assert_eq!(f.data, key_tu(300));

        // Lose the middle packet of an inter frame.
        out.clear();
        p.packetize(&inter_tu(300), &mut out).unwrap();
        out.remove(1);
        let s0 = seq;
        for (i, pl) in out.iter().enumerate() {
            let s = if i == 0 { s0 } else { s0.wrapping_add(i as u16 + 1) };
            d.handle_packet(SeqNo(s), MediaTime(6000), i + 1 == out.len(), pl);
        }
        seq = s0.wrapping_add(out.len() as u16 + 1);
        assert!(d.poll_frame().is_none());
        assert!(d.poll_keyframe_request());
        assert!(d.waiting_for_keyframe());
        assert_eq!(d.stats().lost_packets, 1);
        assert_eq!(d.stats().corrupt_frames, 1);

        // A following complete inter frame is still skipped.
        out.clear();
        p.packetize(&inter_tu(30), &mut out).unwrap();
        feed(&mut d, &mut seq, 9000, &out);
        assert!(d.poll_frame().is_none());

        // A keyframe right after a gap is kept (N=1 marks its start).
        out.clear();
        p.packetize(&key_tu(30), &mut out).unwrap();
        seq = seq.wrapping_add(5);
        feed(&mut d, &mut seq, 12000, &out);
        assert!(d.poll_frame().unwrap().keyframe);
        assert!(!d.waiting_for_keyframe());
    }

    #[test]
    fn late_and_duplicate_packets_are_ignored() {
        let p = Packetizer::new(1200).unwrap();
        let mut d = Depacketizer::new();
        let mut out = Vec::new();
        p.packetize(&key_tu(10), &mut out).unwrap();
        d.handle_packet(SeqNo(5), MediaTime(1), true, &out[0]);
        d.handle_packet(SeqNo(5), MediaTime(1), true, &out[0]);
        d.handle_packet(SeqNo(4), MediaTime(1), true, &out[0]);
        assert_eq!(d.stats().late_packets, 2);
        assert!(d.poll_frame().is_some());
        assert!(d.poll_frame().is_none());
    }

    #[test]
    fn missing_marker_ends_unit_on_timestamp_change() {
        let p = Packetizer::new(1200).unwrap();
        let mut d = Depacketizer::new();
        let mut out = Vec::new();
        p.packetize(&key_tu(10), &mut out).unwrap();
        d.handle_packet(SeqNo(1), MediaTime(0), false, &out[0]);
        assert!(d.poll_frame().is_none());
        out.clear();
        p.packetize(&inter_tu(10), &mut out).unwrap();
        d.handle_packet(SeqNo(2), MediaTime(3000), true, &out[0]);
        assert_eq!(d.poll_frame().unwrap().timestamp, MediaTime(0));
        assert_eq!(d.poll_frame().unwrap().timestamp, MediaTime(3000));
    }

    #[test]
    fn packetizer_rejects_tiny_mtu_and_bad_input() {
        assert_eq!(Packetizer::new(3).unwrap_err(), Av1Error::MtuTooSmall);
        let p = Packetizer::new(100).unwrap();
        let mut out = Vec::new();
        assert_eq!(p.packetize(&[0x32, 10, 1], &mut out), Err(Av1Error::Truncated));
        assert_eq!(p.packetize(&[0x80], &mut out), Err(Av1Error::ForbiddenBit));
        assert_eq!(p.packetize(&TEMPORAL_DELIMITER, &mut out), Ok(0));
        assert!(out.is_empty());
    }

    #[derive(Debug, Clone)]
    struct TestObu {
        t: u8,
        ext: Option<u8>,
        payload: Vec<u8>,
        sized: bool,
    }

    fn arb_obu() -> impl Strategy<Value = TestObu> {
        (
            prop::sample::select(vec![
                OBU_SEQUENCE_HEADER,
                OBU_TEMPORAL_DELIMITER,
                OBU_FRAME_HEADER,
                OBU_TILE_GROUP,
                OBU_METADATA,
                OBU_FRAME,
                OBU_PADDING,
            ]),
            prop::option::of(any::<u8>()),
            prop::collection::vec(any::<u8>(), 0..2500),
            any::<bool>(),
        )
            .prop_map(|(t, ext, payload, sized)| TestObu { t, ext, payload, sized })
    }

    fn build(obus: &[TestObu]) -> (Vec<u8>, Vec<u8>) {
        let mut tu = Vec::new();
        let mut expected = TEMPORAL_DELIMITER.to_vec();
        for (i, o) in obus.iter().enumerate() {
            let last = i + 1 == obus.len();
            let header = (o.t << 3) | if o.ext.is_some() { OBU_EXTENSION_BIT } else { 0 };
            let obu = Obu { header, extension: o.ext, payload: &o.payload };
            if last && !o.sized {
                obu.write_element(&mut tu);
            } else {
                obu.write_sized(&mut tu);
            }
            if is_sent(o.t) {
                obu.write_sized(&mut expected);
            }
        }
        (tu, expected)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn round_trip(
            mut obus in prop::collection::vec(arb_obu(), 1..6),
            mtu in MIN_PAYLOAD..1500usize,
            seq0 in any::<u16>(),
            ts in any::<u32>(),
        ) {
            // Start with a keyframe so the depacketizer gives the unit out.
            obus.insert(0, TestObu { t: OBU_SEQUENCE_HEADER, ext: None, payload: vec![1, 2], sized: true });
            obus.insert(1, TestObu { t: OBU_FRAME, ext: None, payload: key_payload(7), sized: true });
            let (tu, expected) = build(&obus);
            let p = Packetizer::new(mtu).unwrap();
            let mut out = Vec::new();
            let n = p.packetize(&tu, &mut out).unwrap();
            prop_assert_eq!(n, out.len());
            prop_assert!(out.iter().all(|p| p.len() <= mtu && p.len() > 1));
            prop_assert_eq!(out[0][0] & AGG_N, AGG_N);
            let mut d = Depacketizer::new();
            let mut seq = seq0;
            feed(&mut d, &mut seq, ts, &out);
            let f = d.poll_frame().expect("frame");
            prop_assert!(f.keyframe);
            prop_assert_eq!(f.timestamp, MediaTime(ts));
            prop_assert_eq!(f.data, expected);
            prop_assert!(d.poll_frame().is_none());
            prop_assert_eq!(d.stats().malformed, 0);
        }

        #[test]
        fn depacketizer_never_panics(
            pkts in prop::collection::vec(
                (any::<u16>(), any::<u32>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)),
                0..20,
            ),
        ) {
            let mut d = Depacketizer::new();
            for (seq, ts, m, p) in pkts {
                d.handle_packet(SeqNo(seq), MediaTime(ts), m, &p);
                while let Some(f) = d.poll_frame() {
                    // Whatever comes out parses as a low-overhead stream.
                    prop_assert!(obus(&f.data).all(|o| o.is_ok()));
                }
            }
        }
    }
}

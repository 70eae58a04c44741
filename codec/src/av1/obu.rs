//! OBUs (AV1 spec §5.3) and LEB128 values (§4.10.5): parsing a
//! low-overhead bitstream and writing OBUs with or without size fields.

use super::Av1Error;

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

pub(super) const OBU_FORBIDDEN_BIT: u8 = 0x80;
pub(super) const OBU_EXTENSION_BIT: u8 = 0x04;
pub(super) const OBU_HAS_SIZE_BIT: u8 = 0x02;

/// A temporal delimiter OBU with a zero size field.
pub const TEMPORAL_DELIMITER: [u8; 2] = [(OBU_TEMPORAL_DELIMITER << 3) | OBU_HAS_SIZE_BIT, 0];

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

/// False for the OBU types the RTP payload format does not send (RTP spec §5).
pub(super) fn is_sent(obu_type: u8) -> bool {
    !matches!(obu_type, OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING)
}

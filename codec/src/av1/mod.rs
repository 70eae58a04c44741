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
//!
//! Files: `obu` parses and writes OBUs and LEB128 values; `packetizer` and
//! `depacketizer` are the two directions of the payload format; `ivf` reads the IVF container. Every item is
//! re-exported here, as `corecast_codec::av1::...`.
#![forbid(unsafe_code)]

mod depacketizer;
mod ivf;
mod obu;
mod packetizer;

pub use depacketizer::{Av1Frame, Depacketizer, DepacketizerStats};
pub use ivf::parse_ivf;
pub use obu::{
    leb128_len, obus, read_leb128, starts_sequence, write_leb128, Obu, ObuIter, OBU_FRAME, OBU_FRAME_HEADER,
    OBU_METADATA, OBU_PADDING, OBU_REDUNDANT_FRAME_HEADER, OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER, OBU_TILE_GROUP,
    OBU_TILE_LIST, TEMPORAL_DELIMITER,
};
pub use packetizer::{Packetizer, MIN_PAYLOAD};

// Aggregation header bits (RTP spec §4.4).
pub(super) const AGG_Z: u8 = 0x80;
pub(super) const AGG_Y: u8 = 0x40;
pub(super) const AGG_W_SHIFT: u8 = 4;
pub(super) const AGG_N: u8 = 0x08;

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

#[cfg(test)]
mod tests;

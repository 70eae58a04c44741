//! SDP (RFC 8866) as WebRTC uses it (RFC 8829 JSEP, RFC 8843 BUNDLE), and the
//! answer the router gives a browser's WHIP or WHEP offer.
//!
//! Layout:
//! - `model`: [`SessionDescription`], [`MediaDescription`], [`Attribute`] and
//!   the [`Attributes`] accessors (mid, direction, ICE, DTLS, codecs, ...);
//! - `attrs`: the typed attribute values ([`RtpMap`], [`Fmtp`], [`RtcpFb`],
//!   [`ExtMap`], [`Fingerprint`], ...), each parsed from and written as the
//!   attribute's value;
//! - `candidate`: ICE `a=candidate` lines;
//! - `parse` / `write`: text to model and back (`\r\n` or `\n` in, `\r\n` out),
//!   with the size limits in [`limits`];
//! - `answer`: [`answer()`], what an ICE-lite, DTLS-passive SFU answers, and
//!   the [`Negotiated`] result the router runs the leg with.
//!
//! Parsing is lenient with what it does not know (unknown attributes and
//! lines are kept and written back) and strict with structure (`v=0` first,
//! `o=`/`s=`/`t=`/`m=` syntax, numbers). It never panics; the fuzz target
//! `sdp` and the property tests hold it to that.

mod answer;
mod attrs;
mod candidate;
mod model;
mod negotiate;
mod parse;
mod write;

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod tests;

pub use answer::{
    answer, Answer, AnswerConfig, AnswerError, Codec, Extensions, Feedback, Mode, Negotiated, NegotiatedMedia,
    RemoteSsrc, SendTrack, VideoCodec,
};
pub use attrs::{
    Direction, ExtMap, Fingerprint, Fmtp, Group, Msid, Rid, RidDirection, RtcpFb, RtcpFbPt, RtpMap, Setup, Simulcast,
    SsrcAttr, SsrcGroup,
};
pub use candidate::Candidate;
pub use model::{
    Attribute, Attributes, Bandwidth, Connection, MediaDescription, MediaKind, Origin, SessionDescription, Timing,
};

/// The limits a parsed SDP must stay within (bad or hostile input is refused
/// before it costs much).
pub mod limits {
    /// Longest SDP text accepted, in bytes.
    pub const MAX_SDP_BYTES: usize = 64 * 1024;
    /// Most `m=` sections.
    pub const MAX_MEDIA: usize = 64;
    /// Longest line, in bytes (without its line ending).
    pub const MAX_LINE_BYTES: usize = 4 * 1024;
    /// Most `a=` lines in the session section or in one media section.
    pub const MAX_ATTRIBUTES: usize = 512;
}

/// Why a text is not an SDP the router reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Over [`limits::MAX_SDP_BYTES`].
    #[error("SDP is {0} bytes, over the {max} byte limit", max = limits::MAX_SDP_BYTES)]
    TooLarge(usize),
    /// A line over [`limits::MAX_LINE_BYTES`].
    #[error("SDP line {line} is {len} bytes, over the {max} byte limit", max = limits::MAX_LINE_BYTES)]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// More than [`limits::MAX_MEDIA`] `m=` sections.
    #[error("SDP has more than {max} m-lines", max = limits::MAX_MEDIA)]
    TooManyMedia,
    /// More than [`limits::MAX_ATTRIBUTES`] attributes in one section.
    #[error("SDP section at line {line} has more than {max} attributes", max = limits::MAX_ATTRIBUTES)]
    TooManyAttributes {
        /// 1-based line number of the attribute over the limit.
        line: usize,
    },
    /// Not UTF-8 text.
    #[error("SDP is not UTF-8 text")]
    NotText,
    /// Empty, or the first line is not `v=0`.
    #[error("SDP must start with v=0")]
    NoVersion,
    /// A required session line (`o=`, `s=`, `t=`) is absent.
    #[error("SDP has no {0}= line")]
    MissingLine(char),
    /// A line that does not parse.
    #[error("SDP line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An attribute value that does not parse as its type.
    #[error("a={name} value {value:?} is malformed")]
    BadAttribute {
        /// The attribute's name.
        name: &'static str,
        /// The value (cut to 64 characters).
        value: String,
    },
}

impl SdpError {
    fn bad(name: &'static str, value: &str) -> SdpError {
        SdpError::BadAttribute { name, value: value.chars().take(64).collect() }
    }
}

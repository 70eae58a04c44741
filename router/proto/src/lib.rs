//! corecast wire protocol.
//!
//! Everything that crosses the router's UDP port, as plain data types with
//! parsers and serializers and no I/O:
//!
//! - [`rtp`]: RTP packets (RFC 3550) with RFC 8285 header extensions;
//! - [`rtcp`]: compound RTCP (SR, RR, SDES, BYE, APP, NACK, PLI, FIR, REMB);
//! - [`session`]: corecast session messages (join, leave, keepalive), framed
//!   as STUN messages so the port demultiplexes as RFC 7983 describes;
//! - [`token`]: the join token the calls service signs and the router verifies;
//! - [`demux`]: first-byte classification of a datagram.
//!
//! Every parser returns an error on malformed input and never panics; the
//! fuzz and property tests hold it to that.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod demux;
pub mod ids;
pub mod placement;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod token;

pub use ids::{MediaKind, MediaTime, Pt, SeqNo, Ssrc};

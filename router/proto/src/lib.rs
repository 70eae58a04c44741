//! corecast wire protocol.
//!
//! Everything that crosses the router's UDP port, as plain data types with
//! parsers and serializers and no I/O. What lives where:
//!
//! - [`rtp`]: RTP packets (RFC 3550) with RFC 8285 header extensions;
//! - [`rtcp`]: compound RTCP, one file per message type (SR, RR, SDES, BYE, APP, NACK, PLI, FIR, REMB,
//!   transport-wide CC feedback) and the transport-wide CC feedback recorder;
//! - [`sdp`]: SDP offers parsed, and the ICE-lite SFU answer to a WHIP/WHEP offer;
//! - [`session`]: STUN-framed session messages (join, leave, keepalive, ...) and [`session::speakers`];
//! - [`srtp`]: SRTP and SRTCP (RFC 3711, RFC 7714 AES-GCM) for WebRTC legs, keyed from DTLS-SRTP;
//! - [`ice`]: the STUN side of ICE-lite: Binding requests parsed and verified (MESSAGE-INTEGRITY, FINGERPRINT), responses written;
//! - [`token`]: the join token the calls service signs and the router verifies;
//! - [`join_key`]: the per-join key a native client signs its session messages with;
//! - [`pipe_seal`]: the per-link keys and AEAD that seal router-to-router pipe datagrams (cascading);
//! - [`placement`]: which router worker owns a call (a hash stable across processes and languages);
//! - [`demux`]: first-byte (RFC 7983) classification of a datagram;
//! - [`ids`]: SSRC, sequence number, RTP timestamp, payload type and media kind;
//! - [`temporal`]: the temporal layer id of a VP8 or AV1 payload (frame-rate thinning).
//!
//! The AV1 RTP payload format is in the codec crate (`corecast_codec::av1`),
//! since only the mixer and the clients use it.
//!
//! Every parser returns an error on malformed input and never panics; the
//! fuzz and property tests hold it to that.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dd;
pub mod demux;
pub mod frame_size;
pub mod ice;
pub mod ids;
pub mod join_key;
pub mod keyframe;
pub mod pipe_seal;
pub mod placement;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod temporal;
pub mod token;

pub use ids::{MediaKind, MediaTime, Pt, SeqNo, Ssrc};

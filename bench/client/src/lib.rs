//! corecast reference client.
//!
//! Joins a call on a router with a join token, sends paced synthetic media
//! (audio at 50 packets/s; video at a chosen frame rate with each frame split
//! into equal-sized packets), and verifies every packet it receives: loss,
//! duplicates, reordering, corruption and latency (see [`media`]).
//!
//! With [`av1`] it sends real AV1 (a live-encoded test pattern or an IVF
//! file) and saves what it receives as IVF files.
//!
//! With [`webrtc`] it is a WebRTC peer (offer, ICE, DTLS-SRTP) that joins
//! through the calls service's WHIP/WHEP endpoints.
//!
//! The same library drives the bench's synthetic participants and the
//! end-to-end tests.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod av1;
pub mod client;
pub mod control;
pub mod follow;
pub mod media;
pub mod receive;
pub mod report;
pub mod webrtc;

pub use client::{Client, ClientError, MediaPlan, ReceiveHandle, SendReport};
pub use control::{ControlClient, ControlError, JoinGrant};
pub use follow::{follow, FollowConfig, FollowProgress, FollowReport, Via};
pub use report::{Latency, RecvReport};

/// Microseconds since the Unix epoch (the clock probes carry).
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

//! corecast codec pool: the media core of the RTP mixer that composes a
//! call's video sources into one SD stream.
//!
//! - [`av1`]: the AV1 RTP payload format (OBUs, packetizer, depacketizer);
//! - [`frame`], [`scale`], [`compose`], [`pattern`]: I420 frames, a bilinear
//!   scaler, grid layouts for 1..=9 sources at 640x360, test patterns;
//! - [`decode`]: dav1d decoder; [`svt`]: SVT-AV1 encoder (the only `unsafe`);
//! - [`mixer`]: the sans-IO per-call mixer (RTP in, composite RTP, keyframe
//!   requests and events out), with [`audio_mix`] for its audio (Opus decode
//!   per source behind a reorder buffer, [`audio_jitter`], loudest-speakers
//!   mix, Opus encode);
//! - [`pool`]: worker threads that join calls as their mixer at the router
//!   and move the mixers' packets; [`metrics`]: their counters in the
//!   Prometheus text format; [`admin`]: `/healthz`, `/readyz` and `/metrics`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod audio_jitter;
pub mod audio_mix;
pub mod av1;
pub mod compose;
pub mod decode;
pub mod frame;
pub mod metrics;
pub mod mixer;
pub mod mixer_api;
pub mod pattern;
pub mod pool;
pub mod scale;
pub mod svt; // allows unsafe_code itself (`#![allow(unsafe_code)]` in svt.rs)

pub use audio_mix::{AudioMixConfig, AudioMixStats, AudioMixer};
pub use compose::{Compositor, Rect};
pub use decode::{Decoder, Picture};
pub use frame::{I420Frame, YuvView};
pub use metrics::PoolStats;
pub use mixer::{Mixer, MixerConfig, MixerEvent, MixerOutput, MixerStats};
pub use pattern::TestPattern;
pub use pool::{CodecPool, MixRequest, PoolConfig, PoolEvent};
pub use svt::{EncodedFrame, Encoder, EncoderConfig};

/// Errors from the codec libraries and the mixer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// dav1d failed.
    #[error("dav1d: {0}")]
    Decoder(String),
    /// An SVT-AV1 call failed.
    #[error("SVT-AV1 {what} failed with {code:#x}")]
    Encoder {
        /// The call or parameter.
        what: &'static str,
        /// SVT error code.
        code: i64,
    },
    /// Input or settings outside what this crate supports.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// AV1 bitstream or payload error.
    #[error("AV1: {0}")]
    Av1(#[from] av1::Av1Error),
    /// libopus failed.
    #[error("Opus: {0}")]
    Opus(String),
}

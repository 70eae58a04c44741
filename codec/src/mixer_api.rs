//! The per-call mixer's boundary types: its settings, what it outputs and
//! reports, and its counters (the mixer itself: [`crate::mixer`]).

use std::time::Duration;

use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};

use crate::audio_mix::{AudioMixConfig, AudioMixStats};

/// Mixer settings.
#[derive(Debug, Clone)]
pub struct MixerConfig {
    /// Output width (even).
    pub width: usize,
    /// Output height (even).
    pub height: usize,
    /// Output frame rate.
    pub fps: u32,
    /// Output bitrate in kbit/s (CBR).
    pub bitrate_kbps: u32,
    /// SVT-AV1 preset.
    pub preset: u8,
    /// Encoder threads (SVT `lp`).
    pub encoder_threads: u32,
    /// SSRC of the composite stream (also the sender SSRC of PLIs).
    pub ssrc: Ssrc,
    /// Payload type of the composite stream.
    pub pt: Pt,
    /// Largest RTP payload to produce.
    pub max_payload: usize,
    /// First RTP sequence number.
    pub initial_seq: SeqNo,
    /// RTP timestamp of the first output frame.
    pub initial_timestamp: MediaTime,
    /// Repeat a source's keyframe request this often while it is missing.
    pub pli_interval: Duration,
    /// A source silent for this long leaves the layout.
    pub source_timeout: Duration,
    /// Forced composite keyframes are at least this far apart (PLI/FIR coalescing).
    pub min_keyframe_interval: Duration,
    /// The mixed audio stream (its own SSRC).
    pub audio: AudioMixConfig,
}

impl Default for MixerConfig {
    fn default() -> Self {
        MixerConfig {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_kbps: 600,
            preset: 12,
            encoder_threads: 1,
            ssrc: Ssrc(0x6d69_7872),
            pt: Pt(45),
            max_payload: 1200,
            initial_seq: SeqNo(0),
            initial_timestamp: MediaTime(0),
            pli_interval: Duration::from_millis(500),
            source_timeout: Duration::from_secs(5),
            min_keyframe_interval: Duration::from_millis(300),
            audio: AudioMixConfig::default(),
        }
    }
}

/// Something the mixer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MixerEvent {
    /// First packet from a source.
    SourceAdded(Ssrc),
    /// A source was removed (explicitly or after `source_timeout`).
    SourceRemoved(Ssrc),
    /// A decoded source picture was replaced before any composite showed it.
    SourceFrameDropped(Ssrc),
    /// A source unit failed to decode; the decoder was reset and a keyframe requested.
    DecodeError {
        /// The source.
        ssrc: Ssrc,
        /// dav1d's message.
        error: String,
    },
    /// Output frames not produced because `handle_timeout` came late (overload).
    OutputFramesSkipped(u32),
    /// A composite keyframe was produced on request (PLI/FIR).
    KeyframeForced,
}

/// One output of [`Mixer::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MixerOutput {
    /// An RTP packet of the composite stream or of the mixed audio, for the
    /// router to forward to SD receivers.
    Rtp(Vec<u8>),
    /// Ask this source for a keyframe: send it an RTCP PLI ([`Mixer::pli_for`] builds one).
    KeyframeRequest(Ssrc),
    /// A report.
    Event(MixerEvent),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MixerStats {
    /// RTP packets handled.
    pub rtp_in: u64,
    /// Source pictures decoded.
    pub decoded: u64,
    /// Source pictures replaced before being shown.
    pub source_frames_dropped: u64,
    /// Units that failed to decode.
    pub decode_errors: u64,
    /// Units of sources not shown (more than nine), left undecoded.
    pub units_skipped: u64,
    /// Composite frames encoded.
    pub composites: u64,
    /// Output frame slots missed (overload).
    pub output_frames_skipped: u64,
    /// Composite keyframes forced by requests.
    pub keyframes_forced: u64,
    /// Keyframe requests sent to sources.
    pub keyframe_requests: u64,
    /// RTP packets produced.
    pub rtp_out: u64,
    /// Payload bytes produced.
    pub bytes_out: u64,
    /// The mixed audio's counters.
    pub audio: AudioMixStats,
}

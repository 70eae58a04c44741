//! The tunables of one router worker.

use std::time::Duration;

use corecast_proto::join_key::JoinSecret;

use crate::placement::Placement;
use crate::webrtc::{Codec, SenderFormat};

/// Egress packets per second one router core carries with headroom: 80% of
/// the loss onset measured pinned on the project's 2-vCPU test machines
/// (`corecast-bench fanout --sweep --pin`, 608k packets/s out, see
/// `bench/RESULTS.md`), rounded down.
pub const CORE_EGRESS_PPS: u64 = 480_000;

/// Packets per second of one HD publisher: 720p video at ≈2 Mbit/s in
/// 1200-byte packets (≈200/s) plus Opus audio in 20 ms frames (50/s).
pub const PUBLISHER_PPS: u64 = 250;

/// The most participants of one call a worker holds before the call spreads
/// to other workers: the largest `n` whose full-mesh fan-out
/// `n·(n−1)·PUBLISHER_PPS` fits in [`CORE_EGRESS_PPS`] (44: 44·43·250 =
/// 473k packets/s).
pub const DEFAULT_RECEIVERS_PER_WORKER: usize = receivers_for(CORE_EGRESS_PPS, PUBLISHER_PPS);

/// The largest `n` with `n·(n−1)·publisher_pps ≤ core_pps` (at least 2).
pub const fn receivers_for(core_pps: u64, publisher_pps: u64) -> usize {
    let mut n: u64 = 2;
    while (n + 1) * n * publisher_pps <= core_pps {
        n += 1;
    }
    n as usize
}

/// Tunables of one router worker.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// A participant silent (no RTP, RTCP or keepalive) for this long is removed.
    pub silence_timeout: Duration,
    /// Cascading: a leaf's link to the call's home that no participant took
    /// closes after this long (the calls service opens it before answering
    /// a join; the join token it issues lives 60 s by default).
    pub uplink_grace: Duration,
    /// How often silence and housekeeping are checked.
    pub sweep_interval: Duration,
    /// Most participants one call may have, over every worker its share is
    /// spread on (join beyond it: 486 call full).
    pub max_participants_per_call: usize,
    /// Most calls this worker holds (join of a new call beyond it: 508).
    pub max_calls: usize,
    /// Most SSRCs a participant may claim by sending when it declared none.
    pub max_learned_ssrcs: usize,
    /// Minimum interval between keyframe requests (PLI/FIR) forwarded to one producer.
    pub keyframe_request_interval: Duration,
    /// How long an ended call's id is remembered, so that tokens issued for
    /// it cannot bring it back (should exceed the token lifetime).
    pub ended_call_memory: Duration,
    /// A receiver moves to SD when its reported loss fraction (1/256) is at
    /// least this in `sd_after_reports` consecutive reports (default ≈ 10%).
    pub sd_loss_threshold: u8,
    /// Consecutive bad reports (loss, or an estimate below what HD needs) before moving to SD.
    pub sd_after_reports: u32,
    /// An automatically moved receiver goes back to HD once reports stay
    /// below this loss fraction (default ≈ 2%) ...
    pub hd_loss_threshold: u8,
    /// ... for this long. Between the two thresholds nothing changes (hysteresis).
    pub hd_recovery: Duration,
    /// Most participants of one call on its owning worker before new ones
    /// are spread to the other workers, linked by pipe transports (with
    /// several workers). Default [`DEFAULT_RECEIVERS_PER_WORKER`].
    pub max_receivers_per_worker: usize,
    /// How long a seat the owning worker reserved on another worker for a
    /// redirected join stays reserved if the participant does not arrive.
    pub spread_grant_timeout: Duration,
    /// Payload types taken as audio for streams whose kind was not declared
    /// (besides the static audio types 0..=23).
    pub audio_payload_types: Vec<u8>,
    /// RFC 8285 id of the RFC 6464 audio level extension in senders' audio
    /// packets (0: levels are not read: SD receivers get every audio stream
    /// and the mixer is not told who speaks).
    pub audio_level_ext_id: u8,
    /// SD receivers get the audio of this many loudest speakers (0: every
    /// speaker). HD receivers always get every stream.
    pub sd_audio_streams: usize,
    /// How often the loudest speakers are ranked (see `speakers`).
    pub audio_rank_interval: Duration,
    /// Placement of calls over workers: this worker's index and every worker's
    /// address. A join for a call placed on another worker gets a 300 redirect.
    /// Empty: this worker takes every call.
    pub placement: Placement,
    /// How native participants' and pipes' packets are read by WebRTC
    /// receivers: payload type → codec (corecast's client sends Opus as 111
    /// and AV1 as 45, Chromium's numbers), and the audio-level id.
    pub native_format: SenderFormat,
    /// A WebRTC leg whose peer sent no valid ICE check (its consent) for
    /// this long is closed (RFC 7675: 30 s).
    pub consent_timeout: Duration,
    /// Keep each video producer's recent packets and answer receivers'
    /// NACKs from them (WebRTC legs as RTX); NACK publishers' gaps once for
    /// every receiver (see `retransmit`). On by default. Off: NACKs go to the
    /// publisher, which retransmits (the bench's plain runs measure what the
    /// buffer costs: about a fifth of a core's fan-out throughput,
    /// bench/RESULTS.md, eighth session).
    pub retransmission: bool,
    /// Overload protection (`overload`): at a load figure ([`crate::Input::Load`])
    /// of this many per mille busy or more, the heaviest HD receiver moves to
    /// SD, one a second.
    pub overload_busy_permille: u16,
    /// ... and at this or less for [`RouterConfig::hd_recovery`], one of them
    /// returns to HD every 5 s.
    pub overload_relief_permille: u16,
    /// The secret shared with the calls service that join keys are derived
    /// from ([`corecast_proto::join_key`]): a native join must be signed with
    /// its token's key. `None`: every native join is refused (401).
    pub join_secret: Option<JoinSecret>,
    /// Admit native joins that ask for plain RTP (no SRTP attribute). Off
    /// by default: native media is SRTP keyed from the join key; the
    /// bench's plain runs turn this on to measure forwarding alone.
    pub plain_native_media: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            silence_timeout: Duration::from_secs(15),
            uplink_grace: Duration::from_secs(60),
            sweep_interval: Duration::from_millis(500),
            max_participants_per_call: 100,
            max_calls: 100_000,
            max_learned_ssrcs: 8,
            keyframe_request_interval: Duration::from_millis(300),
            ended_call_memory: Duration::from_secs(600),
            sd_loss_threshold: 26,
            sd_after_reports: 2,
            hd_loss_threshold: 5,
            hd_recovery: Duration::from_secs(10),
            audio_payload_types: vec![111, 109, 110],
            audio_level_ext_id: 1,
            sd_audio_streams: 3,
            audio_rank_interval: Duration::from_millis(200),
            max_receivers_per_worker: DEFAULT_RECEIVERS_PER_WORKER,
            spread_grant_timeout: Duration::from_secs(10),
            placement: Placement::default(),
            native_format: SenderFormat {
                codecs: vec![(111, Codec::Opus), (45, Codec::Av1), (96, Codec::Vp8), (102, Codec::H264)],
                audio_level: 1,
                dependency_descriptor: 0,
            },
            consent_timeout: Duration::from_secs(30),
            retransmission: true,
            overload_busy_permille: 900,
            overload_relief_permille: 700,
            join_secret: None,
            plain_native_media: false,
        }
    }
}

impl RouterConfig {
    /// Audio levels are read and ranked (for SD receivers and for the mixer).
    pub(crate) fn ranks_speakers(&self) -> bool {
        self.audio_level_ext_id != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_the_largest_mesh_one_core_carries() {
        assert_eq!(DEFAULT_RECEIVERS_PER_WORKER, 44);
        let n = DEFAULT_RECEIVERS_PER_WORKER as u64;
        assert!(n * (n - 1) * PUBLISHER_PPS <= CORE_EGRESS_PPS);
        assert!((n + 1) * n * PUBLISHER_PPS > CORE_EGRESS_PPS);
        assert!(DEFAULT_RECEIVERS_PER_WORKER < RouterConfig::default().max_participants_per_call);
        assert_eq!(receivers_for(1, 1), 2);
    }
}

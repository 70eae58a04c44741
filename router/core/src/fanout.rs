//! The fan-out decision: whether one receiver gets one packet. A pure
//! function of who sends what and who receives how, so the whole policy is
//! one table (tested below); `forward` applies it to every consumer.

use corecast_proto::session::Quality;
use corecast_proto::token::Role;
use corecast_proto::MediaKind;

use crate::pipe::PipePeer;

/// The packet's producer, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sending {
    /// Role of the participant that produces the stream.
    pub role: Role,
    /// Audio or video (resolved before the decision).
    pub kind: MediaKind,
    /// Audio: one of the call's loudest speakers (or a stream without levels).
    pub sd_audible: bool,
    /// Video: the call has a mixer, so SD receivers get its composite instead of raw video.
    pub composite: bool,
}

/// The receiver, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Receiving {
    pub role: Role,
    pub quality: Quality,
    /// On SD, takes the mixer's mixed audio instead of the loudest
    /// speakers' streams: a WebRTC leg, whose one audio m-line plays one
    /// stream (native receivers play every stream they get).
    pub mixed_audio: bool,
}

/// What one receiver gets of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Forward it.
    Forward,
    /// Not for this receiver.
    Skip,
    /// Audio held back from an SD receiver: not among the loudest speakers
    /// (counted as `sd_audio_withheld`).
    Withhold,
    /// Audio not sent to an SD receiver that hears the mixer's mix instead
    /// (counted as `sd_audio_mixed`).
    Mixed,
}

/// The fan-out policy:
/// - a mixer's composite goes to SD receivers only (never to another
///   mixer), its mixed audio to the SD receivers that take mixed audio;
/// - a mixer gets raw video and the loudest speakers' audio (the streams
///   SD receivers hear), which it mixes;
/// - SD receivers see the composite instead of raw video when the call has a
///   mixer; those that take mixed audio (WebRTC legs) hear only the mix (no
///   raw audio, so their one audio m-line only ever plays the mixer's
///   stream), the others (native) hear the loudest speakers' own streams;
/// - everything else goes to everyone.
#[inline]
pub(crate) fn decide(s: Sending, r: Receiving) -> Decision {
    let sd = r.quality == Quality::Sd;
    let audio = s.kind == MediaKind::Audio;
    match (s.role, r.role) {
        (Role::Mixer, Role::Mixer) => Decision::Skip,
        (Role::Mixer, _) if sd && (!audio || r.mixed_audio) => Decision::Forward,
        (Role::Mixer, _) => Decision::Skip,
        (_, Role::Mixer) if !audio || s.sd_audible => Decision::Forward,
        (_, Role::Mixer) => Decision::Skip,
        _ if sd && audio && r.mixed_audio => Decision::Mixed,
        _ if sd && audio && !s.sd_audible => Decision::Withhold,
        _ if sd && !audio && s.composite => Decision::Skip,
        _ => Decision::Forward,
    }
}

/// Whether a packet goes on to the pipe transport to `to`: everything
/// produced on this worker does; what came in over a pipe goes on to every
/// other pipe, never back where it came from (split horizon).
///
/// The pipes of a call form a tree (a star of workers around the call's
/// owning worker on each router, and a star of routers around the call's
/// home router, joined at the owning workers; see `cascade`): a worker that
/// is not a centre has one pipe only, so it passes nothing on, and flooding
/// a tree minus the link a packet came in on carries each packet over each
/// link exactly once, with no loop.
#[inline]
pub(crate) fn to_pipe(from_pipe: Option<PipePeer>, to: PipePeer) -> bool {
    from_pipe != Some(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use MediaKind::{Audio, Video};
    use Quality::{Hd, Sd};
    use Role::{Mixer, Publisher, Subscriber};

    fn s(role: Role, kind: MediaKind, sd_audible: bool, composite: bool) -> Sending {
        Sending { role, kind, sd_audible, composite }
    }

    /// Receiver kinds: native, or a WebRTC leg (takes mixed audio).
    const NATIVE: bool = false;
    const WEBRTC: bool = true;

    #[test]
    fn the_policy_table() {
        // (sender role, kind, audible, composite) × (receiver role, quality, mixed audio) → decision
        let table = [
            (s(Publisher, Video, true, false), Publisher, Hd, NATIVE, Forward),
            (s(Publisher, Video, true, false), Subscriber, Sd, NATIVE, Forward), // no mixer: raw video
            (s(Publisher, Video, true, true), Subscriber, Sd, NATIVE, Skip),     // composite instead
            (s(Publisher, Video, true, true), Subscriber, Sd, WEBRTC, Skip),
            (s(Publisher, Video, true, true), Publisher, Hd, NATIVE, Forward),
            (s(Publisher, Video, true, true), Publisher, Hd, WEBRTC, Forward),
            (s(Publisher, Video, true, true), Mixer, Hd, NATIVE, Forward),
            // The mixer hears the loudest speakers (or streams without levels), and mixes them.
            (s(Publisher, Audio, true, true), Mixer, Hd, NATIVE, Forward),
            (s(Publisher, Audio, false, true), Mixer, Hd, NATIVE, Skip),
            // Native SD receivers: the loudest speakers' own streams, mixer or not.
            (s(Publisher, Audio, true, true), Subscriber, Sd, NATIVE, Forward),
            (s(Publisher, Audio, false, true), Subscriber, Sd, NATIVE, Withhold),
            (s(Publisher, Audio, true, false), Subscriber, Sd, NATIVE, Forward),
            // WebRTC SD legs: the mix, never raw audio (it plays one stream per m-line).
            (s(Publisher, Audio, true, true), Subscriber, Sd, WEBRTC, Mixed),
            (s(Publisher, Audio, false, true), Subscriber, Sd, WEBRTC, Mixed),
            (s(Publisher, Audio, true, false), Subscriber, Sd, WEBRTC, Mixed),
            (s(Publisher, Audio, false, false), Publisher, Hd, NATIVE, Forward), // HD hears everyone
            (s(Publisher, Audio, false, true), Subscriber, Hd, WEBRTC, Forward),
            (s(Mixer, Video, true, true), Subscriber, Sd, NATIVE, Forward),
            (s(Mixer, Video, true, true), Subscriber, Sd, WEBRTC, Forward),
            (s(Mixer, Video, true, true), Publisher, Hd, NATIVE, Skip),
            (s(Mixer, Video, true, true), Mixer, Sd, NATIVE, Skip),
            // The mix: to SD WebRTC legs only.
            (s(Mixer, Audio, true, false), Subscriber, Sd, WEBRTC, Forward),
            (s(Mixer, Audio, true, false), Publisher, Sd, NATIVE, Skip),
            (s(Mixer, Audio, true, false), Subscriber, Hd, WEBRTC, Skip),
            (s(Mixer, Audio, true, false), Mixer, Sd, NATIVE, Skip),
        ];
        for (i, (sending, role, quality, mixed_audio, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(sending, Receiving { role, quality, mixed_audio }), want, "row {i}");
        }
    }

    #[test]
    fn pipes_split_horizon() {
        use PipePeer::{Router, Worker};
        let r = |p| Router(std::net::SocketAddr::from(([10, 0, 0, 1], p)));
        // (came from pipe, pipe to) → forwarded
        let table = [
            (None, Worker(1), true),
            (None, r(1), true),
            (Some(Worker(1)), Worker(1), false),
            (Some(Worker(1)), Worker(2), true),
            (Some(Worker(1)), r(1), true),
            (Some(r(1)), r(1), false),
            (Some(r(1)), r(2), true),
            (Some(r(1)), Worker(1), true),
        ];
        for (from, to, want) in table {
            assert_eq!(to_pipe(from, to), want, "{from:?} -> {to:?}");
        }
    }
}

//! The fan-out decision: whether one receiver gets one packet. A pure
//! function of who sends what and who receives how, so the whole policy is
//! one table (tested below); `forward` applies it to every consumer.

use corecast_proto::session::Quality;
use corecast_proto::token::Role;
use corecast_proto::MediaKind;

/// The packet's producer, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sending {
    /// Role of the participant that produces the stream.
    pub role: Role,
    /// Audio or video (resolved before the decision).
    pub kind: MediaKind,
    /// Audio: one of the call's loudest speakers (or a stream without levels).
    pub sd_audible: bool,
    /// The call has a mixer, so SD receivers get its composite instead of raw video.
    pub composite: bool,
}

/// The receiver, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Receiving {
    pub role: Role,
    pub quality: Quality,
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
}

/// The fan-out policy:
/// - a mixer's composite goes to SD receivers only (never to another mixer);
/// - a mixer gets raw video only (it composites pictures; SD audio is forwarded);
/// - SD receivers hear only the loudest speakers, and see the composite
///   instead of raw video when the call has a mixer;
/// - everything else goes to everyone.
#[inline]
pub(crate) fn decide(s: Sending, r: Receiving) -> Decision {
    let sd = r.quality == Quality::Sd;
    match (s.role, r.role) {
        (Role::Mixer, Role::Mixer) => Decision::Skip,
        (Role::Mixer, _) if sd => Decision::Forward,
        (Role::Mixer, _) => Decision::Skip,
        (_, Role::Mixer) if s.kind == MediaKind::Video => Decision::Forward,
        (_, Role::Mixer) => Decision::Skip,
        _ if sd && s.kind == MediaKind::Audio && !s.sd_audible => Decision::Withhold,
        _ if sd && s.kind == MediaKind::Video && s.composite => Decision::Skip,
        _ => Decision::Forward,
    }
}

/// Whether a packet goes on to the pipe transport to `pipe_worker`:
/// everything produced on this worker does; what came in over a pipe goes on
/// only from the hub (the call's owner, the centre of the star of pipes) to
/// the other pipes, never back where it came from.
#[inline]
pub(crate) fn to_pipe(from_pipe: Option<usize>, pipe_worker: usize, hub: bool) -> bool {
    match from_pipe {
        None => true,
        Some(w) => hub && w != pipe_worker,
    }
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

    #[test]
    fn the_policy_table() {
        // (sender role, kind, audible, composite) × (receiver role, quality) → decision
        let table = [
            (s(Publisher, Video, true, false), Publisher, Hd, Forward),
            (s(Publisher, Video, true, false), Subscriber, Sd, Forward), // no mixer: raw video
            (s(Publisher, Video, true, true), Subscriber, Sd, Skip),     // composite instead
            (s(Publisher, Video, true, true), Publisher, Hd, Forward),
            (s(Publisher, Video, true, true), Mixer, Hd, Forward),
            (s(Publisher, Audio, true, true), Mixer, Hd, Skip),
            (s(Publisher, Audio, true, true), Subscriber, Sd, Forward),
            (s(Publisher, Audio, false, true), Subscriber, Sd, Withhold),
            (s(Publisher, Audio, false, false), Publisher, Hd, Forward), // HD hears everyone
            (s(Mixer, Video, true, true), Subscriber, Sd, Forward),
            (s(Mixer, Video, true, true), Publisher, Hd, Skip),
            (s(Mixer, Video, true, true), Mixer, Sd, Skip),
            (s(Mixer, Audio, true, true), Publisher, Sd, Forward),
        ];
        for (i, (sending, role, quality, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(sending, Receiving { role, quality }), want, "row {i}");
        }
    }

    #[test]
    fn pipes_form_a_star_around_the_hub() {
        // (came from pipe, pipe to, this worker is the hub) → forwarded
        let table = [
            (None, 1, false, true),
            (None, 1, true, true),
            (Some(1), 1, true, false),
            (Some(1), 2, true, true),
            (Some(0), 2, false, false),
        ];
        for (from, to, hub, want) in table {
            assert_eq!(to_pipe(from, to, hub), want, "{from:?} -> {to} hub={hub}");
        }
    }
}

//! The loudest few audio streams of a call, for its SD receivers.
//!
//! An SD receiver is one whose link cannot take everything; besides the
//! composite video it gets audio forwarded as received (not mixed), but only
//! from the `n` loudest speakers rather than a transcoded mix. Loudness
//! comes from the RFC 6464 client-to-mixer audio level that senders put in a
//! header extension of every audio packet (WebRTC does so by default).
//!
//! Every ranking window (`RouterConfig::audio_rank_interval`, 200 ms) each
//! audio stream's loudness is updated from the mean of its packets' levels in
//! the window, rising at once and falling halfway (a level meter's attack and
//! release), then the streams are ranked. A stream already forwarded gets
//! [`HYSTERESIS`] dB of head start, so two speakers of about the same level
//! do not swap places every window (Jitsi's dominant-speaker detector and
//! mediasoup's `AudioLevelObserver` smooth in the same spirit). Streams that
//! carry no level cannot be ranked and are always forwarded; a call with at
//! most `n` ranked streams forwards them all, exactly as to HD receivers.
//!
//! Forwarding a stream again after a pause goes through the receiver's
//! consumer state, so its sequence numbers continue without a gap.
//!
//! The call's mixer (when it has one) gets the same loudest streams and
//! mixes them for SD WebRTC legs (`fanout`); its mix carries a level too but
//! is never ranked.
//!
//! The same loudness tells the call's mixer whom to show: [`for_mixer`]
//! lists the publishers' video SSRCs, loudest first, and the router sends the
//! list to the mixer (an RTCP APP `SPKR` packet) when it changes, so that a
//! call with more sources than cells shows the people who speak.

use corecast_proto::token::{ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::call::Call;

/// Head start (dB) of a stream that is already forwarded.
pub(crate) const HYSTERESIS: u16 = 6;

/// Ends the window for every audio stream of `call` and chooses the `n`
/// loudest. Returns the chosen SSRCs, loudest first, when the choice changed.
pub(crate) fn rank(call: &mut Call, n: usize) -> Option<Vec<Ssrc>> {
    let mut ranked: Vec<(u16, Ssrc)> = Vec::new();
    for s in call.producers_mut() {
        // The mixer's own mix is no speaker (its level is the call's).
        if s.kind != MediaKind::Audio || !s.level_seen || s.role == Role::Mixer {
            continue;
        }
        s.end_level_window();
        let head_start = if s.sd_audible { HYSTERESIS } else { 0 };
        ranked.push((u16::from(s.loudness) + head_start, s.ssrc));
    }
    // Loudest first; equal scores by SSRC, so the choice is deterministic.
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let keep = if n == 0 { ranked.len() } else { n.min(ranked.len()) };
    let chosen: Vec<Ssrc> = ranked[..keep].iter().map(|r| r.1).collect();
    let mut changed = false;
    for s in call.producers_mut() {
        if s.kind == MediaKind::Audio && s.level_seen && s.role != Role::Mixer {
            let audible = chosen.contains(&s.ssrc);
            changed |= audible != s.sd_audible;
            s.sd_audible = audible;
        }
    }
    changed.then_some(chosen)
}

/// One publisher of a call (here or on another worker), as the rankings see it.
struct Publisher {
    pid: ParticipantId,
    /// Its loudest audio stream's loudness (`None`: no level seen).
    loudness: Option<u8>,
    /// Its first video stream.
    video: Option<Ssrc>,
    /// Its video's place on the Last-N stage (the best of its streams').
    stage: u8,
}

/// The call's publishers, in the order their streams were added.
fn publishers(call: &Call) -> Vec<Publisher> {
    let mut all: Vec<Publisher> = Vec::new();
    for s in call.producers().filter(|s| s.role == Role::Publisher) {
        let i = match all.iter().position(|e| e.pid == s.participant) {
            Some(i) => i,
            None => {
                let stage = crate::producer::NOT_ON_STAGE;
                all.push(Publisher { pid: s.participant, loudness: None, video: None, stage });
                all.len() - 1
            }
        };
        let e = &mut all[i];
        match s.kind {
            MediaKind::Audio if s.level_seen => e.loudness = e.loudness.max(Some(s.loudness)),
            MediaKind::Video => {
                e.video = e.video.or(Some(s.ssrc));
                e.stage = e.stage.min(s.stage);
            }
            _ => {}
        }
    }
    all
}

/// Ranks the call's publishers for Last-N receivers (mediasoup's and Jitsi's
/// "last N"): each by its loudest audio stream (a publisher with no level
/// counts as silent; ties by participant id, so the order is
/// deterministic), the publishers among the first `wanted` last time with
/// [`HYSTERESIS`] dB of head start and the previous dominant speaker with
/// twice that, so the stage does not flicker. Sets each video producer's
/// [`Producer::stage`](crate::producer::Producer) and returns the stage,
/// video SSRCs loudest first (at most [`MIXER_SPEAKERS`]), when its
/// members or its first changed.
pub(crate) fn stage(call: &mut Call, wanted: u8) -> Option<Vec<Ssrc>> {
    // Per publisher (here or on another worker): loudness (none: silent) and previous place.
    let mut ranked: Vec<(u16, ParticipantId, u8)> =
        publishers(call).into_iter().map(|p| (p.loudness.map_or(0, u16::from), p.pid, p.stage)).collect();
    for e in &mut ranked {
        e.0 += match e.2 {
            0 => 2 * HYSTERESIS,
            p if p < wanted => HYSTERESIS,
            _ => 0,
        };
    }
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1 .0.cmp(&b.1 .0)));
    let mut changed = false;
    for s in call.producers_mut().filter(|s| s.kind == MediaKind::Video && s.role == Role::Publisher) {
        let place = ranked.iter().position(|e| e.1 == s.participant).map_or(u8::MAX - 1, |p| p.min(253) as u8);
        changed |= (s.stage < wanted) != (place < wanted) || (s.stage == 0) != (place == 0);
        s.stage = place;
    }
    if !changed {
        return None;
    }
    let mut on_stage: Vec<(u8, Ssrc)> = call
        .producers()
        .filter(|s| s.kind == MediaKind::Video && s.role == Role::Publisher)
        .map(|s| (s.stage, s.ssrc))
        .collect();
    on_stage.sort_unstable();
    Some(on_stage.into_iter().take(MIXER_SPEAKERS).map(|s| s.1).collect())
}

/// Most sources a composite shows, so most speakers the mixer is told of.
pub(crate) const MIXER_SPEAKERS: usize = 9;

/// The call's publishers ranked by their loudest audio stream, as the video
/// SSRCs the mixer knows them by (loudest first, at most [`MIXER_SPEAKERS`]).
/// Returns the list when it differs from the one last sent, in its members
/// or in who is first; the last list's members, and its first even more, get
/// [`HYSTERESIS`] dB of head start so the composite does not flicker.
pub(crate) fn for_mixer(call: &mut Call) -> Option<Vec<Ssrc>> {
    let sent = &call.speakers_sent;
    let mut ranked: Vec<(u16, u64, Ssrc)> = publishers(call)
        .into_iter()
        .filter_map(|Publisher { pid, loudness, video, .. }| {
            let (loudness, video) = (loudness?, video?);
            let head_start = match sent.iter().position(|&s| s == video) {
                Some(0) => 2 * HYSTERESIS,
                Some(_) => HYSTERESIS,
                None => 0,
            };
            Some((u16::from(loudness) + head_start, pid.0, video))
        })
        .collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let list: Vec<Ssrc> = ranked.into_iter().take(MIXER_SPEAKERS).map(|r| r.2).collect();
    let same_members = list.len() == sent.len() && list.iter().all(|s| sent.contains(s));
    if same_members && list.first() == sent.first() {
        return None;
    }
    call.speakers_sent = list.clone();
    Some(list)
}

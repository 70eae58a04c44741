//! Overload protection (the seed's degradation rule): when a worker's busy
//! time nears its budget, the router lowers its heaviest receivers' quality
//! one step at a time, before anything is dropped: first to the lowest
//! layers of every source they get, the lowest simulcast layer and SVC
//! spatial layer 0 (a receiver with no simulcast source with more than one
//! layer being sent, nor an SVC stream with more than one spatial layer
//! being sent, is skipped), then, when no receiver has layers left to
//! lower, to SD (the call's composite: one video stream instead of one per
//! publisher). A lowered receiver stays there while the protection holds
//! it: its estimate does not raise it again. SVC keeps its switching rules
//! (`svc`): down at the next frame, up only at a keyframe, sequence
//! numbers without a gap. When the load has been well below the budget for
//! a while it undoes the steps one at a time, the last kind first: SD
//! receivers back to HD, then layers back to what their estimates allow.
//!
//! The driver measures how busy the worker is (the share of wall time not
//! spent waiting for packets) and passes it in as [`crate::Input::Load`]
//! (`crate::Input`); the core keeps no clock of its own. "Heaviest" is the
//! receiver whose HD copy of the call costs the most to send: the summed
//! bitrate of the video streams it gets (an SVC stream with all its
//! spatial layers, as it arrives). Receivers that chose SD
//! themselves, WHEP legs (their quality is fixed) and mixers are never
//! moved to SD; only mixers keep their layers. A receiver moved here does
//! not return to HD on good loss reports alone (`quality`): only when the
//! load allows it.

use std::time::{Duration, Instant};

use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::MediaKind;

use crate::participant::Participant;
use crate::simulcast;
use crate::Router;

/// A worker's load as the overload protection sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overload {
    /// The last load figure, busy per mille of wall time.
    pub busy_permille: u16,
    /// No step (shedding or restoring) before this.
    next_step: Option<Instant>,
    /// Since when the load has been at or below the relief threshold.
    calm_since: Option<Instant>,
}

/// After moving one receiver, the time the load figure needs to show it.
pub(crate) const SHED_STEP: Duration = Duration::from_secs(1);
/// Between two receivers brought back to HD.
pub(crate) const RESTORE_STEP: Duration = Duration::from_secs(5);

impl Router {
    /// A load figure from the driver: sheds or restores one receiver if it is time.
    pub(crate) fn on_load(&mut self, now: Instant, busy_permille: u16) {
        self.overload.busy_permille = busy_permille;
        if self.overload.next_step.is_some_and(|t| now < t) {
            return;
        }
        if busy_permille >= self.config.overload_busy_permille {
            self.overload.calm_since = None;
            if let Some((call, pid)) = self.heaviest_layered_receiver() {
                self.shed_layers(call, pid, true);
                self.out.stats.overload_layers_lowered += 1;
                self.overload.next_step = Some(now + SHED_STEP);
            } else if let Some((call, pid)) = self.heaviest_hd_receiver() {
                self.shed(now, call, pid, true);
                self.out.stats.overload_shed += 1;
                self.overload.next_step = Some(now + SHED_STEP);
            }
        } else if busy_permille <= self.config.overload_relief_permille {
            let since = *self.overload.calm_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.config.hd_recovery {
                let restored = if let Some((call, pid)) = self.a_shed_receiver(|p| p.quality.shed) {
                    self.shed(now, call, pid, false);
                    true
                } else if let Some((call, pid)) = self.a_shed_receiver(|p| p.layers_shed) {
                    self.shed_layers(call, pid, false);
                    true
                } else {
                    false
                };
                if restored {
                    self.out.stats.overload_restored += 1;
                    self.overload.next_step = Some(now + RESTORE_STEP);
                }
            }
        } else {
            self.overload.calm_since = None;
        }
    }

    /// Moves `pid` to SD (`shed`) or back to HD, marking it as moved by load.
    fn shed(&mut self, now: Instant, call: CallId, pid: ParticipantId, shed: bool) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let Some(i) = c.index_of(pid) else { return };
        c.participants[i].quality.shed = shed;
        let q = if shed { Quality::Sd } else { Quality::Hd };
        self.set_quality(now, call, pid, q, false);
    }

    /// The HD receiver (automatic quality, not a mixer) whose HD copy of its
    /// call costs the most: the bitrate of the video it gets. Ties: the
    /// lowest participant id, so the choice is deterministic.
    fn heaviest_hd_receiver(&self) -> Option<(CallId, ParticipantId)> {
        let mut best: Option<(u64, CallId, ParticipantId)> = None;
        for (id, call) in &self.calls {
            for r in call.participants.iter().filter(|r| {
                r.role != Role::Mixer && r.quality.current == Quality::Hd && !r.quality.pinned && !r.is_watch_leg()
            }) {
                let cost: u64 = call
                    .producers()
                    .filter(|s| s.kind == MediaKind::Video && s.participant != r.id && s.role != Role::Mixer)
                    .map(|s| s.bitrate_bps.max(1))
                    .sum();
                if cost == 0 {
                    continue;
                }
                let better = best.is_none_or(|(c, _, p)| cost > c || (cost == c && r.id.0 < p.0));
                if better {
                    best = Some((cost, *id, r.id));
                }
            }
        }
        best.map(|(_, c, p)| (c, p))
    }

    /// A receiver the overload protection moved (`moved`: to SD, or its
    /// layers down), the lowest id first.
    fn a_shed_receiver(&self, moved: impl Fn(&Participant) -> bool) -> Option<(CallId, ParticipantId)> {
        self.calls
            .iter()
            .flat_map(|(id, c)| c.participants.iter().filter(|p| moved(p)).map(move |p| (*id, p.id)))
            .min_by_key(|(_, p)| p.0)
    }

    /// Holds `pid`'s simulcast sources at their lowest layers and its SVC
    /// streams at spatial layer 0 (`shed`), or lets its estimate choose
    /// again (`simulcast::allocate`, which keeps to this while shed).
    fn shed_layers(&mut self, call: CallId, pid: ParticipantId, shed: bool) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let Some(i) = c.index_of(pid) else { return };
        c.participants[i].layers_shed = shed;
        simulcast::allocate(c, i);
    }

    /// The receiver (not a mixer, layers not lowered yet) whose video costs
    /// the most among those that get a simulcast source or an SVC stream
    /// with layers above its lowest (ties: the lowest id).
    fn heaviest_layered_receiver(&self) -> Option<(CallId, ParticipantId)> {
        let mut best: Option<(u64, CallId, ParticipantId)> = None;
        for (id, call) in &self.calls {
            for (i, r) in call.participants.iter().enumerate() {
                if r.role == Role::Mixer || r.layers_shed || !simulcast::above_lowest(call, i) {
                    continue;
                }
                let cost = simulcast::need_bps(call, r.id, simulcast::Need::Best).max(1);
                if best.is_none_or(|(c, _, p)| cost > c || (cost == c && r.id.0 < p.0)) {
                    best = Some((cost, *id, r.id));
                }
            }
        }
        best.map(|(_, c, p)| (c, p))
    }
}

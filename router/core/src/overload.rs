//! Overload protection (the seed's degradation rule): when a worker's busy
//! time nears its budget, the router moves its heaviest HD receivers to SD
//! (the call's composite: one video stream instead of one per publisher),
//! one at a time, before anything is dropped; when the load has been well
//! below the budget for a while it brings them back to HD, one at a time.
//!
//! The driver measures how busy the worker is (the share of wall time not
//! spent waiting for packets) and passes it in as [`Input::Load`]
//! (`crate::Input`); the core keeps no clock of its own. "Heaviest" is the
//! receiver whose HD copy of the call costs the most to send: the summed
//! bitrate of the video streams it gets. Receivers that chose SD
//! themselves, WHEP legs (their quality is fixed) and mixers are never
//! moved. A receiver moved here does not return to HD on good loss reports
//! alone (`quality`): only when the load allows it.

use std::time::{Duration, Instant};

use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::MediaKind;

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
            if let Some((call, pid)) = self.heaviest_hd_receiver() {
                self.shed(now, call, pid, true);
                self.out.stats.overload_shed += 1;
                self.overload.next_step = Some(now + SHED_STEP);
            }
        } else if busy_permille <= self.config.overload_relief_permille {
            let since = *self.overload.calm_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.config.hd_recovery {
                if let Some((call, pid)) = self.a_shed_receiver() {
                    self.shed(now, call, pid, false);
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

    /// A receiver the overload protection moved to SD (the lowest id first).
    fn a_shed_receiver(&self) -> Option<(CallId, ParticipantId)> {
        self.calls
            .iter()
            .flat_map(|(id, c)| c.participants.iter().filter(|p| p.quality.shed).map(move |p| (*id, p.id)))
            .min_by_key(|(_, p)| p.0)
    }
}

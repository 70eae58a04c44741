//! HD or SD per receiver: explicit requests, and automatic switching on
//! reported loss or a bandwidth estimate, with hysteresis; the call's demand
//! for a mixer follows its SD receivers.

use std::time::Instant;

use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::api::{Event, LeaveReason};
use crate::{Router, RouterConfig};

/// One receiver's quality and what the automatic switching has seen.
#[derive(Debug, Clone)]
pub(crate) struct QualityState {
    pub current: Quality,
    /// The participant asked for SD itself: no automatic switching.
    pub pinned: bool,
    /// Consecutive receiver reports (or estimates) that said HD does not fit.
    pub bad_reports: u32,
    /// Since when reports have said HD fits again (while on automatic SD).
    pub good_since: Option<Instant>,
    /// Moved to SD by the worker's overload protection (`overload`): it
    /// returns to HD when the load allows, not on good reports.
    pub shed: bool,
}

impl QualityState {
    /// The quality a participant asked for at its join.
    pub fn joined(q: Quality) -> QualityState {
        QualityState { current: q, pinned: q == Quality::Sd, bad_reports: 0, good_since: None, shed: false }
    }

    /// A quality chosen for good: no automatic switching (a WHEP leg names
    /// what it plays, one participant in HD or the composite; a browser
    /// moves between them itself, by opening another leg).
    pub fn fixed(q: Quality) -> QualityState {
        QualityState { current: q, pinned: true, bad_reports: 0, good_since: None, shed: false }
    }

    /// An explicit request: SD stays until the participant asks for HD; HD
    /// re-enables automatic switching.
    pub fn request(&mut self, q: Quality) {
        self.pinned = q == Quality::Sd;
        self.shed = false;
        self.reset();
    }

    fn reset(&mut self) {
        self.bad_reports = 0;
        self.good_since = None;
    }

    /// One report: `loss` (fraction in 1/256) and whether the estimate is
    /// below what HD needs. Returns the quality to switch to, if any.
    pub fn on_signal(
        &mut self,
        now: Instant,
        cfg: &RouterConfig,
        loss: Option<u8>,
        low_estimate: bool,
    ) -> Option<Quality> {
        if self.pinned {
            return None;
        }
        if self.shed {
            // On SD for the worker's load: the load brings it back.
            self.reset();
            return None;
        }
        let bad = low_estimate || loss.is_some_and(|l| l >= cfg.sd_loss_threshold);
        let good = !bad && loss.is_none_or(|l| l < cfg.hd_loss_threshold);
        let mut switch = None;
        if bad {
            self.bad_reports += 1;
            self.good_since = None;
            if self.current == Quality::Hd && self.bad_reports >= cfg.sd_after_reports {
                switch = Some(Quality::Sd);
            }
        } else if good {
            self.bad_reports = 0;
            if self.current == Quality::Sd {
                let since = *self.good_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= cfg.hd_recovery {
                    switch = Some(Quality::Hd);
                }
            }
        } else {
            self.reset();
        }
        if switch.is_some() {
            self.reset();
        }
        switch
    }
}

impl Router {
    /// Switches a receiver between HD and SD. `explicit`: the participant
    /// asked (SD then stays until it asks for HD; HD re-enables automatic switching).
    pub(crate) fn set_quality(
        &mut self,
        now: Instant,
        call_id: CallId,
        pid: ParticipantId,
        quality: Quality,
        explicit: bool,
    ) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let p = &mut call.participants[i];
        p.last_seen = now;
        if explicit {
            p.quality.request(quality);
        }
        if p.quality.current == quality {
            return;
        }
        p.quality.current = quality;
        // The composite must start with a keyframe for the newcomer.
        let mixer_ssrcs: Vec<Ssrc> = if quality == Quality::Sd {
            call.producers().filter(|s| s.role == Role::Mixer && s.kind != MediaKind::Audio).map(|s| s.ssrc).collect()
        } else {
            Vec::new()
        };
        self.out.event(Event::QualityChanged { call: call_id, participant: pid, quality });
        self.update_mixer_demand(call_id);
        for ssrc in mixer_ssrcs {
            self.request_keyframe(now, call_id, ssrc);
        }
    }

    /// Emits [`Event::MixerDemand`] when the call's first SD receiver
    /// appears or its last one goes; in the latter case the mixer is also
    /// removed (it gets CallEnded), so the codec pool stops working for a
    /// call nobody watches in SD.
    pub(crate) fn update_mixer_demand(&mut self, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let wanted = call.sd_receivers() > 0;
        if wanted == call.mixer_wanted {
            return;
        }
        call.mixer_wanted = wanted;
        let mixers: Vec<ParticipantId> = if wanted {
            Vec::new()
        } else {
            call.participants.iter().filter(|p| p.role == Role::Mixer).map(|p| p.id).collect()
        };
        self.out.event(Event::MixerDemand { call: call_id, needed: wanted });
        for m in mixers {
            self.remove_participant(call_id, m, LeaveReason::Removed, true);
        }
    }

    /// Automatic HD/SD decision for one receiver after a receiver report
    /// (`loss`, fraction in 1/256) or a bandwidth estimate (`estimate`, bits/s).
    pub(crate) fn on_quality_signal(
        &mut self,
        now: Instant,
        call_id: CallId,
        pid: ParticipantId,
        loss: Option<u8>,
        estimate: Option<u64>,
    ) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        if call.participants[i].role == Role::Mixer {
            return;
        }
        // A new estimate moves it between simulcast layers first (at once).
        if estimate.is_some() {
            crate::simulcast::allocate(call, i);
        }
        // What HD needs for this receiver: every other non-mixer stream (simulcast ones at their lowest layer).
        let need_bps = crate::simulcast::need_bps(call, pid, crate::simulcast::Need::Least);
        let low_estimate = estimate.is_some_and(|e| need_bps > 0 && e < need_bps);
        if let Some(q) = call.participants[i].quality.on_signal(now, &self.config, loss, low_estimate) {
            self.set_quality(now, call_id, pid, q, false);
        }
    }
}

impl Router {
    /// After receiver `pid`'s transport-wide feedback: sends it the bandwidth
    /// probe its estimate asks for, if one is due (at the start, and while
    /// the estimate is below what it would take at best and its link is neither
    /// overusing nor losing; see `bwe::ProbeController`).
    pub(crate) fn probe(&mut self, now: Instant, call_id: CallId, pid: ParticipantId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        // With the headroom a move up asks for (`simulcast::UP_HEADROOM`), when there are layers to move up to.
        let (least, best) = crate::simulcast::needs_bps(call, pid);
        let (num, den) = crate::simulcast::UP_HEADROOM;
        let target = if best > least { best * num / den } else { best };
        let p = &mut call.participants[i];
        let (Some(bwe), crate::transport::Transport::WebRtc(w)) = (p.bwe.as_mut(), &mut p.transport) else { return };
        if let Some(cluster) = bwe.wants_probe(now, target) {
            let sent = w.send_probe(&mut self.out, &cluster);
            bwe.probe_sent(cluster.id, sent);
        }
    }
}

impl Router {
    /// Wakes the WebRTC legs whose paced packets may go (`webrtc::pacing`).
    pub(crate) fn drain_pacers(&mut self) {
        let mut legs = self.out.take_paced_legs();
        for (call_id, pid) in legs.drain(..) {
            let Some(call) = self.calls.get_mut(&call_id) else { continue };
            let Some(i) = call.index_of(pid) else { continue };
            if let crate::transport::Transport::WebRtc(w) = &mut call.participants[i].transport {
                w.drain_paced(&mut self.out);
            }
        }
        self.out.paced_legs_back(legs);
    }
}

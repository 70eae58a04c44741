//! Choosing each receiver's layers ([`allocate`]): what its video costs at
//! least and at best ([`need_bps`]), which layer of each source its
//! bandwidth estimate lets it have, the most active speakers first, with
//! hysteresis, and when a move down stops the layer it gets at once.

use corecast_proto::token::{ParticipantId, Role};
use corecast_proto::Ssrc;

use crate::call::Call;
use crate::producer::Producer;

/// Whether layer `p` suits a receiver that asked for frames at most
/// `max_height` high (a layer of unknown size does).
fn fits(p: &Producer, max_height: Option<u16>) -> bool {
    max_height.is_none_or(|m| p.frame_size.is_none_or(|f| f.height <= m))
}

/// What stream `s` costs a receiver that asked for frames at most
/// `max_height` high: an SVC stream its spatial layers within that size,
/// any other stream whole.
fn svc_within(s: &Producer, max_height: Option<u16>, base_only: bool) -> u64 {
    let Some(v) = s.svc.as_ref().filter(|v| v.spatial_layers() > 1) else { return s.bitrate_bps };
    let fit = v.layers_within(max_height, base_only);
    let sums = v.cumulative_bps();
    if fit < sums.len() {
        sums[fit - 1]
    } else {
        s.bitrate_bps
    }
}

/// What a receiver's video costs, bits/s: every other non-mixer stream
/// it gets (only `subscribe`'s, if it watches one participant) as measured
/// arriving (an SVC stream whole, or its spatial layers within the requested size), and each
/// simulcast source at its lowest layer being sent (`Need::Least`: the
/// HD/SD decision's "does HD fit") or its best (`Need::Best`: what it
/// would take at best, as far as probing aims).
pub(crate) fn need_bps(call: &Call, receiver: ParticipantId, need: Need) -> u64 {
    let (least, best) = needs_bps(call, receiver);
    match need {
        Need::Least => least,
        Need::Best => best,
    }
}

/// [`need_bps`] both ways at once: (`Need::Least`, `Need::Best`).
pub(crate) fn needs_bps(call: &Call, receiver: ParticipantId) -> (u64, u64) {
    let r = call.index_of(receiver).map(|i| &call.participants[i]);
    let (subscribe, max_height) = (r.and_then(|r| r.subscribe), r.and_then(|r| r.max_height));
    let base_only = r.is_some_and(|r| r.svc_base_only());
    let others = || {
        call.producers().filter(move |s| {
            s.participant != receiver && s.role != Role::Mixer && subscribe.is_none_or(|only| only == s.participant)
        })
    };
    let plain: u64 = others().filter(|s| s.layer.is_none()).map(|s| svc_within(s, max_height, base_only)).sum();
    // Per group: its lowest layer, and its best within the requested size (0: none is).
    let mut groups: Vec<(Ssrc, u64, u64)> = Vec::new();
    for s in others().filter(|s| s.bitrate_bps > 0) {
        let Some(l) = s.layer else { continue };
        let fit = if fits(s, max_height) { s.bitrate_bps } else { 0 };
        match groups.iter_mut().find(|g| g.0 == l.group) {
            Some(g) => (g.1, g.2) = (g.1.min(s.bitrate_bps), g.2.max(fit)),
            None => groups.push((l.group, s.bitrate_bps, fit)),
        }
    }
    let least: u64 = groups.iter().map(|g| g.1).sum();
    let best: u64 = groups.iter().map(|g| if g.2 == 0 { g.1 } else { g.2 }).sum();
    (plain + least, plain + best)
}

/// Which layer of each simulcast source [`need_bps`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Least,
    Best,
}

/// One source a receiver gets, as the allocation sees it.
struct Source {
    /// The group's SSRC (SVC: the stream's).
    group: Ssrc,
    /// An SVC stream: its "layers" are spatial layers 0..=k, each costing
    /// what receiving it and those below it costs.
    svc: bool,
    /// Its publisher's place among the speakers (0: dominant).
    stage: u8,
    /// Layers being sent, lowest first: (SSRC, bits/s).
    layers: Vec<(Ssrc, u64)>,
    /// The lowest of the layers left out for the receiver's requested
    /// size (`max_height`), if any was: a source with no layer small enough
    /// gets this one.
    too_big: Option<(Ssrc, u64)>,
}

/// Chooses the layer of every simulcast source participant `i` of `call`
/// gets (see the module's documentation).
pub(crate) fn allocate(call: &mut Call, i: usize) {
    let r = &call.participants[i];
    if r.role == Role::Mixer {
        return;
    }
    let (rid, subscribe, max_height, base_only) = (r.id, r.subscribe, r.max_height, r.svc_base_only());
    let gets = |s: &&Producer| {
        s.participant != rid && s.role != Role::Mixer && subscribe.is_none_or(|only| only == s.participant)
    };
    let mut sources: Vec<Source> = Vec::new();
    let mut fixed = 0u64;
    for s in call.producers().filter(gets) {
        // SVC (`svc`): its spatial layers, each with what it costs with those below it.
        // Those above the requested size left out, as simulcast layers are.
        if let Some(v) = s.svc.as_ref().filter(|v| v.spatial_layers() > 1) {
            let mut layers: Vec<(Ssrc, u64)> =
                v.cumulative_bps().into_iter().enumerate().map(|(k, c)| (Ssrc(k as u32), c)).collect();
            let fit = v.layers_within(max_height, base_only);
            let too_big = layers.get(fit).copied();
            layers.truncate(fit);
            sources.push(Source { group: s.ssrc, stage: s.stage, layers, svc: true, too_big });
            continue;
        }
        let Some(l) = s.layer else {
            fixed += s.bitrate_bps;
            continue;
        };
        let i = match sources.iter().position(|x| x.group == l.group) {
            Some(i) => i,
            None => {
                sources.push(Source { group: l.group, stage: s.stage, layers: Vec::new(), svc: false, too_big: None });
                sources.len() - 1
            }
        };
        sources[i].stage = sources[i].stage.min(s.stage);
        if s.bitrate_bps > 0 && fits(s, max_height) {
            sources[i].layers.push((s.ssrc, s.bitrate_bps));
        } else if s.bitrate_bps > 0 {
            let lowest = sources[i].too_big.is_none_or(|t| s.bitrate_bps < t.1);
            if lowest {
                sources[i].too_big = Some((s.ssrc, s.bitrate_bps));
            }
        }
    }
    if sources.is_empty() {
        return;
    }
    // A source none of whose layers is small enough: its lowest.
    for s in sources.iter_mut().filter(|s| s.layers.is_empty()) {
        s.layers.extend(s.too_big);
    }
    // Held at the lowest layers by the overload protection: no budget above them.
    let shed = call.participants[i].layers_shed;
    let budget = if shed { Some(0) } else { call.participants[i].estimate_bps };
    let choice: Vec<(Ssrc, Option<Ssrc>, bool)> = match budget {
        // No estimate: the best of each (`None`: whatever is best when a
        // packet comes), or of those small enough when some are not.
        None => {
            let best = |s: &Source| s.too_big.and(s.layers.iter().max_by_key(|l| l.1)).map(|l| l.0);
            sources.iter().map(|s| (s.group, best(s), s.svc)).collect()
        }
        Some(budget) => {
            // Layers ranked by what they cost (whatever order they were declared in).
            for s in &mut sources {
                s.layers.sort_by_key(|l| l.1);
            }
            sources.sort_by_key(|s| s.stage);
            let mut left = budget.saturating_sub(fixed);
            let mut picks: Vec<usize> = Vec::with_capacity(sources.len());
            for s in &sources {
                left = left.saturating_sub(s.layers.first().map_or(0, |l| l.1));
                picks.push(0);
            }
            let consumers = &call.participants[i].consumers;
            for (s, pick) in sources.iter().zip(picks.iter_mut()) {
                let base = s.layers.first().map_or(0, |l| l.1);
                // Hysteresis: a layer above the one the receiver gets needs
                // headroom ([`UP_HEADROOM`]), the one it gets is kept with
                // some excess ([`STAY_SLACK`]: a layer's rate over a sweep
                // rises by a fifth with a keyframe, the one a move up asks
                // for). A budget just at a layer's rate would otherwise move
                // the receiver up and down again as the rate moves.
                let on = consumers.get(s.group).and_then(|c| c.layer_on.or(c.target));
                let on_cost = on.and_then(|on| s.layers.iter().find(|l| l.0 == on)).map_or(u64::MAX, |l| l.1);
                let fits = |k: usize| {
                    let extra = s.layers[k].1 - base.min(s.layers[k].1);
                    let (num, den) = match s.layers[k].1.cmp(&on_cost) {
                        _ if s.svc => (1, 1),
                        std::cmp::Ordering::Greater => UP_HEADROOM,
                        std::cmp::Ordering::Equal if on == Some(s.layers[k].0) => STAY_SLACK,
                        _ => (1, 1),
                    };
                    extra * num / den <= left
                };
                if let Some(best) = (1..s.layers.len()).rev().find(|&k| fits(k)) {
                    left = left.saturating_sub(s.layers[best].1 - base.min(s.layers[best].1));
                    *pick = best;
                }
            }
            sources.iter().zip(picks).map(|(s, k)| (s.group, s.layers.get(k).map(|l| l.0), s.svc)).collect()
        }
    };
    // What each simulcast layer measures, for the drop below.
    let rates: Vec<(Ssrc, u64)> = sources.iter().filter(|s| !s.svc).flat_map(|s| s.layers.iter().copied()).collect();
    let rate = |l: Option<Ssrc>| l.and_then(|l| rates.iter().find(|r| r.0 == l)).map(|r| r.1);
    let mut dropped: Vec<Ssrc> = Vec::new();
    let consumers = &mut call.participants[i].consumers;
    for (group, target, svc) in choice {
        let c = consumers.entry(group);
        if svc {
            // The spatial layer's index, carried as the "SSRC" of its entry
            // above; held at the base layer while the overload protection
            // has lowered the receiver, whatever the layers measure.
            c.spatial_target = if shed { Some(0) } else { target.map(|t| t.0 as u8) };
            continue;
        }
        c.target = target;
        // Moving down because the link is far below the layer it gets: that
        // layer stops now rather than at the target's keyframe (what it
        // would send meanwhile only fills the bottleneck's queue, where the
        // keyframe and its repairs would be lost with it). Gap-free: the
        // target starts right after the last packet sent.
        if let (Some(on), Some(to), Some(estimate)) = (rate(c.layer_on), rate(target), budget) {
            if !shed && to < on && estimate.saturating_mul(DROP_BELOW.1) < on.saturating_mul(DROP_BELOW.0) {
                c.layer_on = None;
                c.dropped = true;
                dropped.push(group);
            }
        }
    }
    // ... with what of it waits in the leg's send queue.
    if let crate::transport::Transport::WebRtc(w) = &mut call.participants[i].transport {
        for g in dropped {
            w.withdraw_paced(g);
        }
    }
}

/// A move up to a layer counts this fraction (numerator, denominator) of
/// what it adds in the allocation: a tenth more than it measures.
pub(crate) const UP_HEADROOM: (u64, u64) = (11, 10);
/// The layer a receiver gets counts this fraction of what it adds: it is
/// kept until it measures a ninth above the budget.
const STAY_SLACK: (u64, u64) = (9, 10);

/// A receiver whose estimate is below this fraction (numerator,
/// denominator) of the layer it gets stops getting it at once when it moves
/// down (see [`allocate`]).
const DROP_BELOW: (u64, u64) = (7, 10);

/// Whether receiver `i` gets a simulcast source with more than one layer
/// being sent, or an SVC stream with more than one spatial layer being sent
/// (`SvcState::layered`), and so has a lower one to go to.
pub(crate) fn above_lowest(call: &Call, i: usize) -> bool {
    let r = &call.participants[i];
    let mut groups: Vec<(Ssrc, u32)> = Vec::new();
    let gets = |s: &&Producer| {
        s.participant != r.id && s.role != Role::Mixer && r.subscribe.is_none_or(|only| only == s.participant)
    };
    for s in call.producers().filter(gets).filter(|s| s.bitrate_bps > 0) {
        if s.svc.as_ref().is_some_and(|v| v.layered()) {
            return true;
        }
        let Some(l) = s.layer else { continue };
        match groups.iter_mut().find(|g| g.0 == l.group) {
            Some(g) => g.1 += 1,
            None => groups.push((l.group, 1)),
        }
    }
    groups.iter().any(|g| g.1 > 1)
}

/// Whether receiver `i` gets a layer above the lowest being sent of some
/// source (a simulcast layer, or an SVC spatial layer above the base): a
/// move down would lower it.
pub(crate) fn on_upper_layer(call: &Call, i: usize) -> bool {
    call.participants[i].consumers.iter().any(|c| {
        if c.spatial_on.is_some_and(|s| s > 0) {
            return true;
        }
        let Some(on) = c.layer_on.and_then(|s| call.producer(s)).and_then(|p| p.layer) else { return false };
        call.producers()
            .any(|p| p.bitrate_bps > 0 && p.layer.is_some_and(|l| l.group == on.group && l.index < on.index))
    })
}

/// [`allocate`] for every receiver of a call that has simulcast sources.
pub(crate) fn allocate_all(call: &mut Call) {
    if !call.producers().any(|p| p.layer.is_some() || p.svc.is_some()) {
        return;
    }
    for i in 0..call.participants.len() {
        allocate(call, i);
    }
}

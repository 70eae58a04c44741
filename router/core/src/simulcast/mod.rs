//! Simulcast: a publisher sends one video source as 2 to 4 layers, each its
//! own SSRC, lowest quality first (a native publisher says which with a
//! `Simulcast` session message; a browser's come with `a=simulcast` and
//! RIDs). Each receiver gets one layer at a time, as one continuous stream
//! under the group's SSRC (its first layer's):
//!
//! - **Choice** ([`allocate`], in `allocation.rs`): layers rank by their measured bitrates (in
//!   the order declared until measured); with no bandwidth estimate, the
//!   best layer the publisher sends; with one, each source starts at its lowest layer
//!   and the budget left (after the streams that have no layers) lifts
//!   sources one by one, the call's most active speakers first, to the best
//!   layer that fits. It runs at every rate sweep and whenever the
//!   receiver's estimate changes, so a drop moves it down at once.
//! - **Switching** ([`Consumers::on_layer`]): a receiver moves to another
//!   layer only at one of that layer's keyframes (the router asks its
//!   publisher for one, within the keyframe throttle, while a receiver
//!   waits); until then it keeps the layer it has. A paused source (Last-N,
//!   SD) starts again at a keyframe too.
//! - **Rewriting**: each packet goes out with the group's SSRC, sequence
//!   numbers shifted so that the receiver sees no gap at a switch, and
//!   timestamps moved onto the group's clock: from the layers' sender
//!   reports when both have sent one (lip-sync holds: the router's SRs for
//!   the group carry the layer's NTP/RTP pair moved the same way), else
//!   going on from the last timestamp sent by the wallclock time since.
//!
//! A receiver with a frame-rate cap (`max_fps`) gets its layer thinned as
//! `framerate` thins any stream with temporal layers.
//!
//! Forwarding reads only the payload's first bytes (is this the start of a
//! keyframe, `corecast_proto::keyframe`); everything else is header work.

use std::time::Instant;

use bytes::Bytes;
use corecast_proto::frame_size::{frame_size, FrameSize};
use corecast_proto::keyframe::{starts_keyframe, VideoCodec};
use corecast_proto::session::MAX_LAYERS;
use corecast_proto::token::{CallId, ParticipantId};
use corecast_proto::{MediaKind, MediaTime, SeqNo, Ssrc};

use crate::call::Call;
use crate::consumer::Consumers;
use crate::framerate::{next_layer, Frame};
use crate::picture_id::Vp8Ids;
use crate::pipe::PipeMessage;
use crate::producer::Producer;
use crate::reports::PublisherSr;
use crate::stats::DropReason;
use crate::webrtc::Codec;

mod allocation;
pub(crate) use allocation::*;

/// A producer's place in a simulcast group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// The group's SSRC (its first layer's): what receivers see.
    pub group: Ssrc,
    /// 0: the lowest quality.
    pub index: u8,
}

/// One layer as the forward path needs it.
#[derive(Debug, Clone, Copy)]
struct LayerInfo {
    ssrc: Ssrc,
    /// Heard in the last rate window (or the one running).
    active: bool,
    bitrate_bps: u64,
    sr: Option<PublisherSr>,
    clock_rate: u32,
}

/// A group's layers, lowest first (copied out of the producers before the
/// receivers are walked: a few words, no allocation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupView {
    group: Ssrc,
    layers: [Option<LayerInfo>; MAX_LAYERS],
}

impl GroupView {
    /// The layers of `group` among one publisher's `producers`.
    pub fn of(producers: &[Producer], group: Ssrc) -> GroupView {
        let mut layers = [None; MAX_LAYERS];
        for p in producers {
            let Some(l) = p.layer.filter(|l| l.group == group) else { continue };
            if let Some(slot) = layers.get_mut(usize::from(l.index)) {
                *slot = Some(LayerInfo {
                    ssrc: p.ssrc,
                    active: p.bitrate_bps > 0 || p.window_packets > 0,
                    bitrate_bps: p.bitrate_bps,
                    sr: p.recv.last_sr,
                    clock_rate: p.recv.clock_rate,
                });
            }
        }
        GroupView { group, layers }
    }

    fn info(&self, ssrc: Ssrc) -> Option<&LayerInfo> {
        self.layers.iter().flatten().find(|l| l.ssrc == ssrc)
    }

    /// The best layer being sent: the highest bitrate measured, else the
    /// last declared of those heard (the last declared when none is).
    fn top(&self) -> Ssrc {
        let mut it = self.layers.iter().flatten();
        let measured = it.clone().filter(|l| l.active && l.bitrate_bps > 0).max_by_key(|l| l.bitrate_bps);
        measured
            .or_else(|| it.clone().rev().find(|l| l.active))
            .or_else(|| it.next_back())
            .map_or(self.group, |l| l.ssrc)
    }

    /// Whether `ssrc` is a layer being sent.
    fn active(&self, ssrc: Ssrc) -> bool {
        self.info(ssrc).is_some_and(|l| l.active)
    }

    /// The timestamp offset that moves layer `from`'s clock onto layer
    /// `to`'s (ts_to = ts_from + offset), from their sender reports: the
    /// same wallclock instant in both.
    fn sync(&self, from: Ssrc, to: Ssrc) -> Option<u32> {
        let (f, t) = (self.info(from)?, self.info(to)?);
        let (fs, ts) = (f.sr?, t.sr?);
        // One codec, one clock (a layer not heard yet has no rate of its own yet).
        let rate = f.clock_rate.max(t.clock_rate);
        if rate == 0 || (f.clock_rate != t.clock_rate && f.clock_rate.min(t.clock_rate) != 0) {
            return None;
        }
        // NTP is 32.32 fixed point: (Δntp · rate) >> 32 ticks.
        let dntp = fs.ntp.wrapping_sub(ts.ntp) as i64;
        let ticks = ((i128::from(dntp) * i128::from(rate)) >> 32) as i64;
        Some(ts.rtp.wrapping_add(ticks as u32).wrapping_sub(fs.rtp))
    }
}

/// A packet of a simulcast layer.
#[derive(Debug)]
pub(crate) struct LayerPacket<'a> {
    pub layer: Layer,
    pub ssrc: Ssrc,
    pub seq: SeqNo,
    pub ts: MediaTime,
    /// The first packet of one of the layer's keyframes.
    pub keyframe: bool,
    /// VP8: its picture ids are shifted too (`picture_id`).
    pub vp8: bool,
    /// The receiver's frame-rate cap and the packet's frame, for a layer
    /// with temporal layers (see `framerate`).
    pub cap: Option<(&'a Frame, u8)>,
    pub now: Instant,
    pub contents: &'a Bytes,
}

/// What a receiver makes of a layer's packet.
#[derive(Debug, Default)]
pub(crate) struct LayerOutcome {
    /// Send these bytes (rewritten).
    pub send: Option<Bytes>,
    /// The receiver just moved to this packet's layer from another.
    pub switched: bool,
    /// The receiver waits for a keyframe of this layer.
    pub waits_for: Option<Ssrc>,
    /// Not sent: its frame is above the receiver's frame-rate cap.
    pub thinned: bool,
}

impl Consumers {
    /// One packet of a simulcast layer for this receiver; `want`: the
    /// fan-out decision says it gets the source now.
    pub fn on_layer(&mut self, p: &LayerPacket<'_>, want: bool, view: &GroupView) -> LayerOutcome {
        let c = self.entry(p.layer.group);
        if !want {
            // Paused: it starts again at a keyframe.
            c.layer_on = None;
            c.paused = true;
            return LayerOutcome::default();
        }
        let target = c.target.filter(|t| view.active(*t)).unwrap_or_else(|| view.top());
        let mut out = LayerOutcome::default();
        if c.layer_on != Some(target) && p.ssrc == target && p.keyframe {
            // Onto the group's clock by the sender reports, else on from the last timestamp sent.
            let rate = view.info(p.ssrc).map_or(90_000, |l| l.clock_rate.max(1));
            let ts_offset = view.sync(p.ssrc, p.layer.group).or_else(|| {
                let (last, at) = c.last_ts?;
                let ticks = (p.now.saturating_duration_since(at).as_micros() as u64 * u64::from(rate) / 1_000_000)
                    .max(1) as u32;
                Some(last.wrapping_add(ticks).wrapping_sub(p.ts.0))
            });
            c.ts_offset = ts_offset.unwrap_or(0);
            // A decoder drops a frame that is not after the last it got (the
            // layers' clocks agree by their sender reports, so the new layer's
            // keyframe may have the timestamp of the frame just sent): one tick
            // after it then (mediasoup does the like).
            if let Some((last, _)) = c.last_ts {
                let ts = p.ts.0.wrapping_add(c.ts_offset);
                if ts.wrapping_sub(last) as i32 <= 0 {
                    c.ts_offset = c.ts_offset.wrapping_add(last.wrapping_sub(ts)).wrapping_add(1);
                }
            }
            c.offset = c.last_out.map_or(0, |l| l.next().0.wrapping_sub(p.seq.0));
            if p.vp8 {
                c.pictures.on_switch(&Vp8Ids::read(p.contents));
            }
            // A move between layers (not a start, nor a start again after a
            // pause; a layer dropped to move down is a move).
            out.switched = c.layer_on.is_some() || std::mem::take(&mut c.dropped);
            c.layer_on = Some(p.ssrc);
            c.paused = false;
        } else if c.layer_on != Some(p.ssrc) {
            out.waits_for = (c.layer_on != Some(target)).then_some(target);
            return out;
        }
        out.waits_for = (c.layer_on != Some(target)).then_some(target);
        // A frame-rate cap (`max_fps`): frames of the temporal layers above it are skipped, gap-free.
        if let Some((frame, max_fps)) = p.cap {
            if frame.starts {
                c.layer = next_layer(c.layer, frame.rates.target(max_fps), frame.tid);
            }
            if frame.layer() > c.layer.unwrap_or(0) {
                c.skip();
                out.thinned = true;
                return out;
            }
        }
        let seq = p.seq.wrapping_add(c.offset);
        let ts = p.ts.0.wrapping_add(c.ts_offset);
        c.last_out = Some(seq);
        if c.last_ts.is_none_or(|(last, _)| ts.wrapping_sub(last) as i32 >= 0) {
            c.last_ts = Some((ts, p.now));
        }
        c.note_offset(seq);
        let ids = p.vp8.then(|| Vp8Ids::read(p.contents));
        let repicture = ids.is_some() && c.pictures.shifted();
        out.send = Some(if p.ssrc == p.layer.group && c.offset == 0 && c.ts_offset == 0 && !repicture {
            if let Some(ids) = ids {
                c.pictures.note(&ids);
            }
            p.contents.clone()
        } else {
            let mut v = p.contents.to_vec();
            rewrite(&mut v, p.layer.group, seq, ts);
            if let Some(ids) = ids {
                c.pictures.apply(&mut v, &ids);
            }
            Bytes::from(v)
        });
        out
    }
}

/// Puts a layer's packet (or a retransmission of one) under the group's
/// SSRC, with the receiver's sequence number and timestamp.
pub(crate) fn rewrite(packet: &mut [u8], group: Ssrc, seq: SeqNo, ts: u32) {
    corecast_proto::rtp::set_ssrc(packet, group);
    corecast_proto::rtp::set_seq(packet, seq);
    corecast_proto::rtp::set_timestamp(packet, MediaTime(ts));
}

/// A retransmission of a layer's packet (its sequence number already the
/// receiver's) as the receiver got the original (sent with `shift`): under
/// the group's SSRC, its timestamp and (`vp8`) its picture ids moved.
pub(crate) fn regroup(b: &Bytes, group: Ssrc, shift: &crate::consumer::Shift, vp8: bool) -> Bytes {
    let Ok(h) = corecast_proto::rtp::RtpHeader::parse(b) else { return b.clone() };
    let mut v = b.to_vec();
    rewrite(&mut v, group, h.seq, h.timestamp.0.wrapping_add(shift.ts_offset));
    if vp8 {
        let ids = Vp8Ids::read(&v);
        crate::picture_id::shift(&mut v, &ids, shift.pictures.0, shift.pictures.1);
    }
    Bytes::from(v)
}

/// The stream a keyframe request from participant `i` about `ssrc` is
/// meant for: for a simulcast group, the layer it gets (or, before it has
/// one, the one it waits for); else `ssrc` itself.
pub(crate) fn layer_meant(call: &Call, i: Option<usize>, ssrc: Ssrc) -> Ssrc {
    let c = i.and_then(|i| call.participants[i].consumers.get(ssrc));
    c.and_then(|c| c.layer_on.or(c.target)).unwrap_or(ssrc)
}

/// Whether a packet of `codec` with this `payload` starts a keyframe.
#[inline]
pub(crate) fn keyframe_starts(codec: Option<Codec>, payload: &[u8]) -> bool {
    video_codec(codec).is_some_and(|c| starts_keyframe(c, payload))
}

/// The frame size the first packet of a keyframe carries (see
/// `corecast_proto::frame_size`).
pub(crate) fn keyframe_size(codec: Option<Codec>, payload: &[u8]) -> Option<FrameSize> {
    frame_size(video_codec(codec)?, payload)
}

fn video_codec(codec: Option<Codec>) -> Option<VideoCodec> {
    match codec {
        Some(Codec::Vp8) => Some(VideoCodec::Vp8),
        Some(Codec::Av1) => Some(VideoCodec::Av1),
        Some(Codec::H264) => Some(VideoCodec::H264),
        _ => None,
    }
}

impl crate::Router {
    /// A native publisher's `Simulcast` message: its `layers` become one
    /// group (new ones its producers), announced to the call's other
    /// workers, and the call's receivers choose their layers. A
    /// declaration that does not fit ([`declare`]) is dropped and counted
    /// as malformed.
    pub(crate) fn declare_simulcast(&mut self, now: Instant, call_id: CallId, pid: ParticipantId, layers: &[Ssrc]) {
        let max = self.config.max_learned_ssrcs.max(corecast_proto::session::MAX_SSRCS);
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        call.participants[i].last_seen = now;
        let Some(added) = declare(call, i, layers, max) else {
            return self.out.drop_packet(DropReason::Malformed);
        };
        let announce: Vec<PipeMessage> =
            call.participants[i].producers.iter().filter(|p| p.layer.is_some()).map(PipeMessage::producer).collect();
        for m in &announce {
            call.broadcast_pipes(&mut self.out, None, m);
        }
        for ssrc in added {
            self.out.event(crate::Event::ProducerAdded { call: call_id, participant: pid, ssrc });
        }
        allocate_all(call);
    }
}

/// Makes `layers` (video SSRCs of the participant at `i`, lowest quality
/// first) one simulcast group under the first. An SSRC nobody in the call
/// sends yet becomes its video producer (so a client that joined with one
/// video stream adds its other layers here, up to `max` producers); the
/// new ones are returned. `None` (nothing changed): fewer than two, one
/// another participant sends, one of its audio streams, one already in a
/// group, or too many producers.
pub(crate) fn declare(call: &mut Call, i: usize, layers: &[Ssrc], max: usize) -> Option<Vec<Ssrc>> {
    let pid = call.participants[i].id;
    let p = &call.participants[i];
    let fits = |s: &Ssrc| match p.producers.iter().find(|x| x.ssrc == *s) {
        Some(x) => x.kind != MediaKind::Audio && x.layer.is_none(),
        None => !call.ssrc_owner.contains_key(s),
    };
    let new: Vec<Ssrc> = layers.iter().filter(|s| !p.producers.iter().any(|x| x.ssrc == **s)).copied().collect();
    if layers.len() < 2 || !layers.iter().all(fits) || p.producers.len() + new.len() > max {
        return None;
    }
    let p = &mut call.participants[i];
    for s in &new {
        p.add_producer(*s, MediaKind::Video);
        call.ssrc_owner.insert(*s, crate::call::Owner::Participant(pid));
    }
    for (index, s) in layers.iter().enumerate() {
        if let Some(x) = p.producers.iter_mut().find(|x| x.ssrc == *s) {
            x.layer = Some(Layer { group: layers[0], index: index as u8 });
        }
    }
    Some(new)
}

//! The RTP hot path: one lookup for the sender, one for the SSRC, then one
//! pass over the call's consumers (its participants, then its pipes).
//! Receivers on the fast path get the received buffer itself.

use std::time::Instant;

use bytes::Bytes;
use corecast_proto::rtcp::RtcpPacket;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::MAX_LAYERS;
use corecast_proto::temporal::{temporal_id, LayeredCodec};
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::MediaKind;

use crate::call::{Call, Endpoint, Owner};
use crate::consumer::Consumed;
use crate::fanout::{self, Decision, Receiving, Sending};
use crate::hash::FxHashMap;
use crate::outbox::Outbox;
use crate::pipe::{PipeMessage, PipePeer};
use crate::reports::{self, PublisherSr};
use crate::retransmit::Stored;
use crate::simulcast::{self, GroupView, LayerPacket};
use crate::stats::DropReason;
use crate::svc::{self, Spatial, SvcState};
use crate::transport::Transport;
use crate::webrtc::{Codec, Source};
use crate::Router;

/// Where a packet entered the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A participant on this worker.
    Participant(ParticipantId),
    /// The pipe from another worker or router.
    Pipe(PipePeer),
}

impl Origin {
    /// The owner of the SSRCs this origin may send.
    pub(crate) fn owner(self) -> Owner {
        match self {
            Origin::Participant(pid) => Owner::Participant(pid),
            Origin::Pipe(w) => Owner::Pipe(w),
        }
    }
}

/// The call and where in it the sender sits; counts an unadmitted drop
/// when either is gone.
pub(crate) fn locate<'a>(
    calls: &'a mut FxHashMap<CallId, Call>,
    out: &mut Outbox,
    call_id: CallId,
    origin: Origin,
) -> Option<(&'a mut Call, Endpoint)> {
    let found = calls.get_mut(&call_id).and_then(|call| {
        let at = match origin {
            Origin::Participant(pid) => call.index_of(pid).map(Endpoint::Participant),
            Origin::Pipe(w) => call.pipe_index(w).map(Endpoint::Pipe),
        }?;
        Some((call, at))
    });
    if found.is_none() {
        out.drop_packet(DropReason::Unadmitted);
    }
    found
}

impl Router {
    pub(crate) fn forward_rtp(&mut self, now: Instant, call_id: CallId, origin: Origin, contents: Bytes) {
        let header = match RtpHeader::parse(&contents) {
            Ok(h) => h,
            Err(_) => return self.out.drop_packet(DropReason::Malformed),
        };
        let Some((call, from)) = locate(&mut self.calls, &mut self.out, call_id, origin) else { return };
        let sender_idx = match from {
            Endpoint::Participant(i) => Some(i),
            Endpoint::Pipe(_) => None,
        };
        if let Some(si) = sender_idx {
            let sender = &mut call.participants[si];
            sender.last_seen = now;
            if let Transport::WebRtc(w) = &mut sender.transport {
                w.on_rtp_arrival(now, &header, &contents);
            }
            if sender.role == Role::Subscriber {
                return self.out.drop_packet(DropReason::NotPublisher);
            }
        }
        let mut claimed_sr = None;
        match call.ssrc_owner.get(&header.ssrc) {
            Some(&owner) if owner == origin.owner() => {}
            Some(_) => return self.out.drop_packet(DropReason::SsrcNotOwned),
            None => {
                // Only a participant that declared no SSRCs claims them by
                // sending; a pipe announces its producers before their media.
                let Some(si) = sender_idx else { return self.out.drop_packet(DropReason::SsrcNotOwned) };
                let sender = &mut call.participants[si];
                if !sender.learn_ssrcs || sender.producers.len() >= self.config.max_learned_ssrcs {
                    return self.out.drop_packet(DropReason::SsrcNotOwned);
                }
                sender.add_producer(header.ssrc, MediaKind::Unknown);
                // Its SR sent just before this first packet was kept: it counts from now on.
                if let Some((sr, at)) = sender.reports.take_pending(header.ssrc) {
                    if let Some(p) = sender.producers.last_mut() {
                        p.recv.last_sr = Some(PublisherSr::of(&sr, at));
                    }
                    claimed_sr = Some(sr);
                }
                call.ssrc_owner.insert(header.ssrc, origin.owner());
                self.out.event(crate::Event::ProducerAdded {
                    call: call_id,
                    participant: sender.id,
                    ssrc: header.ssrc,
                });
            }
        }
        // The router NACKs publishers itself (retransmission on): native
        // ones and WebRTC ones (those answer with RTX, unwrapped in `legs`).
        let nacks_sender = self.config.retransmission && sender_idx.is_some();
        let mut nack_at = None;
        let producers = match from {
            Endpoint::Participant(i) => &mut call.participants[i].producers,
            Endpoint::Pipe(i) => &mut call.pipes[i].producers,
        };
        let Some(producer) = producers.iter_mut().find(|p| p.ssrc == header.ssrc) else {
            return self.out.drop_packet(DropReason::SsrcNotOwned);
        };
        // How receivers are to read the packet: its sender's payload types
        // → codecs and extension ids (a browser's from its SDP; over a
        // pipe, as announced with the producer, else as a native client's).
        let native = &self.config.native_format;
        let (codec, audio_level, dd_ext) = match producer.format.as_deref() {
            Some(f) => (f.codec(header.pt.0), f.audio_level, f.dependency_descriptor),
            None => (native.codec(header.pt.0), self.config.audio_level_ext_id, native.dependency_descriptor),
        };
        let level_ext = if self.config.ranks_speakers() { audio_level } else { 0 };
        let announce = producer.kind == MediaKind::Unknown;
        producer.resolve_kind(header.pt.0, &self.config.audio_payload_types);
        if producer.packets == 0 {
            producer.recv.clock_rate = reports::clock_rate(codec, header.pt.0, producer.kind);
            producer.codec = codec;
        }
        // What WebRTC receivers need to rewrite the packet for themselves.
        let source = webrtc_source(codec, audio_level, dd_ext, producer.kind);
        // Video (not RTX) is kept for retransmission; a duplicate goes no further.
        if self.config.retransmission && producer.kind == MediaKind::Video && codec != Some(Codec::Rtx) {
            let buffer = producer.retransmit.get_or_insert_default();
            if buffer.insert(header.seq, now, &contents, source) == Stored::Duplicate {
                self.out.stats.duplicates_dropped += 1;
                return;
            }
            // A publisher's gaps are NACKed by the router, once for every receiver.
            if nacks_sender {
                if let Some(at) = producer.upstream_nack.get_or_insert_default().on_packet(header.seq, now) {
                    nack_at = Some(at);
                }
            }
        }
        let arrival_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        producer.on_rtp(&header, contents.len(), arrival_us);
        // Video with temporal layers: its frame, for receivers with a frame-rate cap. The
        // Dependency Descriptor says the layer without the payload (encrypted end to end, say).
        let svc = match dd_ext {
            0 => None,
            id => header
                .extensions(&contents)
                .flatten()
                .find(|e| e.id == id)
                .and_then(|e| SvcState::on_packet(&mut producer.svc, e.data, contents.len())),
        };
        // Spatial layers to choose from (see `svc`): only with more than one.
        let spatial = svc.filter(|_| producer.svc.as_ref().is_some_and(|s| s.spatial_layers() > 1));
        let frame = match (svc.map(|p| p.temporal), layered(codec)) {
            _ if producer.kind != MediaKind::Video || codec == Some(Codec::Rtx) => None,
            (Some(t), _) => Some(producer.on_layered(header.timestamp, Some(t))),
            (None, Some(c)) => Some(producer.on_layered(header.timestamp, temporal_id(c, header.payload(&contents)))),
            (None, None) => None,
        };
        // A simulcast layer: whether this packet starts one of its keyframes (where receivers switch).
        let layer = producer.layer.filter(|_| producer.kind == MediaKind::Video);
        let keyframe = layer.is_some() && simulcast::keyframe_starts(codec, header.payload(&contents));
        if producer.kind == MediaKind::Audio && level_ext != 0 {
            let level = header.extensions(&contents).flatten().find(|e| e.id == level_ext);
            if let Some((_, dbov)) = level.and_then(|e| corecast_proto::rtp::parse_audio_level(e.data)) {
                producer.on_audio_level(dbov);
            }
        }
        if keyframe {
            producer.keyframe.on_keyframe();
            // The layer's size, for receivers that asked for small video (`max_height`).
            if let Some(size) = simulcast::keyframe_size(codec, header.payload(&contents)) {
                producer.frame_size = Some(size);
            }
        }
        // A keyframe request the throttle held back goes with the producer's next packet after the interval.
        let keyframe_due = producer.keyframe.due(now, self.config.keyframe_request_interval);
        let prev_seq = producer.prev_seq.replace(header.seq);
        let kind = producer.kind;
        // Opus: the previous packet, RED's redundancy for lossy WebRTC legs (when it is this one's predecessor).
        let red_prev = if codec == Some(Codec::Opus) { producer.red_prev.take() } else { None };
        let red = red_prev
            .as_deref()
            .filter(|p| p.seq.next() == header.seq)
            .map(|p| (&p.payload[..], header.timestamp.0.wrapping_sub(p.ts.0)));
        // Video of a publisher: its place on the stage, for Last-N receivers.
        let stage = if kind == MediaKind::Video && producer.role == Role::Publisher { producer.stage } else { 0 };
        let from_pid = producer.participant;
        let sending = Sending { role: producer.role, kind, sd_audible: producer.sd_audible, composite: false };
        let announcement = announce.then(|| PipeMessage::producer(producer));
        // A learned stream is announced to the other workers (with its
        // resolved kind) before its first packet crosses a pipe.
        if let Some(m) = announcement {
            for pipe in call.pipes.iter().filter(|p| fanout::to_pipe(origin.pipe(), p.peer)) {
                pipe.send(&mut self.out, call_id, m.clone());
            }
        }
        // ... followed by the SR kept from before the claim.
        if let Some(b) =
            claimed_sr.and_then(|sr| corecast_proto::rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).ok())
        {
            for pipe in call.pipes.iter().filter(|p| fanout::to_pipe(origin.pipe(), p.peer)) {
                pipe.send_media(&mut self.out, call_id, Bytes::from(b.clone()));
            }
        }
        // The packet's simulcast group, for receivers to choose their layer from.
        let view = layer.map(|l| {
            let producers = match from {
                Endpoint::Participant(i) => &call.participants[i].producers,
                Endpoint::Pipe(i) => &call.pipes[i].producers,
            };
            GroupView::of(producers, l.group)
        });
        let mut waits: [Option<corecast_proto::Ssrc>; MAX_LAYERS] = [None; MAX_LAYERS];
        let mut switches = 0u64;
        let mut skipped = 0u64;
        let mut spatial_skipped = 0u64;
        let composite = sending.role != Role::Mixer && kind == MediaKind::Video && call.has_mixer();
        let sending = Sending { composite, ..sending };
        // The mixer's own stream is never paused for anyone: nobody resumes it.
        let keep_state = sending.role != Role::Mixer;
        let mut forwarded = 0u64;
        let mut withheld = 0u64;
        let mut mixed = 0u64;
        let mut resumed = false;
        let mut thinned = 0u64;
        let mut off_stage = 0u64;
        for (i, r) in call.participants.iter_mut().enumerate() {
            if Some(i) == sender_idx || r.subscribe.is_some_and(|only| only != from_pid) {
                continue;
            }
            let receiving = Receiving { role: r.role, quality: r.quality.current, mixed_audio: r.takes_mixed_audio() };
            let decision = fanout::decide(sending, receiving);
            withheld += u64::from(decision == Decision::Withhold);
            mixed += u64::from(decision == Decision::Mixed);
            let mut want = decision == Decision::Forward;
            // Last-N: video of a publisher off this receiver's stage is paused.
            if want && r.last_n.is_some_and(|n| stage >= n) {
                want = false;
                off_stage += 1;
            }
            if let (Some(l), Some(view)) = (layer, view.as_ref()) {
                let p = LayerPacket {
                    layer: l,
                    ssrc: header.ssrc,
                    seq: header.seq,
                    ts: header.timestamp,
                    keyframe,
                    vp8: codec == Some(Codec::Vp8),
                    now,
                    contents: &contents,
                    cap: frame.as_ref().zip(r.max_fps),
                };
                let o = r.consumers.on_layer(&p, want, view);
                thinned += u64::from(o.thinned);
                if let Some(t) = o.waits_for.filter(|t| !waits.contains(&Some(*t))) {
                    if let Some(slot) = waits.iter_mut().find(|w| w.is_none()) {
                        *slot = Some(t);
                    }
                }
                match o.send {
                    Some(b) => {
                        if send_forwarded(r, &mut self.out, b, &header, source, None) {
                            r.reports.on_sent(l.group, header.payload_len);
                        }
                        forwarded += 1;
                        switches += u64::from(o.switched);
                    }
                    None => skipped += u64::from(want && !o.thinned),
                }
                continue;
            }
            // SVC: frames of the spatial layers above the receiver's are skipped, gap-free.
            let mut mark = false;
            if let (true, Some(p)) = (want, spatial) {
                match r.consumers.on_spatial(header.ssrc, p, r.svc_base_only()) {
                    Spatial::Skip => {
                        spatial_skipped += 1;
                        continue;
                    }
                    Spatial::SendMarked => mark = true,
                    Spatial::Send => {}
                }
                // Up to a higher spatial layer: at its next keyframe, asked for.
                if r.consumers.spatial_waits(header.ssrc) && !waits.contains(&Some(header.ssrc)) {
                    if let Some(slot) = waits.iter_mut().find(|w| w.is_none()) {
                        *slot = Some(header.ssrc);
                    }
                }
            }
            // A frame-rate cap: frames of the layers above it are skipped, gap-free.
            if let (true, Some(cap), Some(f)) = (want, r.max_fps, frame.as_ref()) {
                if !r.consumers.on_layered(header.ssrc, f, cap) {
                    thinned += 1;
                    continue;
                }
            }
            match r.consumers.on_packet(header.ssrc, header.seq, prev_seq, want, keep_state, &contents) {
                Consumed::Send(b) => {
                    let b = if mark { svc::marked(b) } else { b };
                    if send_forwarded(r, &mut self.out, b, &header, source, red) {
                        r.reports.on_sent(header.ssrc, header.payload_len);
                    }
                    forwarded += 1;
                }
                Consumed::Resumed(b) => {
                    let b = if mark { svc::marked(b) } else { b };
                    if send_forwarded(r, &mut self.out, b, &header, source, red) {
                        r.reports.on_sent(header.ssrc, header.payload_len);
                    }
                    forwarded += 1;
                    resumed |= kind == MediaKind::Video;
                }
                Consumed::Nothing => {}
            }
        }
        for pipe in &call.pipes {
            if fanout::to_pipe(origin.pipe(), pipe.peer) {
                pipe.send_media(&mut self.out, call_id, contents.clone());
            }
        }
        if codec == Some(Codec::Opus) {
            // This packet is the next one's redundancy (the producer again: the loop borrowed the call).
            let mut prev = red_prev.unwrap_or_default();
            prev.seq = header.seq;
            prev.ts = header.timestamp;
            prev.payload.clear();
            prev.payload.extend_from_slice(header.payload(&contents));
            let producers = match from {
                Endpoint::Participant(i) => &mut call.participants[i].producers,
                Endpoint::Pipe(i) => &mut call.pipes[i].producers,
            };
            if let Some(p) = producers.iter_mut().find(|p| p.ssrc == header.ssrc) {
                p.red_prev = Some(prev);
            }
        }
        if let Some(at) = nack_at {
            self.nack_at(at);
        }
        self.out.stats.forwarded_rtp += forwarded;
        self.out.stats.sd_audio_withheld += withheld;
        self.out.stats.sd_audio_mixed += mixed;
        self.out.stats.frame_rate_dropped += thinned;
        self.out.stats.last_n_withheld += off_stage;
        self.out.stats.layer_switches += switches;
        self.out.stats.layers_skipped += skipped + spatial_skipped;
        // Receivers waiting to move to a layer need one of its keyframes (throttled per layer).
        for t in waits.into_iter().flatten() {
            self.request_keyframe(now, call_id, t);
        }
        if resumed || keyframe_due {
            // The receiver that resumes needs a keyframe to decode from.
            self.request_keyframe(now, call_id, header.ssrc);
        }
    }
}

/// A WebRTC receiver whose reports give at least this loss (in 1/256, about
/// 2%) on an audio stream gets Opus as RED (RFC 2198) with the previous packet as redundancy,
/// where it negotiated RED: one lost packet in two is recovered from the
/// next, at about twice the audio bitrate (some 30 kbit/s).
pub(crate) const RED_LOSS: u8 = 5;

/// Sends one forwarded packet to receiver `r`: Opus as RED with the previous
/// packet's payload (`red`) to a WebRTC leg that negotiated RED while its
/// audio loses [`RED_LOSS`] or more, anything else as it is. Whether it went.
#[inline]
fn send_forwarded(
    r: &mut crate::participant::Participant,
    out: &mut Outbox,
    b: Bytes,
    header: &RtpHeader,
    source: Option<Source>,
    red: Option<(&[u8], u32)>,
) -> bool {
    if let (Some(red), Some(src), Transport::WebRtc(w)) = (red, source, &mut r.transport) {
        if r.audio_loss >= RED_LOSS && w.format.has_red() && w.send_red(out, &b, header, src, red) {
            out.stats.red_sent += 1;
            return true;
        }
    }
    r.transport.send_rtp(out, b, header, source)
}

/// How a WebRTC receiver is to rewrite a packet of `codec` (`None`: no
/// WebRTC leg takes it: an unknown codec, or a retransmission); `audio_level`
/// and `dd` are the sender's audio-level and Dependency Descriptor extension ids.
fn webrtc_source(codec: Option<Codec>, audio_level: u8, dd: u8, kind: MediaKind) -> Option<Source> {
    let codec = codec?;
    let kind = match (kind, codec) {
        (MediaKind::Unknown, Codec::Opus) => MediaKind::Audio,
        (MediaKind::Unknown, _) => MediaKind::Video,
        (k, _) => k,
    };
    (codec != Codec::Rtx).then_some(Source { codec, kind, audio_level, dd })
}

/// Codecs whose frames carry a temporal layer the router reads (RTX is
/// not thinned: its payload starts with the original sequence number, and
/// WebRTC legs get no RTX).
#[inline]
fn layered(codec: Option<Codec>) -> Option<LayeredCodec> {
    match codec? {
        Codec::Vp8 => Some(LayeredCodec::Vp8),
        Codec::Av1 => Some(LayeredCodec::Av1),
        _ => None,
    }
}

impl Origin {
    /// The pipe the packet came in on.
    pub(crate) fn pipe(self) -> Option<PipePeer> {
        match self {
            Origin::Pipe(w) => Some(w),
            Origin::Participant(_) => None,
        }
    }
}

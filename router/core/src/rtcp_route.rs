//! RTCP routing. The router terminates reports as an SFU does (see
//! `reports`) and routes feedback to the producers it is about
//! (RFC 3550 §7, RFC 4585 §3.5):
//!
//! - an SR about the sender's own SSRC is kept (its NTP/RTP pair, for the
//!   router's own SRs to receivers and the LSR of its RRs to the publisher)
//!   and not forwarded to participants; it goes on along the pipes, so the
//!   call's shares on other workers keep it too. An SR about an SSRC nobody
//!   owns yet, from a participant that claims SSRCs by sending, is kept
//!   until its first packet claims it (it comes just before);
//! - report blocks (in RRs and SRs) are not forwarded: those about SRs the
//!   router sent give the reporter's RTT, and their loss fractions,
//!   weighted by each stream's packet rate, are kept as the receiver's
//!   latest loss figure (what fraction of everything sent to it was lost:
//!   a low-rate stream's fraction is too noisy to count alone);
//! - SDES and BYE about the sender's own SSRCs go to every other
//!   participant (receivers need the CNAME to pair audio with video);
//! - NACK is answered from the producer's retransmission buffer (`retransmit`)
//!   for native receivers; what the buffer does not hold goes to the producer of
//!   the media SSRC, unless the router is asking it for those packets itself, at
//!   the receiver's retransmission budget (a NACK flood costs the producer nothing more);
//! - PLI and FIR go to the producer of the media SSRC, at most one per
//!   `keyframe_request_interval` per producer (N receivers asking at once must
//!   not make the producer send N keyframes; the throttle is `keyframe`'s);
//! - REMB is kept as the receiver's bandwidth estimate and not forwarded;
//! - transport-wide feedback (TWCC) from a WebRTC receiver about what the
//!   router sent it feeds the router's own estimate for it (`bwe`); the
//!   estimate acted on is the lower of that and its REMB
//!   (`Participant::estimate`), and a probe may follow;
//! - APP and unknown types are dropped and counted.
//!
//! Nothing about an SSRC the sender does not own is forwarded. A producer on
//! another worker is reached through its pipe; what comes in over a pipe is
//! routed the same way (and passed on to the other pipes, never back: see `fanout::to_pipe`).

use std::time::Instant;

use bytes::Bytes;
use corecast_proto::rtcp::{Fir, Nack, Pli, ReportBlock, RtcpPacket, SenderReport};
use corecast_proto::token::CallId;
use corecast_proto::{MediaKind, SeqNo};

use crate::call::{Call, Endpoint};
use crate::consumer::Shift;
use crate::forward::{locate, Origin};
use crate::reports::PublisherSr;
use crate::retransmit;
use crate::simulcast;
use crate::stats::{DropReason, RouterStats};
use crate::transport::Transport;
use crate::{Router, RouterConfig};

/// Per-destination packet lists: participants first, then pipes.
struct PerEndpoint {
    participants: usize,
    per: Vec<Vec<RtcpPacket>>,
}

impl PerEndpoint {
    fn push(&mut self, to: Endpoint, p: RtcpPacket) {
        let i = match to {
            Endpoint::Participant(i) => i,
            Endpoint::Pipe(i) => self.participants + i,
        };
        self.per[i].push(p);
    }

    fn endpoint(&self, i: usize) -> Endpoint {
        if i < self.participants {
            Endpoint::Participant(i)
        } else {
            Endpoint::Pipe(i - self.participants)
        }
    }
}

/// What routing one compound produced.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    /// Compounds to send, by endpoint.
    pub transmits: Vec<(Endpoint, Vec<u8>)>,
    /// Worst loss fraction the sender reported as a receiver, if it sent reports.
    pub loss: Option<u8>,
    /// Bandwidth estimate the sender sent (REMB), if any.
    pub estimate: Option<u64>,
    /// Packets to resend from the retransmission buffer (each with its
    /// source, for WebRTC legs), to participant `resend_to`.
    pub resend: Vec<(Bytes, Option<crate::webrtc::Source>)>,
    pub resend_to: Option<usize>,
    /// The sender's own bandwidth estimate (`bwe`) took its transport-wide feedback.
    pub feedback: bool,
}

/// Who sent a compound: its origin and where that sits in the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct From {
    pub origin: Origin,
    pub endpoint: Endpoint,
}

/// Routes one parsed compound.
pub(crate) fn route(
    call: &mut Call,
    sent_by: From,
    pkts: Vec<RtcpPacket>,
    now: Instant,
    cfg: &RouterConfig,
    stats: &mut RouterStats,
) -> Routed {
    let From { origin, endpoint: from } = sent_by;
    let mut res = Routed::default();
    let sender = origin.owner();
    let participant = match from {
        Endpoint::Participant(i) => {
            call.participants[i].last_seen = now;
            Some(i)
        }
        Endpoint::Pipe(_) => None,
    };
    let mut out = PerEndpoint {
        participants: call.participants.len(),
        per: (0..call.participants.len() + call.pipes.len()).map(|_| Vec::new()).collect(),
    };
    let owns = |call: &Call, ssrc| call.ssrc_owner.get(&ssrc) == Some(&sender);
    // The producer's endpoint, unless that is where the packet came from.
    let owner = |call: &Call, ssrc| call.owner_endpoint(ssrc).filter(|&e| e != from);
    let mut routed_any = false;

    for p in pkts {
        match p {
            RtcpPacket::SenderReport(sr) if owns(call, sr.ssrc) => {
                on_blocks(call, participant, &sr.reports, now, &mut res);
                if let Some(p) = call.producer_mut(sr.ssrc) {
                    p.recv.last_sr = Some(PublisherSr::of(&sr, now));
                }
                let bare = RtcpPacket::SenderReport(SenderReport { reports: Vec::new(), ..sr });
                to_pipes(call, origin, &bare, &mut out);
                routed_any = true;
            }
            RtcpPacket::SenderReport(sr) => {
                on_blocks(call, participant, &sr.reports, now, &mut res);
                // Its first SR, just before the first packet claims the SSRC: kept until then.
                let claims = participant.filter(|&i| call.participants[i].learn_ssrcs);
                if let (Some(i), false) = (claims, call.ssrc_owner.contains_key(&sr.ssrc)) {
                    call.participants[i].reports.keep_pending(sr, now, cfg.max_learned_ssrcs);
                    routed_any = true;
                }
            }
            RtcpPacket::ReceiverReport(rr) => {
                on_blocks(call, participant, &rr.reports, now, &mut res);
                routed_any = true;
            }
            // A DLRR answering the router's RRTR: the leg's round trip. Terminated here.
            RtcpPacket::ExtendedReport(xr) => {
                if let Some(i) = participant {
                    call.participants[i].reports.on_dlrr(&xr.dlrr, now);
                }
                routed_any = true;
            }
            RtcpPacket::Sdes(chunks) => {
                let own: Vec<_> = chunks.into_iter().filter(|c| owns(call, c.ssrc)).collect();
                if !own.is_empty() {
                    broadcast(call, origin, from, &RtcpPacket::Sdes(own), &mut out);
                    routed_any = true;
                }
            }
            RtcpPacket::Bye(mut bye) => {
                bye.ssrcs.retain(|s| owns(call, *s));
                if !bye.ssrcs.is_empty() {
                    for s in &bye.ssrcs {
                        call.ssrc_owner.remove(s);
                    }
                    let producers = match from {
                        Endpoint::Participant(i) => &mut call.participants[i].producers,
                        Endpoint::Pipe(i) => &mut call.pipes[i].producers,
                    };
                    producers.retain(|p| !bye.ssrcs.contains(&p.ssrc));
                    broadcast(call, origin, from, &RtcpPacket::Bye(bye), &mut out);
                    routed_any = true;
                }
            }
            RtcpPacket::Nack(nack) => {
                if let Some(to) = owner(call, nack.media_ssrc) {
                    // Undo this receiver's shift, if its copy of the stream is shifted: a
                    // simulcast receiver's NACK may name packets of two layers.
                    let consumer = participant.and_then(|i| call.participants[i].consumers.get(nack.media_ssrc));
                    let mut per_source: Vec<(Shift, Vec<(SeqNo, SeqNo)>)> = Vec::new();
                    for s in nack.lost() {
                        let shift = consumer.map_or(Shift::unshifted(s.0, nack.media_ssrc), |c| c.shift_of(s));
                        // Of a layer it has moved off: not repaired (nor charged to its budget).
                        if consumer.is_some_and(|c| c.left_behind(&shift)) {
                            stats.nack_left_behind += 1;
                            continue;
                        }
                        let pair = (SeqNo(s.0.wrapping_sub(shift.offset)), s);
                        let same = |x: &Shift| {
                            x.source == shift.source && x.ts_offset == shift.ts_offset && x.pictures == shift.pictures
                        };
                        match per_source.iter_mut().find(|(x, _)| same(x)) {
                            Some((_, lost)) => lost.push(pair),
                            None => per_source.push((shift, vec![pair])),
                        }
                    }
                    for (shift, lost) in per_source {
                        let ssrc = shift.source;
                        // What the retransmission buffer holds is answered here; the rest goes to the publisher.
                        let upstream = match participant {
                            Some(i) => {
                                res.resend_to = Some(i);
                                let first = res.resend.len();
                                let up = retransmit::answer_nack(call, i, ssrc, &lost, now, stats, &mut res.resend);
                                if ssrc != nack.media_ssrc || shift.rewrites() {
                                    for (b, src) in &mut res.resend[first..] {
                                        let vp8 = src.is_some_and(|s| s.codec == crate::webrtc::Codec::Vp8);
                                        *b = simulcast::regroup(b, nack.media_ssrc, &shift, vp8);
                                    }
                                }
                                up
                            }
                            None => lost.iter().map(|l| l.0).collect(),
                        };
                        if !upstream.is_empty() {
                            stats.nacks += 1;
                            out.push(to, RtcpPacket::Nack(Nack::from_lost(nack.sender_ssrc, ssrc, &upstream)));
                        }
                    }
                    routed_any = true;
                }
            }
            RtcpPacket::Pli(pli) => {
                // A simulcast receiver asks about its group: the layer it gets (or waits for) is meant.
                let media = simulcast::layer_meant(call, participant, pli.media_ssrc);
                if let Some(to) = owner(call, media) {
                    if keyframe_allowed(call, media, now, cfg) {
                        stats.keyframe_requests += 1;
                        out.push(to, RtcpPacket::Pli(Pli { media_ssrc: media, ..pli }));
                        routed_any = true;
                    } else {
                        stats.count_drop(DropReason::KeyframeThrottled);
                    }
                }
            }
            RtcpPacket::Fir(fir) => {
                for (ssrc, seq) in fir.entries {
                    let ssrc = simulcast::layer_meant(call, participant, ssrc);
                    if let Some(to) = owner(call, ssrc) {
                        if keyframe_allowed(call, ssrc, now, cfg) {
                            stats.keyframe_requests += 1;
                            let one = Fir { sender_ssrc: fir.sender_ssrc, entries: vec![(ssrc, seq)] };
                            out.push(to, RtcpPacket::Fir(one));
                            routed_any = true;
                        } else {
                            stats.count_drop(DropReason::KeyframeThrottled);
                        }
                    }
                }
            }
            RtcpPacket::Remb(remb) => {
                if let Some(i) = participant {
                    let p = &mut call.participants[i];
                    p.remb_bps = Some(remb.bitrate_bps);
                    p.update_estimate();
                    res.estimate = p.estimate();
                    routed_any = true;
                }
            }
            RtcpPacket::TransportFeedback(fb) => {
                if let Some(i) = participant {
                    if on_transport_feedback(&mut call.participants[i], &fb, now, &mut res) {
                        stats.twcc_feedback += 1;
                        routed_any = true;
                        hold_for_drain(call, i, now);
                    }
                }
            }
            _ => {}
        }
    }
    if !routed_any {
        stats.count_drop(DropReason::RtcpUnroutable);
    }
    for (i, pkts) in out.per.iter().enumerate() {
        if pkts.is_empty() {
            continue;
        }
        if let Ok(bytes) = corecast_proto::rtcp::write_compound(pkts) {
            res.transmits.push((out.endpoint(i), bytes));
        }
    }
    res
}

/// To every participant but the sender, and on along the pipes.
fn broadcast(call: &Call, origin: Origin, from: Endpoint, p: &RtcpPacket, out: &mut PerEndpoint) {
    for i in 0..call.participants.len() {
        if from != Endpoint::Participant(i) {
            out.push(Endpoint::Participant(i), p.clone());
        }
    }
    for (i, pipe) in call.pipes.iter().enumerate() {
        if crate::fanout::to_pipe(origin.pipe(), pipe.peer) {
            out.push(Endpoint::Pipe(i), p.clone());
        }
    }
}

/// On along the pipes only (the router's own SRs replace it towards participants).
fn to_pipes(call: &Call, origin: Origin, p: &RtcpPacket, out: &mut PerEndpoint) {
    for (i, pipe) in call.pipes.iter().enumerate() {
        if crate::fanout::to_pipe(origin.pipe(), pipe.peer) {
            out.push(Endpoint::Pipe(i), p.clone());
        }
    }
}

/// A participant's report blocks (not forwarded): its RTT, its loss figure.
fn on_blocks(call: &mut Call, participant: Option<usize>, blocks: &[ReportBlock], now: Instant, res: &mut Routed) {
    let Some(i) = participant else { return };
    call.participants[i].reports.on_blocks(blocks, now);
    // The audio's own loss (its retransmission-less streams: RED's cue).
    let audio = blocks.iter().filter(|b| call.producer(b.ssrc).is_some_and(|p| p.kind == MediaKind::Audio));
    if let Some(worst) = audio.map(|b| b.fraction_lost).max() {
        call.participants[i].audio_loss = worst;
    }
    if let Some(loss) = aggregate_loss(call, blocks) {
        call.participants[i].reported_loss = loss;
        res.loss = Some(res.loss.map_or(loss, |l: u8| l.max(loss)));
    }
}

/// A receiver's transport-wide feedback about what the router sent it:
/// fed to its bandwidth estimate (made at the first), which then updates
/// the estimate acted on (offered to the HD/SD switching at most once per
/// [`crate::bwe::SIGNAL_INTERVAL`]). `false`: not a leg the router numbers
/// its sends on (a native leg, or no transport-cc), nothing done.
fn on_transport_feedback(
    p: &mut crate::participant::Participant,
    fb: &corecast_proto::rtcp::TransportFeedback,
    now: Instant,
    res: &mut Routed,
) -> bool {
    let Transport::WebRtc(w) = &mut p.transport else { return false };
    let Some(history) = w.send_history_mut() else { return false };
    let bwe = p.bwe.get_or_insert_with(Default::default);
    if let Some(rtt) = p.reports.rtt {
        bwe.set_rtt(rtt);
    }
    bwe.on_feedback(now, history, fb);
    let due = bwe.signal_due(now);
    p.update_estimate();
    if due {
        res.estimate = p.estimate();
    }
    res.feedback = true;
    true
}

/// After a steep fall of receiver `i`'s estimate, its leg holds its video
/// while the bottleneck drains, so that the lower layer's keyframe enters an
/// empty queue — only if it gets a layer above the lowest: with none to
/// move down to, no keyframe is coming and holding would only stall its
/// picture.
fn hold_for_drain(call: &mut Call, i: usize, now: Instant) {
    let Some(drain) = call.participants[i].bwe.as_mut().and_then(|b| b.take_drain()) else { return };
    if !crate::simulcast::on_upper_layer(call, i) {
        return;
    }
    if let Transport::WebRtc(w) = &mut call.participants[i].transport {
        w.hold_paced(now + drain);
    }
}

/// The loss over every stream a report covers, in 1/256: each block's
/// fraction weighted by its stream's packet rate (a plain mean while any
/// rate is not measured yet).
fn aggregate_loss(call: &Call, blocks: &[ReportBlock]) -> Option<u8> {
    if blocks.is_empty() {
        return None;
    }
    let rate = |b: &ReportBlock| call.producers().find(|p| p.ssrc == b.ssrc).map_or(0, |p| p.packet_rate);
    let weights: Vec<u64> = blocks.iter().map(rate).collect();
    let weights = if weights.contains(&0) { vec![1; blocks.len()] } else { weights };
    let total: u64 = weights.iter().sum();
    let sum: u64 = blocks.iter().zip(&weights).map(|(b, w)| u64::from(b.fraction_lost) * w).sum();
    Some((sum / total) as u8)
}

fn keyframe_allowed(call: &mut Call, ssrc: corecast_proto::Ssrc, now: Instant, cfg: &RouterConfig) -> bool {
    call.producer_mut(ssrc).is_some_and(|p| p.keyframe.allow(now, cfg.keyframe_request_interval))
}

impl Router {
    pub(crate) fn route_rtcp(&mut self, now: Instant, call_id: CallId, origin: Origin, contents: &[u8]) {
        let pkts = match corecast_proto::rtcp::parse_compound(contents) {
            Ok(p) => p,
            Err(_) => return self.out.drop_packet(DropReason::Malformed),
        };
        let Some((call, from)) = locate(&mut self.calls, &mut self.out, call_id, origin) else { return };
        let sent_by = From { origin, endpoint: from };
        let routed = route(call, sent_by, pkts, now, &self.config, &mut self.out.stats);
        if let Some(i) = routed.resend_to {
            let transport = &mut call.participants[i].transport;
            for (b, src) in routed.resend {
                let Ok(h) = corecast_proto::rtp::RtpHeader::parse(&b) else { continue };
                if transport.resend(&mut self.out, b, &h, src) {
                    self.out.stats.retransmitted += 1;
                }
            }
        }
        for (to, bytes) in routed.transmits {
            self.out.stats.forwarded_rtcp += 1;
            call.send_to(&mut self.out, to, Bytes::from(bytes));
        }
        if let (Origin::Participant(pid), true) = (origin, routed.feedback) {
            self.probe(now, call_id, pid);
        }
        if let (Origin::Participant(pid), true) = (origin, routed.loss.is_some() || routed.estimate.is_some()) {
            self.on_quality_signal(now, call_id, pid, routed.loss, routed.estimate);
        }
    }
}

//! RTCP routing, as an RTP translator-style SFU does it (RFC 3550 §7, RFC 4585 §3.5):
//!
//! - SR, SDES and BYE about the sender's own SSRCs go to every other participant
//!   (receivers need SRs for lip-sync); SR report blocks are routed like RR blocks;
//! - RR report blocks go to the producer of the SSRC they report on, and their
//!   loss fraction is kept as the receiver's latest loss figure;
//! - NACK goes to the producer of the media SSRC;
//! - PLI and FIR go to the producer of the media SSRC, at most one per
//!   `keyframe_request_interval` per producer (N receivers asking at once must
//!   not make the producer send N keyframes);
//! - REMB is kept as the receiver's bandwidth estimate and not forwarded;
//! - APP and unknown types are dropped and counted.
//!
//! Nothing about an SSRC the sender does not own is forwarded.

use std::time::Instant;

use corecast_proto::rtcp::{Fir, Nack, Pli, ReceiverReport, ReportBlock, RtcpPacket, SenderReport};
use corecast_proto::token::ParticipantId;
use corecast_proto::SeqNo;

use crate::call::Call;
use crate::stats::{DropReason, RouterStats};
use crate::RouterConfig;

/// Per-destination packet lists, in participant order.
struct Outbox {
    per: Vec<Vec<RtcpPacket>>,
}

impl Outbox {
    fn push(&mut self, idx: usize, p: RtcpPacket) {
        self.per[idx].push(p);
    }
}

/// What routing one compound produced.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    /// Compounds to send, by participant index.
    pub transmits: Vec<(usize, Vec<u8>)>,
    /// Worst loss fraction the sender reported as a receiver, if it sent reports.
    pub loss: Option<u8>,
    /// Bandwidth estimate the sender sent (REMB), if any.
    pub estimate: Option<u64>,
}

pub(crate) fn route(
    call: &mut Call,
    sender: ParticipantId,
    pkts: Vec<RtcpPacket>,
    now: Instant,
    cfg: &RouterConfig,
    stats: &mut RouterStats,
) -> Routed {
    let mut res = Routed::default();
    let Some(si) = call.index_of(sender) else { return res };
    call.participants[si].last_seen = now;
    let n = call.participants.len();
    let mut out = Outbox { per: (0..n).map(|_| Vec::new()).collect() };
    let owns = |call: &Call, ssrc| call.ssrc_owner.get(&ssrc) == Some(&sender);
    let mut routed_any = false;

    for p in pkts {
        match p {
            RtcpPacket::SenderReport(sr) if owns(call, sr.ssrc) => {
                route_blocks(call, si, sr.ssrc, &sr.reports, &mut out);
                let bare = RtcpPacket::SenderReport(SenderReport { reports: Vec::new(), ..sr });
                broadcast(si, n, &bare, &mut out);
                routed_any = true;
            }
            RtcpPacket::ReceiverReport(rr) => {
                if let Some(worst) = rr.reports.iter().map(|b| b.fraction_lost).max() {
                    call.participants[si].reported_loss = worst;
                    res.loss = Some(res.loss.map_or(worst, |l: u8| l.max(worst)));
                }
                route_blocks(call, si, rr.ssrc, &rr.reports, &mut out);
                routed_any = true;
            }
            RtcpPacket::Sdes(chunks) => {
                let own: Vec<_> = chunks.into_iter().filter(|c| owns(call, c.ssrc)).collect();
                if !own.is_empty() {
                    broadcast(si, n, &RtcpPacket::Sdes(own), &mut out);
                    routed_any = true;
                }
            }
            RtcpPacket::Bye(mut bye) => {
                bye.ssrcs.retain(|s| owns(call, *s));
                if !bye.ssrcs.is_empty() {
                    for s in &bye.ssrcs {
                        call.ssrc_owner.remove(s);
                    }
                    call.participants[si].producers.retain(|p| !bye.ssrcs.contains(&p.ssrc));
                    broadcast(si, n, &RtcpPacket::Bye(bye), &mut out);
                    routed_any = true;
                }
            }
            RtcpPacket::Nack(mut nack) => {
                if let Some(oi) = call.owner_index(nack.media_ssrc).filter(|&oi| oi != si) {
                    // Undo this receiver's sequence shift, if its copy of the stream is shifted.
                    if let Some(c) = call.participants[si].consumers.iter().find(|c| c.ssrc == nack.media_ssrc) {
                        if c.offset != 0 {
                            let lost: Vec<_> = nack.lost().map(|s| SeqNo(s.0.wrapping_sub(c.offset))).collect();
                            nack = Nack::from_lost(nack.sender_ssrc, nack.media_ssrc, &lost);
                        }
                    }
                    stats.nacks += 1;
                    out.push(oi, RtcpPacket::Nack(nack));
                    routed_any = true;
                }
            }
            RtcpPacket::Pli(pli) => {
                if let Some(oi) = call.owner_index(pli.media_ssrc).filter(|&oi| oi != si) {
                    if keyframe_allowed(call, oi, pli.media_ssrc, now, cfg) {
                        stats.keyframe_requests += 1;
                        out.push(oi, RtcpPacket::Pli(Pli { ..pli }));
                        routed_any = true;
                    } else {
                        stats.count_drop(DropReason::KeyframeThrottled);
                    }
                }
            }
            RtcpPacket::Fir(fir) => {
                for (ssrc, seq) in fir.entries {
                    if let Some(oi) = call.owner_index(ssrc).filter(|&oi| oi != si) {
                        if keyframe_allowed(call, oi, ssrc, now, cfg) {
                            stats.keyframe_requests += 1;
                            out.push(
                                oi,
                                RtcpPacket::Fir(Fir { sender_ssrc: fir.sender_ssrc, entries: vec![(ssrc, seq)] }),
                            );
                            routed_any = true;
                        } else {
                            stats.count_drop(DropReason::KeyframeThrottled);
                        }
                    }
                }
            }
            RtcpPacket::Remb(remb) => {
                call.participants[si].estimate_bps = Some(remb.bitrate_bps);
                res.estimate = Some(remb.bitrate_bps);
                routed_any = true;
            }
            _ => {}
        }
    }
    if !routed_any {
        stats.count_drop(DropReason::RtcpUnroutable);
    }
    for (i, pkts) in out.per.into_iter().enumerate() {
        if pkts.is_empty() {
            continue;
        }
        if let Ok(bytes) = corecast_proto::rtcp::write_compound(&pkts) {
            res.transmits.push((i, bytes));
        }
    }
    res
}

fn broadcast(si: usize, n: usize, p: &RtcpPacket, out: &mut Outbox) {
    for i in 0..n {
        if i != si {
            out.push(i, p.clone());
        }
    }
}

fn route_blocks(call: &Call, si: usize, reporter: corecast_proto::Ssrc, blocks: &[ReportBlock], out: &mut Outbox) {
    for b in blocks {
        if let Some(oi) = call.owner_index(b.ssrc).filter(|&oi| oi != si) {
            out.push(oi, RtcpPacket::ReceiverReport(ReceiverReport { ssrc: reporter, reports: vec![*b] }));
        }
    }
}

fn keyframe_allowed(call: &mut Call, oi: usize, ssrc: corecast_proto::Ssrc, now: Instant, cfg: &RouterConfig) -> bool {
    let Some(p) = call.participants[oi].producer_mut(ssrc) else { return false };
    match p.last_keyframe_request {
        Some(t) if now.saturating_duration_since(t) < cfg.keyframe_request_interval => false,
        _ => {
            p.last_keyframe_request = Some(now);
            true
        }
    }
}

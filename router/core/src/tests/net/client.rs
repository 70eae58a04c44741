//! The simulated network's clients: each joins, sends its streams on its
//! uplink, takes what its downlink delivers, reports what it received
//! (RFC 3550 RRs), NACKs its gaps, resends what it is NACKed, and answers
//! keyframe requests with a keyframe of the stream asked about.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtcp::{self, ReceiverReport, ReportBlock, RtcpPacket};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{Quality, SessionMessage};
use corecast_proto::token::ParticipantId;
use corecast_proto::{SeqNo, Ssrc};

use super::{Link, Received, Stream};

/// A participant on the simulated network.
#[derive(Debug)]
pub struct Client {
    pub addr: SocketAddr,
    pub pid: ParticipantId,
    pub(super) token: Vec<u8>,
    pub(super) quality: Quality,
    pub up: Link,
    pub down: Link,
    pub streams: Vec<Stream>,
    pub joined: bool,
    pub(super) next_join: Instant,
    pub(super) next_report: Instant,
    /// Per SSRC, what reached this client.
    pub rx: BTreeMap<u32, Received>,
    /// The reports this client sent: when, and each block's fraction lost.
    pub reports: Vec<(Instant, Vec<u8>)>,
    /// VP8 keyframes that reached it: when, SSRC, number.
    pub keyframes_in: Vec<(Instant, u32, u16)>,
    /// Keyframe requests (PLI) that reached this client.
    pub plis: Vec<Instant>,
    /// Every sequence number NACKs that reached this client asked for
    /// (media SSRC, number), in order; the client resends what it still has.
    pub nacked: Vec<(u32, u16)>,
    /// NACKs its gaps (RFC 4585 generic NACK): after 20 ms, then every
    /// 150 ms, at most 5 times per packet.
    pub nacks: bool,
    /// Resends what NACKs ask for (else it ignores them, as some encoders do).
    pub resends: bool,
    /// Simulcast layers it declares once joined (lowest first; empty: none).
    pub simulcast: Vec<Ssrc>,
    /// Its bandwidth estimate, sent as REMB at once when it changes and
    /// with every report (what a receiver-side estimator would say).
    pub remb: Option<u64>,
    pub(super) remb_sent: Option<u64>,
    /// Lists its SSRCs in its join (else it claims them by sending, as ffmpeg does).
    pub declares: bool,
    /// Gaps it NACKs: (SSRC, number) → (next NACK, NACKs sent).
    pub(super) missing: BTreeMap<(u32, u16), (Instant, u8)>,
    /// The simulation's start (its wallclock's origin).
    pub(super) t0: Instant,
    /// SRs and RRs that reached it, with when (and, for SRs, how many
    /// packets of that SSRC had reached it by then).
    pub srs_in: Vec<(Instant, rtcp::SenderReport, u64)>,
    pub rrs_in: Vec<(Instant, ReceiverReport)>,
    /// Per SSRC: the last SR's compact NTP time and when it came (its reports' LSR/DLSR).
    pub(super) last_sr: BTreeMap<u32, (u32, Instant)>,
    /// The last RRTR that reached it (RFC 3611): from whom, its compact NTP
    /// time and when; its reports carry a DLRR about it, as libwebrtc's do.
    pub(super) last_rrtr: Option<(Ssrc, u32, Instant)>,
}

impl Client {
    fn report_ssrc(&self) -> Ssrc {
        self.streams.first().map_or(Ssrc(0x5000_0000 + self.pid.0 as u32), |s| s.ssrc)
    }

    pub(super) fn receive(&mut self, now: Instant, b: &Bytes) {
        match classify(b) {
            Kind::Rtp => {
                if let Ok(h) = RtpHeader::parse(b) {
                    if corecast_proto::keyframe::vp8_starts_keyframe(h.payload(b)) {
                        self.keyframes_in.push((now, h.ssrc.0, h.seq.0));
                    }
                    let rx = self.rx.entry(h.ssrc.0).or_default();
                    let before = rx.ext.highest();
                    rx.on_packet(now, h.seq);
                    self.missing.remove(&(h.ssrc.0, h.seq.0));
                    if let (true, Some(before), Some(after)) = (self.nacks, before, rx.ext.highest()) {
                        for e in (before + 1..after).take(200) {
                            self.missing.insert((h.ssrc.0, e as u16), (now + Duration::from_millis(20), 0));
                        }
                    }
                }
            }
            Kind::Rtcp => {
                for p in rtcp::parse_compound(b).unwrap_or_default() {
                    match p {
                        RtcpPacket::Pli(p) => {
                            self.plis.push(now);
                            if let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == p.media_ssrc) {
                                s.keyframe_due = true;
                            }
                        }
                        RtcpPacket::SenderReport(sr) => {
                            self.last_sr.insert(sr.ssrc.0, ((sr.ntp_time >> 16) as u32, now));
                            let got = self.rx.get(&sr.ssrc.0).map_or(0, |r| r.packets);
                            self.srs_in.push((now, sr, got));
                        }
                        RtcpPacket::ReceiverReport(rr) => self.rrs_in.push((now, rr)),
                        RtcpPacket::ExtendedReport(xr) => {
                            if let Some(ntp) = xr.rrtr {
                                self.last_rrtr = Some((xr.ssrc, (ntp >> 16) as u32, now));
                            }
                        }
                        RtcpPacket::Nack(n) => {
                            for seq in n.lost() {
                                self.nacked.push((n.media_ssrc.0, seq.0));
                                let s = self.streams.iter().find(|s| s.ssrc == n.media_ssrc);
                                let again = s
                                    .filter(|_| self.resends)
                                    .and_then(|s| s.history.iter().find(|(q, _)| *q == seq.0));
                                if let Some((_, b)) = again {
                                    self.up.send(now, b.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Kind::Stun => {
                if let Ok(SessionMessage::JoinAck { .. }) = SessionMessage::parse(b) {
                    if !self.joined {
                        for s in &mut self.streams {
                            s.next = Some(now);
                        }
                        if !self.simulcast.is_empty() {
                            let layers = self.simulcast.clone();
                            let m = SessionMessage::Simulcast { txid: [8; 12], layers };
                            self.up.send(now, Bytes::from(super::super::signed(&m, &self.token)));
                        }
                    }
                    self.joined = true;
                }
            }
            _ => {}
        }
    }

    /// What the client sends at `now`: its join until answered, then media and reports.
    pub(super) fn act(&mut self, now: Instant, report_every: Duration) {
        if !self.joined {
            if now >= self.next_join {
                let ssrcs =
                    if self.declares { self.streams.iter().map(|s| (s.ssrc, s.kind)).collect() } else { vec![] };
                let m = SessionMessage::Join {
                    txid: [7; 12],
                    token: self.token.clone(),
                    ssrcs,
                    quality: self.quality,
                    srtp: false,
                };
                self.up.send(now, Bytes::from(super::super::signed(&m, &self.token)));
                self.next_join = now + Duration::from_millis(250);
            }
            return;
        }
        self.send_nacks(now);
        if self.remb != self.remb_sent {
            self.send_remb(now);
        }
        for s in &mut self.streams {
            if s.until.is_some_and(|u| now >= u) {
                s.next = Some(now + Duration::from_secs(3600));
                continue;
            }
            let next = *s.next.get_or_insert(now);
            if now >= next {
                s.next = Some(next + s.interval);
                if s.sr_every.is_some() && s.next_sr.is_none_or(|t| now >= t) {
                    s.next_sr = Some(now + s.sr_every.unwrap_or_default());
                    let sr = s.sender_report(now, self.t0);
                    s.srs.push((now, sr.clone()));
                    let b = rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).expect("a valid SR");
                    self.up.send(now, Bytes::from(b));
                }
                self.up.send(now, s.packet(now));
            }
        }
        if now >= self.next_report {
            self.next_report = now + report_every;
            let reporter = self.report_ssrc();
            let reports: Vec<ReportBlock> =
                self.rx
                    .iter_mut()
                    .map(|(&ssrc, r)| {
                        let (last_sr, delay_since_last_sr) = self.last_sr.get(&ssrc).map_or((0, 0), |&(lsr, at)| {
                            (lsr, ((now - at).as_nanos() * 65_536 / 1_000_000_000) as u32)
                        });
                        ReportBlock {
                            ssrc: Ssrc(ssrc),
                            fraction_lost: r.fraction(),
                            cumulative_lost: r.lost() as i32,
                            ext_highest_seq: r.ext.highest().map_or(0, |h| (h - (1 << 16)) as u32),
                            last_sr,
                            delay_since_last_sr,
                            ..Default::default()
                        }
                    })
                    .collect();
            self.reports.push((now, reports.iter().map(|b| b.fraction_lost).collect()));
            let mut compound = vec![RtcpPacket::ReceiverReport(ReceiverReport { ssrc: reporter, reports })];
            if let Some((ssrc, last_rr, at)) = self.last_rrtr {
                let delay_since_last_rr = ((now - at).as_nanos() * 65_536 / 1_000_000_000) as u32;
                let dlrr = vec![rtcp::DlrrItem { ssrc, last_rr, delay_since_last_rr }];
                compound.push(RtcpPacket::ExtendedReport(rtcp::ExtendedReport { ssrc: reporter, rrtr: None, dlrr }));
            }
            self.up.send(now, Bytes::from(rtcp::write_compound(&compound).expect("a valid report")));
            if self.remb.is_some() {
                self.send_remb(now);
            }
        }
    }

    fn send_remb(&mut self, now: Instant) {
        self.remb_sent = self.remb;
        let Some(bitrate_bps) = self.remb else { return };
        let remb = RtcpPacket::Remb(rtcp::Remb { sender_ssrc: self.report_ssrc(), bitrate_bps, ssrcs: vec![] });
        self.up.send(now, Bytes::from(rtcp::write_compound(&[remb]).expect("a valid REMB")));
    }

    /// NACKs the gaps that are due, one NACK per SSRC.
    fn send_nacks(&mut self, now: Instant) {
        let reporter = self.report_ssrc();
        let mut due: BTreeMap<u32, Vec<SeqNo>> = BTreeMap::new();
        self.missing.retain(|&(ssrc, seq), (next, tries)| {
            if *next <= now {
                if *tries >= 5 {
                    return false;
                }
                due.entry(ssrc).or_default().push(SeqNo(seq));
                *tries += 1;
                *next = now + Duration::from_millis(150);
            }
            true
        });
        for (ssrc, seqs) in due {
            let nack = RtcpPacket::Nack(rtcp::Nack::from_lost(reporter, Ssrc(ssrc), &seqs));
            self.up.send(now, Bytes::from(rtcp::write_compound(&[nack]).expect("a valid NACK")));
        }
    }

    pub(super) fn next_action(&self) -> Instant {
        if !self.joined {
            return self.next_join;
        }
        let media = self.streams.iter().filter_map(|s| s.next).min();
        let t = media.map_or(self.next_report, |m| m.min(self.next_report));
        self.missing.values().map(|m| m.0).min().map_or(t, |n| n.min(t))
    }
}

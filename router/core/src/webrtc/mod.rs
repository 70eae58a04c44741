//! The WebRTC transport: a leg that reaches a browser or a standard WebRTC
//! tool (WHIP/WHEP) over ICE-lite, DTLS-SRTP and BUNDLE on the router's
//! UDP port.
//!
//! - `ice`: the ICE-lite state (valid addresses, nomination, consent);
//! - `dtls`: the router's certificate and the leg's DTLS server (`dimpl`);
//! - `media`: the negotiated m-lines and the per-receiver header rewrite.
//!
//! Per-leg crypto on the fast path: each forwarded packet is rewritten for
//! the leg (payload type, `mid`) straight into the outbox's arena, a large
//! buffer the sealed packets are split off, and sealed there in place with
//! the leg's own SRTP keys (no allocation per packet: the arena's memory
//! comes back once the driver has sent what was split off it).

mod dtls;
mod ice;
mod media;
mod pacing;
mod rid;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use corecast_proto::rtcp::TwccRecorder;
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::Quality;
use corecast_proto::srtp::keys_from_dtls;
use corecast_proto::Ssrc;

use crate::srtp_pair::SrtpPair;
use corecast_proto::token::{CallId, ParticipantId, Role};

pub use dtls::DtlsIdentity;
pub(crate) use dtls::{DtlsFailure, DtlsSession};
pub use ice::IceCredentials;
pub(crate) use ice::IceLite;
pub use media::rtx_ssrc;
pub use media::{Codec, LegExtensions, LegMedia, SenderFormat};
pub(crate) use media::{LegFormat, RtxIn, Source};

use crate::bwe::{ClusterId, ProbeCluster, SendHistory};
use crate::outbox::Outbox;
use crate::stats::DropReason;
use pacing::PacedQueue;

/// A WebRTC leg the control plane opens from a negotiated offer/answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtcLeg {
    /// The call.
    pub call: CallId,
    /// The participant the leg is.
    pub participant: ParticipantId,
    /// Publisher (WHIP) or subscriber (WHEP).
    pub role: Role,
    /// ICE credentials (the router's and the peer's ufrag).
    pub ice: IceCredentials,
    /// SHA-256 fingerprint of the peer's DTLS certificate (from its SDP).
    pub remote_fingerprint: Vec<u8>,
    /// The accepted m-lines.
    pub media: Vec<LegMedia>,
    /// Header extension ids.
    pub extensions: LegExtensions,
    /// Receive only this participant's streams (WHEP `?participant=`);
    /// `None`: every stream the leg's quality gets.
    pub subscribe: Option<ParticipantId>,
    /// HD (every stream) or SD (the call's composite: WHEP `?view=composite`).
    pub quality: Quality,
    /// A subscriber's frame-rate cap (WHEP `?max_fps=`, 1..=60): of video
    /// sent with temporal layers (VP8 or AV1, L1T2/L1T3) the leg gets only
    /// the layers whose frames add up to at most this many per second, and
    /// always the base layer. `None`: every frame. Ignored on a publisher leg.
    pub max_fps: Option<u8>,
    /// A subscriber's requested size (WHEP `?max_height=`, pixels): of a
    /// simulcast source it gets the best layer at most this high. `None`:
    /// as its bandwidth allows. Ignored on a publisher leg.
    pub max_height: Option<u16>,
    /// A subscriber's Last-N (WHEP `?last_n=`): video only while the
    /// publisher it watches is among the call's `n` most active speakers
    /// (paused, not sent, otherwise). `None`: always. Ignored on a publisher leg.
    pub last_n: Option<u8>,
    /// A leg that passed no ICE check by then is dropped.
    pub pending_until: Instant,
}

/// The state of one WebRTC leg.
#[derive(Debug)]
pub(crate) struct WebRtcTransport {
    /// The router's first ufrag: names the session for the control plane
    /// (PATCH) through ICE restarts.
    pub session: String,
    pub ice: IceLite,
    pub dtls: DtlsSession,
    /// SRTP both ways, once DTLS exported the keys.
    srtp: Option<SrtpPair>,
    pub format: LegFormat,
    pub pending_until: Instant,
    /// Where DTLS records go: the source of the peer's last DTLS datagram.
    dtls_peer: Option<SocketAddr>,
    /// Arrival times of the peer's packets by transport-wide sequence
    /// number, for the congestion feedback its bandwidth estimator needs
    /// (legs on which the peer sends and negotiated transport-cc).
    twcc: Option<TwccRecorder>,
    /// The SSRC the feedback names as its media source.
    twcc_media_ssrc: u32,
    /// The next sequence number of each RTX stream the router sends on
    /// this leg, by RTX SSRC (a leg gets few video streams: a short list).
    rtx_seqs: Vec<(u32, u16)>,
    /// What the router sent on this leg by transport-wide sequence number
    /// (legs on which the router sends and that negotiated transport-cc):
    /// the send side of the receiver's bandwidth estimate (`bwe`).
    send_history: Option<SendHistory>,
    /// The video stream probes go on as padding (its SSRC, codec and last
    /// timestamp, as sent): the last video stream sent here.
    probe_stream: Option<(u32, Codec, u32)>,
    /// Simulcast layers learned by RID (`rid`): (m-line, place, SSRC).
    rid_layers: Vec<(usize, u8, Ssrc)>,
    /// The leg's call and participant (what the outbox wakes it by).
    leg: (CallId, ParticipantId),
    /// The pace of what the router sends here, and what waits for it (`pacing`).
    paced: PacedQueue,
}

/// Padding per probe packet (RFC 3550 padding: at most 255 bytes).
const PROBE_PADDING: usize = 255;
/// The most packets one probe cluster is sent in.
const PROBE_MAX_PACKETS: usize = 40;

impl WebRtcTransport {
    pub fn new(leg: &WebRtcLeg, identity: &DtlsIdentity, now: Instant) -> WebRtcTransport {
        WebRtcTransport {
            session: leg.ice.local_ufrag.clone(),
            ice: IceLite::new(leg.ice.clone()),
            dtls: DtlsSession::new(identity, leg.remote_fingerprint.clone(), now),
            srtp: None,
            format: LegFormat::new(leg.media.clone(), leg.extensions),
            pending_until: leg.pending_until,
            dtls_peer: None,
            twcc: (leg.extensions.transport_cc.is_some() && leg.media.iter().any(|m| m.receives))
                .then(TwccRecorder::new),
            twcc_media_ssrc: leg.media.iter().flat_map(|m| m.remote_ssrcs.first()).next().map_or(0, |s| s.0),
            rtx_seqs: Vec::new(),
            send_history: (leg.extensions.transport_cc.is_some() && leg.media.iter().any(|m| m.sends))
                .then(SendHistory::new),
            probe_stream: None,
            rid_layers: Vec::new(),
            leg: (leg.call, leg.participant),
            paced: PacedQueue::default(),
        }
    }

    /// The transport-wide send history, on a leg that negotiated transport-cc.
    pub fn send_history_mut(&mut self) -> Option<&mut SendHistory> {
        self.send_history.as_mut()
    }

    /// Whether media flows (DTLS done, SRTP keyed).
    pub fn ready(&self) -> bool {
        self.srtp.is_some()
    }

    /// Feeds a DTLS datagram from `source` (a valid address) and sends the
    /// answers; keys SRTP when the handshake completes.
    pub fn on_dtls(
        &mut self,
        now: Instant,
        source: SocketAddr,
        packet: &[u8],
        out: &mut Outbox,
    ) -> Result<(), DtlsFailure> {
        self.dtls_peer = Some(source);
        let mut send = Vec::new();
        let r = self.dtls.handle_packet(now, packet, &mut send);
        self.finish_dtls(r, send, out)
    }

    /// DTLS retransmissions and deadline.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Outbox) -> Result<(), DtlsFailure> {
        if self.dtls_peer.is_none() || self.srtp.is_some() {
            return Ok(());
        }
        let mut send = Vec::new();
        let r = self.dtls.handle_timeout(now, &mut send);
        self.finish_dtls(r, send, out)
    }

    fn finish_dtls(
        &mut self,
        r: Result<Option<dtls::Exported>, DtlsFailure>,
        send: Vec<Bytes>,
        out: &mut Outbox,
    ) -> Result<(), DtlsFailure> {
        if let Some(to) = self.dtls_peer {
            for b in send {
                out.transmit(to, b);
            }
        }
        if let Some(keys) = r? {
            let (ours, theirs) =
                keys_from_dtls(keys.profile, &keys.material, true).map_err(|_| DtlsFailure::Profile)?;
            self.srtp = Some(SrtpPair::new(&ours, &theirs).map_err(|_| DtlsFailure::Profile)?);
        }
        Ok(())
    }

    /// Notes the arrival of a (decrypted) RTP packet, parsed as `h`, for
    /// congestion feedback.
    pub fn on_rtp_arrival(&mut self, now: Instant, h: &RtpHeader, plain: &[u8]) {
        let (Some(twcc), Some(id)) = (self.twcc.as_mut(), self.format.extensions.transport_cc) else { return };
        let seq = h.extensions(plain).flatten().find(|e| e.id == id).filter(|e| e.data.len() == 2);
        if let Some(e) = seq {
            twcc.record(u16::from_be_bytes([e.data[0], e.data[1]]), now);
        }
    }

    /// Whether this leg sends congestion feedback.
    pub fn sends_feedback(&self) -> bool {
        self.twcc.is_some()
    }

    /// Sends the congestion feedback that is due (SRTCP).
    pub fn send_feedback(&mut self, now: Instant, out: &mut Outbox) {
        let Some(twcc) = self.twcc.as_mut() else { return };
        if twcc.next_deadline().is_none_or(|t| t > now) || self.srtp.is_none() {
            return;
        }
        let mut fb = Vec::with_capacity(256);
        if twcc.poll_feedback(now, crate::ROUTER_SSRC.0, self.twcc_media_ssrc, &mut fb) {
            // poll_feedback may write several RTCP packets: one compound.
            self.send_rtcp(out, &fb);
        }
    }

    /// Decrypts an SRTP (or, `rtcp`, SRTCP) packet from the peer.
    pub fn unprotect(&mut self, packet: &[u8], rtcp: bool, out: &mut Outbox) -> Result<Bytes, DropReason> {
        match &mut self.srtp {
            Some(srtp) => srtp.unprotect(packet, rtcp, out),
            None => Err(DropReason::NotReady),
        }
    }

    /// Sends a forwarded RTP packet: rewritten for this leg, then sealed.
    pub fn send_rtp(&mut self, out: &mut Outbox, packet: &[u8], h: &RtpHeader, src: Source) -> bool {
        let video = src.kind == corecast_proto::MediaKind::Video;
        let sent = self.seal_and_send(out, 0, video, |f, twcc, arena| f.rewrite(packet, h, src, twcc, arena));
        if sent == Some(false) {
            out.stats.webrtc_not_ready += 1;
        }
        if sent == Some(true) && src.kind == corecast_proto::MediaKind::Video && self.send_history.is_some() {
            // As sent: a simulcast layer goes out under its group's SSRC and clock.
            if let Some(b) = packet.get(4..12) {
                let ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                self.probe_stream = Some((u32::from_be_bytes([b[4], b[5], b[6], b[7]]), src.codec, ts));
            }
        }
        sent == Some(true)
    }

    /// Sends a forwarded Opus packet as RED (RFC 2198) with the previous
    /// packet's payload `prev` (`ts_offset` earlier) as redundancy; `false`
    /// if it could not go so (then send it plainly).
    pub fn send_red(
        &mut self,
        out: &mut Outbox,
        packet: &[u8],
        h: &RtpHeader,
        src: Source,
        prev: (&[u8], u32),
    ) -> bool {
        self.seal_and_send(out, 0, false, |f, twcc, arena| f.rewrite_red(packet, h, src, prev.0, prev.1, twcc, arena))
            == Some(true)
    }

    /// Writes one RTP packet with `write` (which appends it to the arena, or
    /// writes nothing and says `false`) straight into the outbox's arena, then
    /// seals it there with the leg's keys and sends it, or queues it for the
    /// leg's pace (`pacing`): one copy, no allocation. `write` gets the
    /// transport-wide sequence number to stamp (when the leg negotiated
    /// transport-cc; a `paced` packet, or any while the leg is not paced);
    /// what went is recorded in the send history when it leaves, with its
    /// probe `cluster` (0: none). An unpaced packet (audio) leaves at once.
    /// `None`: the leg is not ready (counted), or sealing failed (counted);
    /// `Some(false)`: `write` wrote nothing.
    fn seal_and_send(
        &mut self,
        out: &mut Outbox,
        cluster: ClusterId,
        paced: bool,
        write: impl FnOnce(&LegFormat, Option<u16>, &mut BytesMut) -> bool,
    ) -> Option<bool> {
        let (Some(dest), Some(srtp)) = (self.ice.remote(), self.srtp.as_mut()) else {
            out.stats.webrtc_not_ready += 1;
            return None;
        };
        let format = &self.format;
        let queued = paced || !self.paced.active();
        // Numbers are stamped in queue order: past those still waiting. An
        // unpaced packet (audio) that finds nothing waiting takes the next
        // one as it leaves at once; behind waiting packets it goes unnumbered.
        let waiting = self.paced.len() as u16;
        let numbered = queued || waiting == 0;
        let twcc = self.send_history.as_ref().filter(|_| numbered).map(|s| s.next_seq().0.wrapping_add(waiting));
        let mut size = 0;
        let sealed = srtp.seal(out, |arena| {
            let start = arena.len();
            let written = write(format, twcc, arena);
            size = arena.len() - start;
            written
        })?;
        let Some(b) = sealed else { return Some(false) };
        if queued {
            self.paced.send(out, self.leg, dest, b, size, cluster, self.send_history.as_mut());
        } else {
            let history = self.send_history.as_mut().filter(|_| numbered);
            self.paced.send_unpaced(out, dest, b, size, history);
        }
        Some(true)
    }

    /// The receiver's estimate changed (`None`: none yet): the pace follows.
    pub fn set_pace(&mut self, estimate_bps: Option<u64>) {
        self.paced.set_estimate(estimate_bps);
    }

    /// Withdraws what waits in the leg's send queue of `ssrc` (`pacing`).
    pub fn withdraw_paced(&mut self, ssrc: Ssrc) {
        self.paced.withdraw(ssrc.0);
    }

    /// Holds the leg's paced sending until `until` ([`pacing::PacedQueue::hold`]).
    pub fn hold_paced(&mut self, until: Instant) {
        self.paced.hold(until);
    }

    /// The leg's wake-up for its pace came: what may go now goes.
    pub fn drain_paced(&mut self, out: &mut Outbox) {
        self.paced.unlist();
        if let Some(dest) = self.ice.remote() {
            self.paced.drain(out, self.leg, dest, self.send_history.as_mut());
        }
    }

    /// Sends probe `cluster` as padding-only RTX packets (RFC 4588, RFC 3550
    /// padding) on the RTX stream of the last video stream sent here, each
    /// numbered and recorded under the cluster's id; how many went (0: no
    /// transport-cc, no video with RTX sent yet, or not ready). They go at
    /// once, past the pace (after what already waits for it): the
    /// receiver's arrival spacing measures the bottleneck, as a packet train does.
    pub fn send_probe(&mut self, out: &mut Outbox, cluster: &ProbeCluster) -> u32 {
        let Some((media, codec, ts)) = self.probe_stream.filter(|_| self.send_history.is_some()) else { return 0 };
        let ssrc = rtx_ssrc(media);
        let packets = cluster.bytes.div_ceil(PROBE_PADDING).clamp(cluster.min_packets as usize, PROBE_MAX_PACKETS);
        let padding = (cluster.bytes / packets).clamp(1, PROBE_PADDING) as u8;
        let i = crate::srtp_pair::rtx_slot(&mut self.rtx_seqs, ssrc);
        let mut sent = 0;
        for _ in 0..packets {
            let seq = self.rtx_seqs[i].1;
            let write =
                |f: &LegFormat, twcc, arena: &mut BytesMut| f.write_padding(codec, ssrc, seq, ts, twcc, padding, arena);
            if self.seal_and_send(out, cluster.id, true, write) != Some(true) {
                break;
            }
            self.rtx_seqs[i].1 = seq.wrapping_add(1);
            sent += 1;
        }
        out.stats.probes_sent += u64::from(sent);
        sent
    }

    /// Whether this leg takes retransmissions of `src` (it negotiated RTX for its codec).
    pub fn takes_rtx(&self, src: Option<Source>) -> bool {
        src.is_some_and(|s| s.kind == corecast_proto::MediaKind::Video && self.format.has_rtx(s.codec))
    }

    /// Resends a packet from the retransmission buffer as RTX (RFC 4588):
    /// a packet index SRTP has sealed once must not be sealed again (RFC 3711
    /// §3.3.1), so the retransmission goes on the stream's RTX SSRC
    /// ([`rtx_ssrc`]) with that stream's next number. `packet` carries the
    /// sequence number the receiver saw.
    pub fn send_rtx(&mut self, out: &mut Outbox, packet: &[u8], h: &RtpHeader, src: Source) -> bool {
        let ssrc = rtx_ssrc(h.ssrc.0);
        let i = crate::srtp_pair::rtx_slot(&mut self.rtx_seqs, ssrc);
        let seq = self.rtx_seqs[i].1;
        let sent = self
            .seal_and_send(out, 0, true, |f, twcc, arena| f.rewrite_rtx(packet, h, src, ssrc, seq, twcc, arena))
            == Some(true);
        if sent {
            self.rtx_seqs[i].1 = seq.wrapping_add(1);
        }
        sent
    }

    /// Sends an RTCP compound (SRTCP). Anything else (native session
    /// messages) is not for this leg.
    pub fn send_rtcp(&mut self, out: &mut Outbox, contents: &[u8]) {
        if corecast_proto::demux::classify(contents) != corecast_proto::demux::Kind::Rtcp {
            return;
        }
        let (Some(dest), Some(srtp)) = (self.ice.remote(), self.srtp.as_mut()) else {
            out.stats.webrtc_not_ready += 1;
            return;
        };
        srtp.send_rtcp(out, dest, contents);
    }
}

//! WebRTC legs at the router level: opening one (from the control plane's
//! negotiated offer), ICE checks, DTLS records and SRTP packets in, and the
//! consent and handshake deadlines.
//!
//! Nothing is kept for a sender that has not proven itself: an ICE check
//! must name a leg's ufrag and carry its password's MESSAGE-INTEGRITY
//! before its address is admitted; DTLS and SRTP from any other address are
//! dropped as unadmitted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::demux::Kind;
use corecast_proto::ice::{BindingRequest, BindingResponse};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::Quality;
use corecast_proto::token::{CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::api::{Event, LeaveReason};
use crate::call::{Call, Owner};
use crate::forward::Origin;
use crate::participant::Participant;
use crate::pipe::PipeMessage;
use crate::quality::QualityState;
use crate::stats::DropReason;
use crate::transport::Transport;
use crate::webrtc::{Codec, DtlsIdentity, IceCredentials, RtxIn, WebRtcLeg, WebRtcTransport};
use crate::Router;

/// How often congestion feedback is considered (each leg sends when its
/// recorder says it is due: every 50 ms while packets arrive).
pub(crate) const FEEDBACK_TICK: std::time::Duration = std::time::Duration::from_millis(25);

/// What a WHEP leg asks for ([`Router::set_leg_preferences`]): each `None`
/// keeps the leg's, `Some(0)` lifts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegPreferences {
    /// The tallest video it wants (pixels).
    pub max_height: Option<u16>,
    /// Its frame-rate cap (frames per second).
    pub max_fps: Option<u8>,
    /// Only while the watched participant is among the call's N most active speakers.
    pub last_n: Option<u8>,
}

/// Why the router refused to open a WebRTC leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegRefusal {
    /// The router has no DTLS certificate (WebRTC is off).
    NoCertificate,
    /// The call ended.
    CallEnded,
    /// The call is full.
    CallFull,
    /// The worker holds as many calls as it may.
    Overloaded,
    /// The participant or one of its SSRCs is already in the call, or the
    /// ufrag is taken.
    Conflict(&'static str),
}

impl std::fmt::Display for LegRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LegRefusal::NoCertificate => f.write_str("WebRTC is not enabled on this router"),
            LegRefusal::CallEnded => f.write_str("call has ended"),
            LegRefusal::CallFull => f.write_str("call is full"),
            LegRefusal::Overloaded => f.write_str("router is at its call capacity"),
            LegRefusal::Conflict(what) => f.write_str(what),
        }
    }
}

impl Router {
    /// Gives the router its DTLS identity (WebRTC legs are refused without one).
    pub fn set_dtls_identity(&mut self, identity: Arc<DtlsIdentity>) {
        self.dtls = Some(identity);
    }

    /// The streams a participant of a call produces, on this worker or
    /// piped here from another worker's or router's share of the call, with
    /// their kinds (what a WHEP answer announces).
    pub fn streams_of(&self, call: CallId, participant: ParticipantId) -> Option<Vec<(Ssrc, MediaKind)>> {
        let c = self.calls.get(&call)?;
        let streams: Vec<_> =
            c.producers().filter(|s| s.participant == participant).map(|s| (s.ssrc, s.kind)).collect();
        (c.index_of(participant).is_some() || !streams.is_empty()).then_some(streams)
    }

    /// The video codec participant `participant` publishes, here or on
    /// another worker or router whose share of the call pipes it here: that
    /// of its first video packet, else the first video codec its format
    /// names (a pipe's producer announces its sender's format), else the one
    /// its WebRTC leg here negotiated to send (`None`: not known yet). A WHEP
    /// answer for it prefers that codec, so that the viewer takes what is
    /// sent (no transcoding here).
    pub fn video_codec_of(&self, call: CallId, participant: ParticipantId) -> Option<Codec> {
        let c = self.calls.get(&call)?;
        let video = || c.producers().filter(|s| s.participant == participant && s.kind == MediaKind::Video);
        let is_video = |c: &Codec| matches!(c, Codec::Av1 | Codec::Vp8 | Codec::H264);
        let sent = video().find_map(|s| s.codec.filter(is_video));
        let announced =
            || video().find_map(|s| s.format.as_ref().and_then(|f| f.codecs.iter().map(|c| c.1).find(is_video)));
        let negotiated = || {
            let p = &c.participants[c.index_of(participant)?];
            match &p.transport {
                Transport::WebRtc(w) => {
                    w.format.media.iter().find(|m| m.receives && m.kind == MediaKind::Video).map(|m| m.codec)
                }
                Transport::Udp(_) => None,
            }
        };
        sent.or_else(negotiated).or_else(announced)
    }

    /// The peer's ICE ufrag of the WebRTC leg the router knows as `local_ufrag`.
    pub fn webrtc_remote_ufrag(&self, local_ufrag: &str) -> Option<String> {
        let (call, pid) = self.by_ufrag.get(local_ufrag)?;
        let c = self.calls.get(call)?;
        match &c.participants[c.index_of(*pid)?].transport {
            Transport::WebRtc(w) => Some(w.ice.creds.remote_ufrag.clone()),
            Transport::Udp(_) => None,
        }
    }

    /// ICE restart of the leg named `session` (its first ufrag): the router's
    /// new ufrag and password and the peer's new ufrag. `false`: no such leg.
    pub fn restart_ice(&mut self, session: &str, creds: IceCredentials) -> bool {
        let Some(&(call, pid)) = self.by_ufrag.get(session) else { return false };
        if self.by_ufrag.contains_key(&creds.local_ufrag) {
            return false;
        }
        let Some(c) = self.calls.get_mut(&call) else { return false };
        let Some(i) = c.index_of(pid) else { return false };
        let Transport::WebRtc(w) = &mut c.participants[i].transport else { return false };
        if w.ice.creds.local_ufrag != w.session {
            self.by_ufrag.remove(&w.ice.creds.local_ufrag);
        }
        self.by_ufrag.insert(creds.local_ufrag.clone(), (call, pid));
        w.ice.restart(creds);
        true
    }

    /// Changes what the WHEP leg named `session` asks for, as its WHEP
    /// query did when it opened (`max_height`, `max_fps`, `last_n`): each
    /// preference given replaces the leg's (0 lifts it), one not given is
    /// kept. A requested size applies from the next allocation (every rate
    /// sweep, 0.5 s), a frame-rate cap from the next frame (a higher one
    /// from the next base-layer frame), Last-N from the next packet (video
    /// resumed with a keyframe request). `false`: no such leg.
    pub fn set_leg_preferences(&mut self, session: &str, prefs: LegPreferences) -> bool {
        let Some(&(call, pid)) = self.by_ufrag.get(session) else { return false };
        let Some(c) = self.calls.get_mut(&call) else { return false };
        let Some(i) = c.index_of(pid) else { return false };
        let p = &mut c.participants[i];
        if !matches!(p.transport, Transport::WebRtc(_)) {
            return false;
        }
        if let Some(h) = prefs.max_height {
            p.max_height = (h > 0).then_some(h);
        }
        if let Some(f) = prefs.max_fps {
            p.max_fps = (f > 0).then_some(f);
        }
        if let Some(n) = prefs.last_n {
            p.last_n = (n > 0).then_some(n);
        }
        true
    }

    /// Opens a WebRTC leg: the participant is in the call from now on (it
    /// receives once ICE and DTLS complete) and is dropped if no ICE check
    /// reaches it by `leg.pending_until`.
    pub fn open_webrtc(&mut self, now: Instant, leg: WebRtcLeg) -> Result<(), LegRefusal> {
        self.out.set_now(now);
        let identity = self.dtls.clone().ok_or(LegRefusal::NoCertificate)?;
        self.start_timers(now);
        if self.ended.contains_key(&leg.call) {
            return Err(LegRefusal::CallEnded);
        }
        if self.by_ufrag.contains_key(&leg.ice.local_ufrag) {
            return Err(LegRefusal::Conflict("ICE ufrag already in use"));
        }
        let hub = self.config.placement.owns(&leg.call);
        if !self.calls.contains_key(&leg.call) && self.calls.len() >= self.config.max_calls {
            return Err(LegRefusal::Overloaded);
        }
        let declared: Vec<(Ssrc, MediaKind)> = leg
            .media
            .iter()
            .filter(|m| m.receives)
            .flat_map(|m| m.remote_ssrcs.iter().map(move |s| (*s, m.kind)))
            .collect();
        if let Some(c) = self.calls.get(&leg.call) {
            if c.index_of(leg.participant).is_some() {
                return Err(LegRefusal::Conflict("participant already in the call"));
            }
            let watch_leg = leg.role == Role::Subscriber && leg.subscribe.is_some();
            if !watch_leg && c.members() >= self.config.max_participants_per_call {
                return Err(LegRefusal::CallFull);
            }
            if declared.iter().any(|(s, _)| c.ssrc_owner.contains_key(s)) {
                return Err(LegRefusal::Conflict("SSRC already in use in this call"));
            }
        }
        let transport = WebRtcTransport::new(&leg, &identity, now);
        let format = transport.format.sender_format();
        let created = !self.calls.contains_key(&leg.call);
        let call = self.calls.entry(leg.call).or_insert_with(|| Call::new(leg.call, hub));
        let mut p = Participant::new(
            leg.participant,
            leg.role,
            Transport::WebRtc(Box::new(transport)),
            now,
            QualityState::fixed(leg.quality),
            format,
        );
        p.subscribe = leg.subscribe;
        p.max_fps = leg.max_fps.filter(|_| leg.role == Role::Subscriber);
        p.max_height = leg.max_height.filter(|_| leg.role == Role::Subscriber);
        p.last_n = leg.last_n.filter(|n| *n > 0 && leg.role == Role::Subscriber);
        p.learn_ssrcs = declared.is_empty() && leg.role != Role::Subscriber;
        if leg.role != Role::Subscriber {
            for (s, kind) in &declared {
                p.add_producer(*s, *kind);
                call.ssrc_owner.insert(*s, Owner::Participant(leg.participant));
            }
        }
        // Its streams are announced to the call's shares on other workers
        // (a call spread over several), as a native join's are.
        for prod in &p.producers {
            call.broadcast_pipes(&mut self.out, None, &PipeMessage::producer(prod));
        }
        call.participants.push(p);
        call.mark_joined();
        self.by_ufrag.insert(leg.ice.local_ufrag.clone(), (leg.call, leg.participant));
        self.out.stats.joins += 1;
        if created {
            self.out.event(Event::CallStarted(leg.call));
        }
        self.out.event(Event::ParticipantJoined {
            call: leg.call,
            participant: leg.participant,
            role: leg.role,
            source: crate::transport::NOWHERE,
        });
        if leg.role != Role::Subscriber {
            for (s, _) in &declared {
                self.out.event(Event::ProducerAdded { call: leg.call, participant: leg.participant, ssrc: *s });
            }
        }
        if leg.quality != Quality::Hd {
            self.out.event(Event::QualityChanged {
                call: leg.call,
                participant: leg.participant,
                quality: leg.quality,
            });
            self.update_mixer_demand(leg.call);
        }
        Ok(())
    }

    /// A STUN Binding request with a USERNAME: an ICE connectivity check.
    pub(crate) fn handle_ice_check(&mut self, now: Instant, source: SocketAddr, req: BindingRequest<'_>) {
        let Some(&(call, pid)) = self.by_ufrag.get(req.username.local) else {
            return self.out.drop_packet(DropReason::IceRefused);
        };
        let taken = self.by_addr.contains_key(&source)
            || self.webrtc_addrs.get(&source).is_some_and(|&(c, p)| (c, p) != (call, pid));
        let Some(c) = self.calls.get_mut(&call) else { return self.out.drop_packet(DropReason::IceRefused) };
        let Some(i) = c.index_of(pid) else { return self.out.drop_packet(DropReason::IceRefused) };
        let part = &mut c.participants[i];
        let Transport::WebRtc(w) = &mut part.transport else {
            return self.out.drop_packet(DropReason::IceRefused);
        };
        if taken
            || req.username.remote != w.ice.creds.remote_ufrag
            || req.verify(w.ice.creds.local_pwd.as_bytes()).is_err()
        {
            return self.out.drop_packet(DropReason::IceRefused);
        }
        let checked = w.ice.on_valid_check(now, source, req.use_candidate);
        part.last_seen = now;
        let mut b = Vec::with_capacity(96);
        BindingResponse::new(req.txid).success(&mut b, source, w.ice.creds.local_pwd.as_bytes());
        self.out.stats.ice_checks += 1;
        self.out.transmit(source, Bytes::from(b));
        if checked.new_address {
            self.webrtc_addrs.insert(source, (call, pid));
        }
        if let Some(f) = checked.forgotten {
            self.webrtc_addrs.remove(&f);
        }
    }

    /// A datagram from a valid address of a WebRTC leg: DTLS, SRTP or SRTCP.
    pub(crate) fn handle_webrtc(
        &mut self,
        now: Instant,
        source: SocketAddr,
        (call, pid): (CallId, ParticipantId),
        kind: Kind,
        contents: Bytes,
    ) {
        let Some(c) = self.calls.get_mut(&call) else { return self.out.drop_packet(DropReason::Unadmitted) };
        let Some(i) = c.index_of(pid) else { return self.out.drop_packet(DropReason::Unadmitted) };
        let part = &mut c.participants[i];
        let Transport::WebRtc(w) = &mut part.transport else {
            return self.out.drop_packet(DropReason::Unadmitted);
        };
        match kind {
            Kind::Dtls => {
                let was = w.ready();
                match w.on_dtls(now, source, &contents, &mut self.out) {
                    Ok(()) if !was && w.ready() => {
                        part.last_seen = now;
                        self.out.stats.dtls_connected += 1;
                        self.request_keyframes_for(now, call, pid);
                    }
                    Ok(()) => part.last_seen = now,
                    Err(_) => {
                        self.out.stats.dtls_failed += 1;
                        self.remove_participant(call, pid, LeaveReason::Left, false);
                    }
                }
            }
            Kind::Rtp | Kind::Rtcp => match w.unprotect(&contents, kind == Kind::Rtcp, &mut self.out) {
                Ok(plain) => {
                    part.last_seen = now;
                    if kind == Kind::Rtp {
                        if w.sends_feedback() && self.next_feedback.is_none() {
                            self.next_feedback = Some(now + FEEDBACK_TICK);
                        }
                        // A simulcast publisher's new layer (or its RTX stream) is learned first.
                        if w.format.media.iter().any(|m| m.receives && !m.rids.is_empty()) {
                            self.learn_rid_layer(call, pid, &plain);
                        }
                        let leg = self.calls.get_mut(&call).and_then(|c| {
                            let i = c.index_of(pid)?;
                            match &mut c.participants[i].transport {
                                Transport::WebRtc(w) => Some(w),
                                _ => None,
                            }
                        });
                        let Some(w) = leg else { return };
                        // A repair on the publisher's RTX stream goes on as the packet it repairs.
                        let plain = match RtpHeader::parse(&plain) {
                            Ok(h) => match w.format.unwrap_rtx(&plain, &h) {
                                RtxIn::Repair(v) => {
                                    self.out.stats.rtx_received += 1;
                                    Bytes::from(v)
                                }
                                RtxIn::Probe => {
                                    self.out.stats.rtx_received += 1;
                                    // Its transport-wide number still counts for the feedback.
                                    w.on_rtp_arrival(now, &h, &plain);
                                    return;
                                }
                                RtxIn::NotRtx => plain,
                            },
                            // Not RTP: `forward_rtp` drops and counts it.
                            Err(_) => plain,
                        };
                        self.forward_rtp(now, call, Origin::Participant(pid), plain);
                    } else {
                        self.route_rtcp(now, call, Origin::Participant(pid), &plain);
                    }
                }
                Err(reason) => self.out.drop_packet(reason),
            },
            _ => self.out.drop_packet(DropReason::Malformed),
        }
    }

    /// A receiver just became able to decode: ask the video producers it
    /// receives for a keyframe.
    fn request_keyframes_for(&mut self, now: Instant, call: CallId, pid: ParticipantId) {
        let Some(c) = self.calls.get(&call) else { return };
        let Some(i) = c.index_of(pid) else { return };
        let only = c.participants[i].subscribe;
        let ssrcs: Vec<Ssrc> = c
            .participants
            .iter()
            .filter(|p| p.id != pid && only.is_none_or(|o| o == p.id))
            .flat_map(|p| p.producers.iter())
            .chain(c.pipes.iter().flat_map(|p| p.producers.iter()).filter(|s| only.is_none_or(|o| o == s.participant)))
            .filter(|s| s.kind == MediaKind::Video)
            .map(|s| s.ssrc)
            .collect();
        for s in ssrcs {
            self.request_keyframe(now, call, s);
        }
    }

    /// Sends every WebRTC leg's due congestion feedback; keeps ticking
    /// while any leg records arrivals.
    pub(crate) fn send_feedback(&mut self, now: Instant) {
        let mut any = false;
        for c in self.calls.values_mut() {
            for p in &mut c.participants {
                if let Transport::WebRtc(w) = &mut p.transport {
                    if w.sends_feedback() {
                        any = true;
                        w.send_feedback(now, &mut self.out);
                    }
                }
            }
        }
        self.next_feedback = any.then_some(now + FEEDBACK_TICK);
    }

    /// Closes WebRTC legs whose consent expired (or that never got a
    /// check), or whose DTLS handshake failed or timed out; drives DTLS
    /// retransmissions.
    pub(crate) fn sweep_webrtc(&mut self, now: Instant) {
        let consent = self.config.consent_timeout;
        let mut closed = Vec::new();
        for (cid, c) in &mut self.calls {
            for p in &mut c.participants {
                let Transport::WebRtc(w) = &mut p.transport else { continue };
                if w.ice.expired(now, consent, w.pending_until) {
                    closed.push((*cid, p.id, LeaveReason::Timeout));
                } else if w.on_timeout(now, &mut self.out).is_err() {
                    self.out.stats.dtls_failed += 1;
                    closed.push((*cid, p.id, LeaveReason::Left));
                }
            }
        }
        for (cid, pid, reason) in closed {
            if reason == LeaveReason::Timeout {
                self.out.stats.timeouts += 1;
            }
            self.remove_participant(cid, pid, reason, false);
        }
    }
}

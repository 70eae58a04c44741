//! Who is in a call: joins (token check, placement, spreading, caps),
//! session messages, leaves, control-plane commands and silence timeouts.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::join_key::JoinKey;
use corecast_proto::session::{self, JoinErrorCode, Quality, SessionMessage};
use corecast_proto::token::{self, CallId, ParticipantId, Role};
use corecast_proto::{MediaKind, Ssrc};

use crate::api::{Command, Event, LeaveReason};
use crate::call::{Call, Owner};
use crate::participant::Participant;
use crate::pipe::{PipeMessage, PipePeer, Seat};
use crate::quality::QualityState;
use crate::stats::DropReason;
use crate::transport::Transport;
use crate::webrtc::SenderFormat;
use crate::Router;

/// A join's claims and declarations, once its token verified.
pub(crate) struct Join {
    pub(crate) txid: [u8; 12],
    pub(crate) source: SocketAddr,
    pub(crate) call: CallId,
    pub(crate) participant: ParticipantId,
    role: Role,
    ssrcs: Vec<(Ssrc, MediaKind)>,
    quality: Quality,
    /// The token's join key (the join is signed with it).
    pub(crate) key: JoinKey,
    token_expires_ms: u64,
    /// Media over SRTP keyed from `key`.
    srtp: bool,
}

/// What a Join message asks for besides its token.
struct JoinRequest {
    txid: [u8; 12],
    ssrcs: Vec<(Ssrc, MediaKind)>,
    quality: Quality,
    srtp: bool,
}

impl Router {
    pub(crate) fn handle_session(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let msg = match SessionMessage::parse(contents) {
            Ok(m) => m,
            Err(_) => return self.out.drop_packet(DropReason::Malformed),
        };
        self.out.stats.session_messages += 1;
        match msg {
            SessionMessage::Join { txid, token, ssrcs, quality, srtp } => {
                self.handle_join(now, source, JoinRequest { txid, ssrcs, quality, srtp }, &token, contents)
            }
            SessionMessage::CheckReply { txid } => self.handle_check_reply(now, source, txid, contents),
            SessionMessage::Keepalive { .. }
            | SessionMessage::Leave { .. }
            | SessionMessage::Quality { .. }
            | SessionMessage::LastN { .. }
            | SessionMessage::MaxHeight { .. }
            | SessionMessage::Simulcast { .. } => {
                // Signed with the sender's join key, or it is not the participant.
                let Some(&(call, pid)) = self.by_addr.get(&source) else {
                    return self.out.drop_packet(DropReason::Unadmitted);
                };
                if !self.signed_by(call, pid, contents) {
                    return self.out.drop_packet(DropReason::BadIntegrity);
                }
                self.handle_signed(now, source, call, pid, msg)
            }
            // Messages only a router sends.
            SessionMessage::JoinAck { .. }
            | SessionMessage::JoinError { .. }
            | SessionMessage::CallEnded { .. }
            | SessionMessage::Check { .. } => self.out.drop_packet(DropReason::Malformed),
        }
    }

    /// An admitted native participant's signed message.
    fn handle_signed(
        &mut self,
        now: Instant,
        source: SocketAddr,
        call: CallId,
        pid: ParticipantId,
        msg: SessionMessage,
    ) {
        match msg {
            SessionMessage::Leave { .. } => self.remove_participant(call, pid, LeaveReason::Left, false),
            SessionMessage::Quality { quality, .. } => self.set_quality(now, call, pid, quality, true),
            SessionMessage::LastN { n, .. } => {
                if let Some(p) = self.participant_mut(source) {
                    p.last_seen = now;
                    p.last_n = (n > 0).then_some(n);
                }
            }
            SessionMessage::MaxHeight { height, .. } => {
                // Applied by the next allocation (each rate sweep), as a WHEP leg's.
                if let Some(p) = self.participant_mut(source) {
                    p.last_seen = now;
                    p.max_height = (height > 0).then_some(height);
                }
            }
            SessionMessage::Simulcast { layers, .. } => self.declare_simulcast(now, call, pid, &layers),
            _ => {
                if let Some(p) = self.participant_mut(source) {
                    p.last_seen = now;
                }
            }
        }
    }

    fn participant_mut(&mut self, source: SocketAddr) -> Option<&mut Participant> {
        let (call, pid) = *self.by_addr.get(&source)?;
        let c = self.calls.get_mut(&call)?;
        let i = c.index_of(pid)?;
        Some(&mut c.participants[i])
    }

    pub(crate) fn join_error(&mut self, source: SocketAddr, txid: [u8; 12], code: JoinErrorCode, reason: &str) {
        self.out.stats.joins_refused += 1;
        let m = SessionMessage::JoinError { txid, code, reason: reason.to_string(), alternate: None };
        self.out.transmit(source, Bytes::from(m.to_vec()));
    }

    fn redirect(&mut self, source: SocketAddr, txid: [u8; 12], worker: usize, reason: &str) {
        self.out.stats.joins_redirected += 1;
        let m = SessionMessage::JoinError {
            txid,
            code: JoinErrorCode::TryAlternate,
            reason: reason.into(),
            alternate: Some(self.config.placement.addresses[worker]),
        };
        self.out.transmit(source, Bytes::from(m.to_vec()));
    }

    pub(crate) fn join_ack(&mut self, source: SocketAddr, txid: [u8; 12], pid: ParticipantId) {
        let m = SessionMessage::JoinAck {
            txid,
            mapped: source,
            participant: pid.0,
            timeout_ms: self.config.silence_timeout.as_millis().min(u32::MAX as u128) as u32,
        };
        self.out.transmit(source, Bytes::from(m.to_vec()));
    }

    fn handle_join(&mut self, now: Instant, source: SocketAddr, req: JoinRequest, token_bytes: &[u8], contents: &[u8]) {
        let JoinRequest { txid, ssrcs, quality, srtp } = req;
        let claims = match token::verify(&self.key, token_bytes, self.unix_ms(now)) {
            Ok(c) => c,
            Err(e) => {
                self.out.drop_packet(DropReason::BadToken);
                return self.join_error(source, txid, JoinErrorCode::Unauthorized, &e.to_string());
            }
        };
        let Some(secret) = &self.config.join_secret else {
            self.out.drop_packet(DropReason::BadIntegrity);
            return self.join_error(source, txid, JoinErrorCode::Unauthorized, "router has no join secret");
        };
        let key = secret.key_for(token_bytes);
        if session::verify(contents, key.as_bytes()).is_err() {
            self.out.drop_packet(DropReason::BadIntegrity);
            let why = "join not signed with the token's join key (from the calls service's join reply)";
            return self.join_error(source, txid, JoinErrorCode::Unauthorized, why);
        }
        if self.revoked.contains_key(&(claims.call_id, claims.participant_id)) {
            self.out.drop_packet(DropReason::BadToken);
            return self.join_error(source, txid, JoinErrorCode::Unauthorized, "token revoked: the participant left");
        }
        let j = Join {
            txid,
            source,
            call: claims.call_id,
            participant: claims.participant_id,
            role: claims.role,
            ssrcs,
            quality,
            key,
            token_expires_ms: claims.expires_at_ms,
            srtp,
        };
        let placement = &self.config.placement;
        let hub = placement.owns(&j.call);
        let granted = self
            .calls
            .get(&j.call)
            .is_some_and(|c| c.granted.iter().any(|g| g.0 == j.participant) || c.index_of(j.participant).is_some());
        if !hub && !granted {
            // Only the owner admits into a call; it spreads joins itself.
            let owner = placement.owner(&j.call);
            return self.redirect(source, txid, owner, "call is placed on another worker");
        }
        if self.ended.contains_key(&j.call) {
            return self.join_error(source, txid, JoinErrorCode::Forbidden, "call has ended");
        }
        // A retransmitted join from an admitted address: answer again.
        if let Some(&(c, p)) = self.by_addr.get(&source) {
            if c == j.call && p == j.participant {
                if let Some(part) = self.participant_mut(source) {
                    part.last_seen = now;
                }
                return self.join_ack(source, txid, p);
            }
            // The address now speaks for someone else: the old one is gone.
            self.remove_participant(c, p, LeaveReason::Left, false);
        }
        if !self.calls.contains_key(&j.call) && self.calls.len() >= self.config.max_calls {
            return self.join_error(source, txid, JoinErrorCode::Overloaded, "router is at its call capacity");
        }
        let created = !self.calls.contains_key(&j.call);
        let call = self.calls.entry(j.call).or_insert_with(|| Call::new(j.call, hub));
        // The same participant from a new address (NAT rebinding, reconnect,
        // or a replayed join): moved only once a check from there passes.
        if call.index_of(j.participant).is_some() {
            return self.check_new_address(now, &j);
        }
        if let Some(reason) = self.refusal(&j) {
            if created {
                self.calls.remove(&j.call);
            }
            let (code, text) = reason;
            return self.join_error(source, txid, code, text);
        }
        if hub && self.spread(now, &j) {
            return;
        }
        self.admit(now, j);
    }

    /// Why a join cannot be admitted, if it cannot.
    fn refusal(&self, j: &Join) -> Option<(JoinErrorCode, &'static str)> {
        let call = self.calls.get(&j.call)?;
        let cap = self.config.max_participants_per_call;
        let hub = self.config.placement.owns(&j.call);
        // The hub counts every seat on every worker; another worker admits
        // only joins the hub granted a seat to.
        let seated_elsewhere = call.pipes.iter().any(|p| p.seats.iter().any(|s| s.participant == j.participant));
        if hub && !seated_elsewhere && call.members() >= cap {
            return Some((JoinErrorCode::CallFull, "call is full"));
        }
        if !j.srtp && !self.config.plain_native_media {
            return Some((JoinErrorCode::Forbidden, "this router takes native media over SRTP only"));
        }
        if j.role == Role::Subscriber && !j.ssrcs.is_empty() {
            return Some((JoinErrorCode::Forbidden, "a subscriber cannot send media"));
        }
        let mut unique: Vec<Ssrc> = j.ssrcs.iter().map(|(s, _)| *s).collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != j.ssrcs.len() || j.ssrcs.iter().any(|(s, _)| call.ssrc_owner.contains_key(s)) {
            return Some((JoinErrorCode::Forbidden, "SSRC already in use in this call"));
        }
        None
    }

    /// On the hub: when its share of the call is full, reserves a seat on
    /// another worker (opening a pipe to it first) and redirects the join
    /// there. A participant already seated on another worker goes back there.
    fn spread(&mut self, now: Instant, j: &Join) -> bool {
        let workers = self.config.placement.workers();
        let index = self.config.placement.index;
        let Some(call) = self.calls.get_mut(&j.call) else { return false };
        let seated = call.pipes.iter().find(|p| p.seats.iter().any(|s| s.participant == j.participant));
        let target = match seated.map(|p| p.peer) {
            Some(PipePeer::Worker(w)) => w,
            Some(PipePeer::Router(_)) => return false,
            None if workers > 1 && call.participants.len() >= self.config.max_receivers_per_worker => {
                let others: Vec<usize> = (0..workers).filter(|&w| w != index).collect();
                let t = others[call.next_spread % others.len()];
                call.next_spread += 1;
                t
            }
            None => return false,
        };
        self.open_pipe(j.call, PipePeer::Worker(target), None, None);
        let Some(call) = self.calls.get_mut(&j.call) else { return false };
        let Some(pi) = call.pipe_index(PipePeer::Worker(target)) else { return false };
        let pipe = &mut call.pipes[pi];
        match pipe.seats.iter_mut().find(|s| s.participant == j.participant) {
            Some(s) if s.granted_at.is_some() => s.granted_at = Some(now),
            Some(_) => {}
            None => pipe.seats.push(Seat { participant: j.participant, granted_at: Some(now) }),
        }
        pipe.send(&mut self.out, j.call, PipeMessage::Grant(j.participant));
        self.redirect(j.source, j.txid, target, "call is spread over several workers");
        true
    }

    fn admit(&mut self, now: Instant, j: Join) {
        let hub = self.config.placement.owns(&j.call);
        let Some(call) = self.calls.get_mut(&j.call) else { return };
        let is_new_call = call.participants.is_empty();
        let mut p = Participant::new(
            j.participant,
            j.role,
            Transport::udp(j.source, j.key.clone(), j.token_expires_ms, j.srtp),
            now,
            QualityState::joined(j.quality),
            SenderFormat { audio_level: self.config.audio_level_ext_id, ..self.config.native_format.clone() },
        );
        p.learn_ssrcs = j.ssrcs.is_empty() && j.role != Role::Subscriber;
        for (s, kind) in &j.ssrcs {
            p.add_producer(*s, *kind);
            call.ssrc_owner.insert(*s, Owner::Participant(j.participant));
        }
        call.granted.retain(|g| g.0 != j.participant);
        if !hub {
            call.broadcast_pipes(&mut self.out, None, &PipeMessage::Joined(j.participant));
        }
        for prod in &p.producers {
            call.broadcast_pipes(&mut self.out, None, &PipeMessage::producer(prod));
        }
        call.participants.push(p);
        call.mark_joined();
        if j.role == Role::Mixer {
            call.speakers_sent.clear(); // a new mixer is told who speaks at the next ranking
        }
        self.by_addr.insert(j.source, (j.call, j.participant));
        if j.srtp {
            self.srtp_addrs.insert(j.source);
        }
        self.out.stats.joins += 1;
        if is_new_call {
            self.out.event(Event::CallStarted(j.call));
        }
        self.out.event(Event::ParticipantJoined {
            call: j.call,
            participant: j.participant,
            role: j.role,
            source: j.source,
        });
        for (s, _) in &j.ssrcs {
            self.out.event(Event::ProducerAdded { call: j.call, participant: j.participant, ssrc: *s });
        }
        if j.quality != Quality::Hd {
            self.out.event(Event::QualityChanged { call: j.call, participant: j.participant, quality: j.quality });
            self.update_mixer_demand(j.call);
        }
        self.join_ack(j.source, j.txid, j.participant);
    }

    /// Removes a participant; `notify` sends it a call-ended message.
    pub(crate) fn remove_participant(
        &mut self,
        call_id: CallId,
        pid: ParticipantId,
        reason: LeaveReason,
        notify: bool,
    ) {
        let hub = self.config.placement.owns(&call_id);
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let mut p = call.participants.swap_remove(i);
        for prod in &p.producers {
            call.ssrc_owner.remove(&prod.ssrc);
        }
        call.broadcast_pipes(&mut self.out, None, &PipeMessage::Left(pid));
        match &p.transport {
            Transport::Udp(u) => {
                self.by_addr.remove(&u.remote);
                self.srtp_addrs.remove(&u.remote);
                if let Some(m) = &u.moving {
                    self.checking.remove(&m.to);
                }
                // A participant that left or was removed cannot come back with its token.
                if matches!(reason, LeaveReason::Left | LeaveReason::Removed) {
                    self.revoked.insert((call_id, pid), u.token_expires_ms);
                }
            }
            Transport::WebRtc(w) => {
                for a in w.ice.valid_addresses() {
                    self.webrtc_addrs.remove(&a);
                }
                self.by_ufrag.remove(&w.ice.creds.local_ufrag);
                self.by_ufrag.remove(&w.session);
            }
        }
        if notify {
            let m = SessionMessage::CallEnded { txid: [0; 12] };
            let bytes = match &p.transport {
                Transport::Udp(u) => m.to_signed_vec(&u.key),
                Transport::WebRtc(_) => m.to_vec(),
            };
            p.transport.send(&mut self.out, Bytes::from(bytes));
        }
        self.out.stats.leaves += 1;
        self.out.event(Event::ParticipantLeft { call: call_id, participant: pid, reason });
        // The hub keeps the call while any pipe remains; another worker's
        // share closes with its last participant.
        if self.close_idle_uplink(call_id, self.out.now()) {
            return;
        }
        let call = &self.calls[&call_id];
        if call.participants.is_empty() && (!hub || call.pipes.is_empty()) {
            if hub {
                self.calls.remove(&call_id);
                self.out.event(Event::CallClosed(call_id));
            } else {
                self.close_share(call_id);
            }
        } else {
            self.update_mixer_demand(call_id);
        }
    }

    pub(crate) fn handle_command(&mut self, now: Instant, c: Command) {
        match c {
            Command::EndCall(call_id) => {
                self.ended.insert(call_id, now + self.config.ended_call_memory);
                // Other routers' shares are told (a leaf's share ends with its home's).
                self.close_links(call_id);
                let pids: Vec<ParticipantId> = match self.calls.get(&call_id) {
                    Some(call) => call.participants.iter().map(|p| p.id).collect(),
                    None => return,
                };
                for pid in pids {
                    self.remove_participant(call_id, pid, LeaveReason::CallEnded, true);
                }
                // Every worker gets the command: pipes close on both ends.
                if self.calls.remove(&call_id).is_some() {
                    self.out.event(Event::CallClosed(call_id));
                }
            }
            Command::ReopenCall(call_id) => {
                self.ended.remove(&call_id);
            }
            Command::RemoveParticipant(call_id, pid) => {
                self.remove_on_leaves(call_id, pid);
                self.remove_participant(call_id, pid, LeaveReason::Removed, true);
            }
            Command::OpenPipe { call, peer, uplink, key } => self.open_cascade(now, call, peer, uplink, &key),
            Command::ClosePipe { call, peer } => self.close_cascade(call, peer),
        }
    }

    /// Removes native participants silent for longer than the silence timeout.
    pub(crate) fn sweep_silent(&mut self, now: Instant) {
        let timeout = self.config.silence_timeout;
        let mut silent = Vec::new();
        for (cid, call) in &self.calls {
            // WebRTC legs live as long as their peer's consent (`legs`).
            for p in call.participants.iter().filter(|p| matches!(p.transport, Transport::Udp(_))) {
                if now.saturating_duration_since(p.last_seen) >= timeout {
                    silent.push((*cid, p.id));
                }
            }
        }
        for (cid, pid) in silent {
            self.out.stats.timeouts += 1;
            self.remove_participant(cid, pid, LeaveReason::Timeout, false);
        }
    }
}

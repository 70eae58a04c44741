//! corecast's sans-IO routing core.
//!
//! [`Router`] owns the calls of one worker (one core): their participants,
//! the SSRCs each participant produces, and who consumes what. It reads no
//! clock and touches no socket: the driver passes time and datagrams in with
//! [`Router::handle_input`] and then calls [`Router::poll_output`] until it
//! returns [`Output::Timeout`], sending every [`Output::Transmit`] and acting
//! on every [`Output::Event`].
//!
//! ```text
//!   driver                                   Router
//!   ──────                                   ──────
//!   handle_input(now, Input::Receive{..}) ─►  parse once, admit / drop / fan out
//!   poll_output() ◄────────────────────────  Transmit{destination, contents}
//!   poll_output() ◄────────────────────────  Event::ParticipantJoined{..}
//!   poll_output() ◄────────────────────────  Timeout(next deadline)
//!   handle_input(deadline, Input::Timeout) ─► silence timeouts, housekeeping
//! ```
//!
//! Forwarded RTP is the received [`Bytes`] itself (a reference-counted view of
//! the receive buffer), so fan-out to N receivers copies nothing.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod call;
pub mod hash;
mod rtcp_route;
mod stats;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{JoinErrorCode, Quality, SessionMessage};
use corecast_proto::token::{self, CallId, ParticipantId, Role, VerifyingKey};
use corecast_proto::Ssrc;

pub use call::{CallSnapshot, ParticipantSnapshot};
pub use stats::{DropReason, RouterStats};

use call::{Call, Participant};
use hash::FxHashMap;

/// Tunables of one router worker.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// A participant silent (no RTP, RTCP or keepalive) for this long is removed.
    pub silence_timeout: Duration,
    /// How often silence and housekeeping are checked.
    pub sweep_interval: Duration,
    /// Most participants one call may have (join beyond it: 486 call full).
    pub max_participants_per_call: usize,
    /// Most calls this worker holds (join of a new call beyond it: 508).
    pub max_calls: usize,
    /// Most SSRCs a participant may claim by sending when it declared none.
    pub max_learned_ssrcs: usize,
    /// Minimum interval between keyframe requests (PLI/FIR) forwarded to one producer.
    pub keyframe_request_interval: Duration,
    /// How long an ended call's id is remembered, so that tokens issued for
    /// it cannot bring it back (should exceed the token lifetime).
    pub ended_call_memory: Duration,
    /// Placement of calls over workers: this worker's index and every worker's
    /// address. A join for a call placed on another worker gets a 300 redirect.
    /// Empty: this worker takes every call.
    pub placement: Placement,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            silence_timeout: Duration::from_secs(15),
            sweep_interval: Duration::from_millis(500),
            max_participants_per_call: 100,
            max_calls: 100_000,
            max_learned_ssrcs: 8,
            keyframe_request_interval: Duration::from_millis(300),
            ended_call_memory: Duration::from_secs(600),
            placement: Placement::default(),
        }
    }
}

/// Which worker owns which call.
///
/// A call goes to worker `hash(call id) % workers`: every worker computes the
/// same answer with no shared state, so the calls service, the client and
/// every worker agree without talking to each other.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// This worker's index in `addresses`.
    pub index: usize,
    /// The public address of every worker, in index order.
    pub addresses: Vec<SocketAddr>,
}

impl Placement {
    /// The worker index a call is placed on, among `workers`.
    pub fn worker_for(call: &CallId, workers: usize) -> usize {
        if workers <= 1 {
            return 0;
        }
        // FNV-1a over the id: stable across processes and versions.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in call.0 {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % workers as u64) as usize
    }
}

/// An input to the router.
#[derive(Debug, Clone)]
pub enum Input {
    /// A datagram arrived.
    Receive {
        /// Its source address.
        source: SocketAddr,
        /// Its bytes.
        contents: Bytes,
    },
    /// The deadline of the last [`Output::Timeout`] passed.
    Timeout,
    /// A command from the control plane.
    Command(Command),
}

/// Control-plane commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The call ended: drop every participant now and refuse its tokens.
    EndCall(CallId),
    /// Remove one participant.
    RemoveParticipant(CallId, ParticipantId),
}

/// An output of the router.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `contents` to `destination`.
    Transmit(Transmit),
    /// Something the control plane should know.
    Event(Event),
    /// Nothing more to do until this instant (then pass [`Input::Timeout`]).
    Timeout(Instant),
}

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// What (for forwarded RTP, the received buffer itself).
    pub contents: Bytes,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It sent a leave message.
    Left,
    /// It was silent longer than the silence timeout.
    Timeout,
    /// The control plane removed it.
    Removed,
    /// The call ended.
    CallEnded,
}

/// Events for the control plane and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first participant of a call joined this worker.
    CallStarted(CallId),
    /// The last participant left, or the call was ended.
    CallClosed(CallId),
    /// A participant was admitted.
    ParticipantJoined {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// Its role.
        role: Role,
        /// The address it was admitted from.
        source: SocketAddr,
    },
    /// A participant is gone.
    ParticipantLeft {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A participant started sending a new SSRC.
    ProducerAdded {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// The SSRC.
        ssrc: Ssrc,
    },
    /// A receiver switched between HD and SD.
    QualityChanged {
        /// Call.
        call: CallId,
        /// Participant.
        participant: ParticipantId,
        /// New quality.
        quality: Quality,
    },
}

/// The routing state machine of one worker.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    key: VerifyingKey,
    epoch: Instant,
    epoch_unix_ms: u64,
    calls: FxHashMap<CallId, Call>,
    by_addr: FxHashMap<SocketAddr, (CallId, ParticipantId)>,
    ended: FxHashMap<CallId, Instant>,
    out: VecDeque<Output>,
    next_sweep: Option<Instant>,
    stats: RouterStats,
}

impl Router {
    /// A router that verifies join tokens with `key`.
    ///
    /// `epoch` and `epoch_unix_ms` anchor monotonic time to wall-clock time
    /// (token expiry is wall-clock): the driver reads both clocks once at
    /// start-up and passes them here.
    pub fn new(config: RouterConfig, key: VerifyingKey, epoch: Instant, epoch_unix_ms: u64) -> Router {
        Router {
            config,
            key,
            epoch,
            epoch_unix_ms,
            calls: FxHashMap::default(),
            by_addr: FxHashMap::default(),
            ended: FxHashMap::default(),
            out: VecDeque::with_capacity(1024),
            next_sweep: None,
            stats: RouterStats::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Number of live calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Number of admitted participants over all calls.
    pub fn participant_count(&self) -> usize {
        self.by_addr.len()
    }

    /// A snapshot of every call (for the admin API and re-sync).
    pub fn snapshot(&self) -> Vec<CallSnapshot> {
        let mut v: Vec<_> = self.calls.values().map(Call::snapshot).collect();
        v.sort_by_key(|c| c.call);
        v
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        self.epoch_unix_ms + now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Feeds one input. Then drain [`poll_output`](Self::poll_output).
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.config.sweep_interval);
        }
        match input {
            Input::Receive { source, contents } => self.handle_receive(now, source, contents),
            Input::Timeout => self.handle_timeout(now),
            Input::Command(c) => self.handle_command(now, c),
        }
    }

    /// The next output: transmits and events first, then the next deadline.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        Output::Timeout(self.next_sweep.unwrap_or(self.epoch + self.config.sweep_interval))
    }

    fn drop_packet(&mut self, reason: DropReason) {
        self.stats.count_drop(reason);
    }

    fn transmit(&mut self, destination: SocketAddr, contents: Bytes) {
        self.stats.tx_datagrams += 1;
        self.out.push_back(Output::Transmit(Transmit { destination, contents }));
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: Bytes) {
        self.stats.rx_datagrams += 1;
        self.stats.rx_bytes += contents.len() as u64;
        match classify(&contents) {
            Kind::Rtp => self.handle_rtp(now, source, contents),
            Kind::Rtcp => self.handle_rtcp(now, source, &contents),
            Kind::Stun => self.handle_session(now, source, &contents),
            Kind::Dtls | Kind::Unknown => self.drop_packet(DropReason::Malformed),
        }
    }

    /// The hot path: one lookup for the sender, one for the SSRC, then a loop
    /// over the call's other participants.
    fn handle_rtp(&mut self, now: Instant, source: SocketAddr, contents: Bytes) {
        let Some(&(call_id, pid)) = self.by_addr.get(&source) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        let header = match RtpHeader::parse(&contents) {
            Ok(h) => h,
            Err(_) => return self.drop_packet(DropReason::Malformed),
        };
        let max_learned = self.config.max_learned_ssrcs;
        let Some(call) = self.calls.get_mut(&call_id) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        let Some(sender_idx) = call.index_of(pid) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        let sender = &mut call.participants[sender_idx];
        sender.last_seen = now;
        if sender.role == Role::Subscriber {
            return self.drop_packet(DropReason::NotPublisher);
        }
        let sender_role = sender.role;
        match call.ssrc_owner.get(&header.ssrc) {
            Some(&owner) if owner == pid => {}
            Some(_) => return self.drop_packet(DropReason::SsrcNotOwned),
            None => {
                let sender = &mut call.participants[sender_idx];
                if !sender.learn_ssrcs || sender.producers.len() >= max_learned {
                    return self.drop_packet(DropReason::SsrcNotOwned);
                }
                sender.add_producer(header.ssrc);
                call.ssrc_owner.insert(header.ssrc, pid);
                self.out.push_back(Output::Event(Event::ProducerAdded {
                    call: call_id,
                    participant: pid,
                    ssrc: header.ssrc,
                }));
            }
        }
        let sender = &mut call.participants[sender_idx];
        if let Some(p) = sender.producer_mut(header.ssrc) {
            p.on_rtp(&header, contents.len());
        }
        // Fan-out: every other participant, as received. The mixer's composite
        // goes to SD receivers only; everything else goes to everyone.
        let mut n = 0u64;
        for (i, r) in call.participants.iter().enumerate() {
            if i == sender_idx {
                continue;
            }
            if sender_role == Role::Mixer && r.quality != Quality::Sd {
                continue;
            }
            self.out.push_back(Output::Transmit(Transmit { destination: r.addr, contents: contents.clone() }));
            n += 1;
        }
        self.stats.forwarded_rtp += n;
        self.stats.tx_datagrams += n;
    }

    fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let Some(&(call_id, pid)) = self.by_addr.get(&source) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        let pkts = match corecast_proto::rtcp::parse_compound(contents) {
            Ok(p) => p,
            Err(_) => return self.drop_packet(DropReason::Malformed),
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        let routed = rtcp_route::route(call, pid, pkts, now, &self.config, &mut self.stats);
        for (dest, bytes) in routed {
            self.stats.forwarded_rtcp += 1;
            self.transmit(dest, Bytes::from(bytes));
        }
    }

    fn handle_session(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let msg = match SessionMessage::parse(contents) {
            Ok(m) => m,
            Err(_) => return self.drop_packet(DropReason::Malformed),
        };
        self.stats.session_messages += 1;
        match msg {
            SessionMessage::Join { txid, token, ssrcs, quality } => {
                self.handle_join(now, source, txid, &token, ssrcs, quality)
            }
            SessionMessage::Keepalive { .. } => match self.participant_mut(source) {
                Some(p) => p.last_seen = now,
                None => self.drop_packet(DropReason::Unadmitted),
            },
            SessionMessage::Leave { .. } => match self.by_addr.get(&source).copied() {
                Some((call, pid)) => self.remove_participant(call, pid, LeaveReason::Left, false),
                None => self.drop_packet(DropReason::Unadmitted),
            },
            SessionMessage::Quality { quality, .. } => match self.by_addr.get(&source).copied() {
                Some((call, pid)) => self.set_quality(now, call, pid, quality),
                None => self.drop_packet(DropReason::Unadmitted),
            },
            // Messages only a router sends.
            SessionMessage::JoinAck { .. } | SessionMessage::JoinError { .. } | SessionMessage::CallEnded { .. } => {
                self.drop_packet(DropReason::Malformed)
            }
        }
    }

    fn participant_mut(&mut self, source: SocketAddr) -> Option<&mut Participant> {
        let (call, pid) = *self.by_addr.get(&source)?;
        let c = self.calls.get_mut(&call)?;
        let i = c.index_of(pid)?;
        Some(&mut c.participants[i])
    }

    fn set_quality(&mut self, now: Instant, call_id: CallId, pid: ParticipantId, quality: Quality) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let p = &mut call.participants[i];
        p.last_seen = now;
        if p.quality != quality {
            p.quality = quality;
            self.event(Event::QualityChanged { call: call_id, participant: pid, quality });
        }
    }

    fn join_error(&mut self, source: SocketAddr, txid: [u8; 12], code: JoinErrorCode, reason: &str) {
        self.stats.joins_refused += 1;
        let alternate = None;
        let m = SessionMessage::JoinError { txid, code, reason: reason.to_string(), alternate };
        self.transmit(source, Bytes::from(m.to_vec()));
    }

    fn handle_join(
        &mut self,
        now: Instant,
        source: SocketAddr,
        txid: [u8; 12],
        token_bytes: &[u8],
        ssrcs: Vec<Ssrc>,
        quality: Quality,
    ) {
        let claims = match token::verify(&self.key, token_bytes, self.unix_ms(now)) {
            Ok(c) => c,
            Err(e) => {
                self.drop_packet(DropReason::BadToken);
                return self.join_error(source, txid, JoinErrorCode::Unauthorized, &e.to_string());
            }
        };
        let call_id = claims.call_id;
        let pid = claims.participant_id;
        let workers = self.config.placement.addresses.len();
        let owner = Placement::worker_for(&call_id, workers);
        if workers > 1 && owner != self.config.placement.index {
            self.stats.joins_redirected += 1;
            let m = SessionMessage::JoinError {
                txid,
                code: JoinErrorCode::TryAlternate,
                reason: "call is placed on another worker".into(),
                alternate: Some(self.config.placement.addresses[owner]),
            };
            return self.transmit(source, Bytes::from(m.to_vec()));
        }
        if self.ended.contains_key(&call_id) {
            return self.join_error(source, txid, JoinErrorCode::Forbidden, "call has ended");
        }
        // A retransmitted join from an admitted address: answer again.
        if let Some(&(c, p)) = self.by_addr.get(&source) {
            if c == call_id && p == pid {
                if let Some(part) = self.participant_mut(source) {
                    part.last_seen = now;
                }
                return self.join_ack(source, txid, pid);
            }
            // The address now speaks for someone else: the old one is gone.
            self.remove_participant(c, p, LeaveReason::Left, false);
        }
        if !self.calls.contains_key(&call_id) && self.calls.len() >= self.config.max_calls {
            return self.join_error(source, txid, JoinErrorCode::Overloaded, "router is at its call capacity");
        }
        let cap = self.config.max_participants_per_call;
        let call = self.calls.entry(call_id).or_insert_with(|| Call::new(call_id));
        let is_new_call = call.participants.is_empty();
        // The same participant from a new address (NAT rebinding, reconnect): move it.
        if let Some(i) = call.index_of(pid) {
            let old = call.participants[i].addr;
            call.participants[i].addr = source;
            call.participants[i].last_seen = now;
            self.by_addr.remove(&old);
            self.by_addr.insert(source, (call_id, pid));
            return self.join_ack(source, txid, pid);
        }
        if call.participants.len() >= cap {
            if is_new_call {
                self.calls.remove(&call_id);
            }
            return self.join_error(source, txid, JoinErrorCode::CallFull, "call is full");
        }
        if claims.role == Role::Subscriber && !ssrcs.is_empty() {
            if is_new_call {
                self.calls.remove(&call_id);
            }
            return self.join_error(source, txid, JoinErrorCode::Forbidden, "a subscriber cannot send media");
        }
        let mut unique = ssrcs.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != ssrcs.len() || ssrcs.iter().any(|s| call.ssrc_owner.contains_key(s)) {
            if is_new_call {
                self.calls.remove(&call_id);
            }
            return self.join_error(source, txid, JoinErrorCode::Forbidden, "SSRC already in use in this call");
        }
        let mut p = Participant::new(pid, claims.role, source, now, quality);
        p.learn_ssrcs = ssrcs.is_empty() && claims.role != Role::Subscriber;
        for s in &ssrcs {
            p.add_producer(*s);
            call.ssrc_owner.insert(*s, pid);
        }
        call.participants.push(p);
        self.by_addr.insert(source, (call_id, pid));
        self.stats.joins += 1;
        if is_new_call {
            self.event(Event::CallStarted(call_id));
        }
        self.event(Event::ParticipantJoined { call: call_id, participant: pid, role: claims.role, source });
        for s in ssrcs {
            self.event(Event::ProducerAdded { call: call_id, participant: pid, ssrc: s });
        }
        if quality != Quality::Hd {
            self.event(Event::QualityChanged { call: call_id, participant: pid, quality });
        }
        self.join_ack(source, txid, pid);
    }

    fn join_ack(&mut self, source: SocketAddr, txid: [u8; 12], pid: ParticipantId) {
        let m = SessionMessage::JoinAck {
            txid,
            mapped: source,
            participant: pid.0,
            timeout_ms: self.config.silence_timeout.as_millis().min(u32::MAX as u128) as u32,
        };
        self.transmit(source, Bytes::from(m.to_vec()));
    }

    /// Removes a participant; `notify` sends it a call-ended message.
    fn remove_participant(&mut self, call_id: CallId, pid: ParticipantId, reason: LeaveReason, notify: bool) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let p = call.participants.swap_remove(i);
        for prod in &p.producers {
            call.ssrc_owner.remove(&prod.ssrc);
        }
        let empty = call.participants.is_empty();
        self.by_addr.remove(&p.addr);
        if empty {
            self.calls.remove(&call_id);
        }
        if notify {
            let m = SessionMessage::CallEnded { txid: [0; 12] };
            self.transmit(p.addr, Bytes::from(m.to_vec()));
        }
        self.stats.leaves += 1;
        self.event(Event::ParticipantLeft { call: call_id, participant: pid, reason });
        if empty {
            self.event(Event::CallClosed(call_id));
        }
    }

    fn handle_command(&mut self, now: Instant, c: Command) {
        match c {
            Command::EndCall(call_id) => {
                self.ended.insert(call_id, now + self.config.ended_call_memory);
                let pids: Vec<ParticipantId> = match self.calls.get(&call_id) {
                    Some(call) => call.participants.iter().map(|p| p.id).collect(),
                    None => return,
                };
                for pid in pids {
                    self.remove_participant(call_id, pid, LeaveReason::CallEnded, true);
                }
            }
            Command::RemoveParticipant(call_id, pid) => {
                self.remove_participant(call_id, pid, LeaveReason::Removed, true);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.next_sweep {
            Some(t) if now >= t => {}
            _ => return,
        }
        self.next_sweep = Some(now + self.config.sweep_interval);
        let timeout = self.config.silence_timeout;
        let mut silent = Vec::new();
        for (cid, call) in &self.calls {
            for p in &call.participants {
                if now.saturating_duration_since(p.last_seen) >= timeout {
                    silent.push((*cid, p.id));
                }
            }
        }
        for (cid, pid) in silent {
            self.stats.timeouts += 1;
            self.remove_participant(cid, pid, LeaveReason::Timeout, false);
        }
        self.ended.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests;

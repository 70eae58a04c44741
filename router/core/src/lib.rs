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
mod speakers;
mod stats;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtcp::{Pli, RtcpPacket};
use corecast_proto::rtp::RtpHeader;
use corecast_proto::session::{JoinErrorCode, Quality, SessionMessage};
use corecast_proto::token::{self, CallId, ParticipantId, Role, VerifyingKey};
use corecast_proto::{MediaKind, Ssrc};

pub use call::{CallSnapshot, ParticipantSnapshot};
pub use stats::{DropReason, RouterStats};

use call::{Call, Consumer, Participant};

/// Participant ids from here up stand for relay links to other workers.
pub const RELAY_PARTICIPANT_BASE: u64 = u64::MAX - 4096;

fn relay_participant(worker: usize, now: Instant) -> Participant {
    let addr = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut p = Participant::new(
        ParticipantId(RELAY_PARTICIPANT_BASE + worker as u64),
        Role::Publisher,
        addr,
        now,
        Quality::Hd,
    );
    p.quality_pinned = true;
    p.learn_ssrcs = true;
    p.relay_worker = Some(worker);
    p
}

#[inline]
fn emit(out: &mut VecDeque<Output>, call: CallId, r: &Participant, contents: Bytes) {
    match r.relay_worker {
        None => out.push_back(Output::Transmit(Transmit { destination: r.addr, contents })),
        Some(worker) => out.push_back(Output::Relay(Relay { worker, call, contents })),
    }
}

/// SSRC the router uses as the sender of the RTCP it originates (keyframe requests).
pub const ROUTER_SSRC: Ssrc = Ssrc(0x4343_5254);
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
    /// A receiver moves to SD when its reported loss fraction (1/256) is at
    /// least this in `sd_after_reports` consecutive reports (default ≈ 10%).
    pub sd_loss_threshold: u8,
    /// Consecutive bad reports (loss, or an estimate below what HD needs) before moving to SD.
    pub sd_after_reports: u32,
    /// An automatically moved receiver goes back to HD once reports stay
    /// below this loss fraction (default ≈ 2%) ...
    pub hd_loss_threshold: u8,
    /// ... for this long. Between the two thresholds nothing changes (hysteresis).
    pub hd_recovery: Duration,
    /// Most participants of one call on this worker before new ones are
    /// spread to other workers through relay links (with several workers).
    pub max_receivers_per_worker: usize,
    /// Payload types taken as audio for streams whose kind was not declared
    /// (besides the static audio types 0..=23).
    pub audio_payload_types: Vec<u8>,
    /// RFC 8285 id of the RFC 6464 audio level extension in senders' audio
    /// packets (0: levels are not read: SD receivers get every audio stream
    /// and the mixer is not told who speaks).
    pub audio_level_ext_id: u8,
    /// SD receivers get the audio of this many loudest speakers (0: every
    /// speaker). HD receivers always get every stream.
    pub sd_audio_streams: usize,
    /// How often the loudest speakers are ranked (see `speakers`).
    pub audio_rank_interval: Duration,
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
            sd_loss_threshold: 26,
            sd_after_reports: 2,
            hd_loss_threshold: 5,
            hd_recovery: Duration::from_secs(10),
            audio_payload_types: vec![111, 109, 110],
            audio_level_ext_id: 1,
            sd_audio_streams: 3,
            audio_rank_interval: Duration::from_millis(200),
            max_receivers_per_worker: 500,
            placement: Placement::default(),
        }
    }
}

/// Which worker owns which call.
///
/// A call goes to worker `hash(call id) % workers` (FNV-1a + splitmix64 finalizer, see
/// `router/PROTOCOL.md`): every worker computes the
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
        corecast_proto::placement::worker_for(call, workers)
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
    /// A packet from another worker's share of a spread call (already
    /// admitted and parsed there).
    Relayed {
        /// The worker it came from.
        from_worker: usize,
        /// The call.
        call: CallId,
        /// The packet.
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
    /// Exchange this call's media with another worker (a relay link).
    AttachRelay {
        /// The call.
        call: CallId,
        /// The other worker.
        worker: usize,
    },
    /// Drop the relay link to another worker (it has no participants left).
    DetachRelay {
        /// The call.
        call: CallId,
        /// The other worker.
        worker: usize,
    },
}

/// An output of the router.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `contents` to `destination`.
    Transmit(Transmit),
    /// Hand `contents` to another worker's share of the call.
    Relay(Relay),
    /// Something the control plane (or the driver) should know.
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

/// A packet for another worker.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The worker.
    pub worker: usize,
    /// The call.
    pub call: CallId,
    /// The packet (the received buffer itself).
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
    /// The call's first SD receiver appeared (`needed: true`: start a mixer
    /// for it) or its last one went (`needed: false`: the mixer may leave).
    MixerDemand {
        /// Call.
        call: CallId,
        /// Whether a mixer is needed now.
        needed: bool,
    },
    /// For the driver: worker `worker` must attach a relay link for `call` to
    /// this worker (send it [`Command::AttachRelay`] naming this worker).
    RelayNeeded {
        /// Call.
        call: CallId,
        /// The worker to attach.
        worker: usize,
    },
    /// For the driver: this worker's share of `call` is empty; tell `worker`
    /// to drop its relay link to this worker ([`Command::DetachRelay`]).
    RelayClosed {
        /// Call.
        call: CallId,
        /// The worker to tell.
        worker: usize,
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
    /// The audio streams SD receivers get (the call's loudest speakers,
    /// loudest first) changed. Emitted only when the ranking holds some
    /// stream back or lets one through again; calls with at most
    /// [`RouterConfig::sd_audio_streams`] speakers never see it.
    ActiveSpeakers {
        /// Call.
        call: CallId,
        /// The SSRCs forwarded to SD receivers, loudest first (streams
        /// without audio levels are forwarded too but not listed).
        ssrcs: Vec<Ssrc>,
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
    next_rank: Option<Instant>,
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
            next_rank: None,
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
            if self.ranks_speakers() {
                self.next_rank = Some(now + self.config.audio_rank_interval);
            }
        }
        match input {
            Input::Receive { source, contents } => self.handle_receive(now, source, contents),
            Input::Relayed { from_worker, call, contents } => self.handle_relayed(now, from_worker, call, contents),
            Input::Timeout => self.handle_timeout(now),
            Input::Command(c) => self.handle_command(now, c),
        }
    }

    /// The next output: transmits and events first, then the next deadline.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let sweep = self.next_sweep.unwrap_or(self.epoch + self.config.sweep_interval);
        Output::Timeout(self.next_rank.map_or(sweep, |r| r.min(sweep)))
    }

    /// Audio levels are read and ranked (for SD receivers and for the mixer).
    fn ranks_speakers(&self) -> bool {
        self.config.audio_level_ext_id != 0
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
        self.rtp_from(now, call_id, pid, contents)
    }

    fn handle_relayed(&mut self, now: Instant, from_worker: usize, call_id: CallId, contents: Bytes) {
        let pid = ParticipantId(RELAY_PARTICIPANT_BASE + from_worker as u64);
        let known = self.calls.get(&call_id).is_some_and(|c| c.relay_index(from_worker).is_some());
        if !known {
            return self.drop_packet(DropReason::Unadmitted);
        }
        match classify(&contents) {
            Kind::Rtp => self.rtp_from(now, call_id, pid, contents),
            Kind::Rtcp => self.rtcp_from(now, call_id, pid, &contents),
            _ => self.drop_packet(DropReason::Malformed),
        }
    }

    fn rtp_from(&mut self, now: Instant, call_id: CallId, pid: ParticipantId, contents: Bytes) {
        let header = match RtpHeader::parse(&contents) {
            Ok(h) => h,
            Err(_) => return self.drop_packet(DropReason::Malformed),
        };
        let max_learned = self.config.max_learned_ssrcs;
        let level_ext = if self.ranks_speakers() { self.config.audio_level_ext_id } else { 0 };
        let workers = self.config.placement.addresses.len();
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
                if !sender.learn_ssrcs || (!sender.is_relay() && sender.producers.len() >= max_learned) {
                    return self.drop_packet(DropReason::SsrcNotOwned);
                }
                sender.add_producer(header.ssrc, MediaKind::Unknown);
                let relay = sender.is_relay();
                call.ssrc_owner.insert(header.ssrc, pid);
                if !relay {
                    self.out.push_back(Output::Event(Event::ProducerAdded {
                        call: call_id,
                        participant: pid,
                        ssrc: header.ssrc,
                    }));
                }
            }
        }
        let Some(producer) = call.participants[sender_idx].producer_mut(header.ssrc) else {
            return self.drop_packet(DropReason::SsrcNotOwned);
        };
        if producer.kind == MediaKind::Unknown {
            let pt = header.pt.0;
            producer.kind = if pt <= 23 || self.config.audio_payload_types.contains(&pt) {
                MediaKind::Audio
            } else {
                MediaKind::Video
            };
        }
        producer.on_rtp(&header, contents.len());
        let kind = producer.kind;
        if kind == MediaKind::Audio && level_ext != 0 {
            let level = header.extensions(&contents).flatten().find(|e| e.id == level_ext);
            if let Some((_, dbov)) = level.and_then(|e| corecast_proto::rtp::parse_audio_level(e.data)) {
                producer.on_audio_level(dbov);
            }
        }
        // Audio held back from SD receivers: not among the loudest speakers.
        let sd_mute = kind == MediaKind::Audio && !producer.sd_audible;
        let prev_seq = producer.prev_seq.replace(header.seq);
        let has_mixer = sender_role != Role::Mixer && kind == MediaKind::Video && call.has_mixer();
        let sender_is_relay = call.participants[sender_idx].is_relay();
        // Fan-out: one pass over the call. Receivers on the fast path (no
        // paused or shifted streams) get the received buffer itself.
        let mut n = 0u64;
        let mut relayed = 0u64;
        let mut keyframe_for_resume = false;
        let mut withheld = 0u64;
        for (i, r) in call.participants.iter_mut().enumerate() {
            if i == sender_idx {
                continue;
            }
            let want = if r.is_relay() {
                // The other worker filters for its own receivers; relayed
                // packets go on only from the hub (the call's owner) outwards.
                !sender_is_relay || self.config.placement.index == Placement::worker_for(&call_id, workers)
            } else {
                match (sender_role, r.role) {
                    (Role::Mixer, _) => r.quality == Quality::Sd && r.role != Role::Mixer,
                    (_, Role::Mixer) => kind == MediaKind::Video,
                    _ if r.quality == Quality::Sd && sd_mute => {
                        withheld += 1;
                        false
                    }
                    _ => !(has_mixer && r.quality == Quality::Sd),
                }
            };
            if r.consumers.is_empty() {
                if want {
                    emit(&mut self.out, call_id, r, contents.clone());
                    *if r.is_relay() { &mut relayed } else { &mut n } += 1;
                } else if sender_role != Role::Mixer {
                    // Remember where this receiver's copy of the stream stopped.
                    r.consumers.push(Consumer { ssrc: header.ssrc, paused: true, offset: 0, last_out: prev_seq });
                }
                continue;
            }
            let c = match r.consumer_mut(header.ssrc) {
                Some(c) => c,
                None if want => {
                    emit(&mut self.out, call_id, r, contents.clone());
                    *if r.is_relay() { &mut relayed } else { &mut n } += 1;
                    continue;
                }
                None => {
                    if sender_role != Role::Mixer {
                        r.consumers.push(Consumer { ssrc: header.ssrc, paused: true, offset: 0, last_out: prev_seq });
                    }
                    continue;
                }
            };
            if !want {
                c.paused = true;
                continue;
            }
            if c.paused {
                // Resume where the receiver's sequence left off, and get it a keyframe.
                if let Some(last) = c.last_out {
                    c.offset = last.next().0.wrapping_sub(header.seq.0);
                }
                c.paused = false;
                keyframe_for_resume |= kind == MediaKind::Video;
            }
            let out_seq = header.seq.wrapping_add(c.offset);
            c.last_out = Some(out_seq);
            let bytes = if c.offset == 0 {
                contents.clone()
            } else {
                let mut v = contents.to_vec();
                corecast_proto::rtp::set_seq(&mut v, out_seq);
                Bytes::from(v)
            };
            emit(&mut self.out, call_id, r, bytes);
            *if r.is_relay() { &mut relayed } else { &mut n } += 1;
        }
        self.stats.forwarded_rtp += n;
        self.stats.tx_datagrams += n;
        self.stats.relayed_rtp += relayed;
        self.stats.sd_audio_withheld += withheld;
        if keyframe_for_resume {
            self.request_keyframe(now, call_id, header.ssrc);
        }
    }

    /// Sends a router-originated PLI to the producer of `ssrc` (throttled).
    fn request_keyframe(&mut self, now: Instant, call_id: CallId, ssrc: Ssrc) {
        let interval = self.config.keyframe_request_interval;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(oi) = call.owner_index(ssrc) else { return };
        let owner = &mut call.participants[oi];
        let Some(p) = owner.producer_mut(ssrc) else { return };
        if p.last_keyframe_request.is_some_and(|t| now.saturating_duration_since(t) < interval) {
            return;
        }
        p.last_keyframe_request = Some(now);
        let pli = RtcpPacket::Pli(Pli { sender_ssrc: ROUTER_SSRC, media_ssrc: ssrc });
        if let Ok(b) = corecast_proto::rtcp::write_compound(&[pli]) {
            self.stats.keyframe_requests += 1;
            self.stats.tx_datagrams += 1;
            emit(&mut self.out, call_id, &call.participants[oi], Bytes::from(b));
        }
    }

    fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let Some(&(call_id, pid)) = self.by_addr.get(&source) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        self.rtcp_from(now, call_id, pid, contents)
    }

    fn rtcp_from(&mut self, now: Instant, call_id: CallId, pid: ParticipantId, contents: &[u8]) {
        let pkts = match corecast_proto::rtcp::parse_compound(contents) {
            Ok(p) => p,
            Err(_) => return self.drop_packet(DropReason::Malformed),
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return self.drop_packet(DropReason::Unadmitted);
        };
        let routed = rtcp_route::route(call, pid, pkts, now, &self.config, &mut self.stats);
        let call = &*call;
        for (idx, bytes) in routed.transmits {
            self.stats.forwarded_rtcp += 1;
            self.stats.tx_datagrams += 1;
            emit(&mut self.out, call_id, &call.participants[idx], Bytes::from(bytes));
        }
        if routed.loss.is_some() || routed.estimate.is_some() {
            self.on_quality_signal(now, call_id, pid, routed.loss, routed.estimate);
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
                Some((call, pid)) => self.set_quality(now, call, pid, quality, true),
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

    /// Switches a receiver between HD and SD. `explicit`: the participant
    /// asked (SD then stays until it asks for HD; HD re-enables automatic switching).
    fn set_quality(&mut self, now: Instant, call_id: CallId, pid: ParticipantId, quality: Quality, explicit: bool) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let p = &mut call.participants[i];
        p.last_seen = now;
        if explicit {
            p.quality_pinned = quality == Quality::Sd;
            p.bad_reports = 0;
            p.good_since = None;
        }
        if p.quality == quality {
            return;
        }
        p.quality = quality;
        // The composite must start with a keyframe for the newcomer.
        let mixer_ssrcs: Vec<Ssrc> = if quality == Quality::Sd {
            call.participants
                .iter()
                .filter(|m| m.role == Role::Mixer)
                .flat_map(|m| m.producers.iter().filter(|s| s.kind != MediaKind::Audio).map(|s| s.ssrc))
                .collect()
        } else {
            Vec::new()
        };
        self.event(Event::QualityChanged { call: call_id, participant: pid, quality });
        self.update_mixer_demand(call_id);
        for ssrc in mixer_ssrcs {
            self.request_keyframe(now, call_id, ssrc);
        }
    }

    /// Emits [`Event::MixerDemand`] when the call's first SD receiver
    /// appears or its last one goes; in the latter case the mixer is also
    /// removed (it gets CallEnded), so the codec pool stops working for a
    /// call nobody watches in SD.
    fn update_mixer_demand(&mut self, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let wanted = call.sd_receivers() > 0;
        if wanted == call.mixer_wanted {
            return;
        }
        call.mixer_wanted = wanted;
        let mixers: Vec<ParticipantId> = if wanted {
            Vec::new()
        } else {
            call.participants.iter().filter(|p| p.role == Role::Mixer && !p.is_relay()).map(|p| p.id).collect()
        };
        self.event(Event::MixerDemand { call: call_id, needed: wanted });
        for m in mixers {
            self.remove_participant(call_id, m, LeaveReason::Removed, true);
        }
    }

    /// Automatic HD/SD decision for one receiver after a receiver report
    /// (`loss`, fraction in 1/256) or a bandwidth estimate (`estimate`, bits/s).
    fn on_quality_signal(
        &mut self,
        now: Instant,
        call_id: CallId,
        pid: ParticipantId,
        loss: Option<u8>,
        estimate: Option<u64>,
    ) {
        let cfg = &self.config;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        // What HD needs for this receiver: every other non-mixer stream.
        let need_bps: u64 = call
            .participants
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && o.role != Role::Mixer)
            .flat_map(|(_, o)| o.producers.iter().map(|s| s.bitrate_bps))
            .sum();
        let p = &mut call.participants[i];
        if p.quality_pinned || p.role == Role::Mixer {
            return;
        }
        let low_estimate = estimate.is_some_and(|e| need_bps > 0 && e < need_bps);
        let bad = low_estimate || loss.is_some_and(|l| l >= cfg.sd_loss_threshold);
        let good = !bad && loss.is_none_or(|l| l < cfg.hd_loss_threshold);
        let mut switch = None;
        if bad {
            p.bad_reports += 1;
            p.good_since = None;
            if p.quality == Quality::Hd && p.bad_reports >= cfg.sd_after_reports {
                switch = Some(Quality::Sd);
            }
        } else if good {
            p.bad_reports = 0;
            if p.quality == Quality::Sd {
                let since = *p.good_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= cfg.hd_recovery {
                    switch = Some(Quality::Hd);
                }
            }
        } else {
            p.bad_reports = 0;
            p.good_since = None;
        }
        if let Some(q) = switch {
            let p = &mut call.participants[i];
            p.bad_reports = 0;
            p.good_since = None;
            self.set_quality(now, call_id, pid, q, false);
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
        ssrcs: Vec<(Ssrc, MediaKind)>,
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
        if workers > 1 && owner != self.config.placement.index && !self.calls.contains_key(&call_id) {
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
        let budget = self.config.max_receivers_per_worker;
        let index = self.config.placement.index;
        let created = !self.calls.contains_key(&call_id);
        let call = self.calls.entry(call_id).or_insert_with(|| Call::new(call_id));
        let is_new_call = call.local_participants() == 0;
        // The same participant from a new address (NAT rebinding, reconnect): move it.
        if let Some(i) = call.index_of(pid) {
            let old = call.participants[i].addr;
            call.participants[i].addr = source;
            call.participants[i].last_seen = now;
            self.by_addr.remove(&old);
            self.by_addr.insert(source, (call_id, pid));
            return self.join_ack(source, txid, pid);
        }
        // This worker's share of a large call is full: spread new receivers
        // over the other workers, linked to this one by relay rings.
        if workers > 1 && owner == index && call.local_participants() >= budget {
            let others: Vec<usize> = (0..workers).filter(|&w| w != index).collect();
            let target = others[call.next_spread % others.len()];
            call.next_spread += 1;
            let attach = call.relay_index(target).is_none();
            if attach {
                call.participants.push(relay_participant(target, now));
                self.event(Event::RelayNeeded { call: call_id, worker: target });
            }
            self.stats.joins_redirected += 1;
            let m = SessionMessage::JoinError {
                txid,
                code: JoinErrorCode::TryAlternate,
                reason: "call is spread over several workers".into(),
                alternate: Some(self.config.placement.addresses[target]),
            };
            return self.transmit(source, Bytes::from(m.to_vec()));
        }
        if call.local_participants() >= cap {
            if created {
                self.calls.remove(&call_id);
            }
            return self.join_error(source, txid, JoinErrorCode::CallFull, "call is full");
        }
        if claims.role == Role::Subscriber && !ssrcs.is_empty() {
            if created {
                self.calls.remove(&call_id);
            }
            return self.join_error(source, txid, JoinErrorCode::Forbidden, "a subscriber cannot send media");
        }
        let mut unique: Vec<Ssrc> = ssrcs.iter().map(|(s, _)| *s).collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != ssrcs.len() || ssrcs.iter().any(|(s, _)| call.ssrc_owner.contains_key(s)) {
            if created {
                self.calls.remove(&call_id);
            }
            return self.join_error(source, txid, JoinErrorCode::Forbidden, "SSRC already in use in this call");
        }
        let mut p = Participant::new(pid, claims.role, source, now, quality);
        p.learn_ssrcs = ssrcs.is_empty() && claims.role != Role::Subscriber;
        for (s, kind) in &ssrcs {
            p.add_producer(*s, *kind);
            call.ssrc_owner.insert(*s, pid);
        }
        call.participants.push(p);
        if claims.role == Role::Mixer {
            call.speakers_sent.clear(); // a new mixer is told who speaks at the next ranking
        }
        self.by_addr.insert(source, (call_id, pid));
        self.stats.joins += 1;
        if is_new_call {
            self.event(Event::CallStarted(call_id));
        }
        self.event(Event::ParticipantJoined { call: call_id, participant: pid, role: claims.role, source });
        for (s, _) in ssrcs {
            self.event(Event::ProducerAdded { call: call_id, participant: pid, ssrc: s });
        }
        if quality != Quality::Hd {
            self.event(Event::QualityChanged { call: call_id, participant: pid, quality });
            self.update_mixer_demand(call_id);
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
    /// Removes a participant; `notify` sends it a call-ended message.
    fn remove_participant(&mut self, call_id: CallId, pid: ParticipantId, reason: LeaveReason, notify: bool) {
        let workers = self.config.placement.addresses.len();
        let is_owner = Placement::worker_for(&call_id, workers) == self.config.placement.index;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let Some(i) = call.index_of(pid) else { return };
        let p = call.participants.swap_remove(i);
        for prod in &p.producers {
            call.ssrc_owner.remove(&prod.ssrc);
        }
        // A helper worker whose share of the call is empty drops the call and
        // its relay links; the owner (the hub) keeps the call while any link remains.
        let local_left = call.local_participants();
        let relays: Vec<usize> = call.participants.iter().filter_map(|r| r.relay_worker).collect();
        let close = call.participants.is_empty() || (local_left == 0 && !is_owner);
        if close {
            self.calls.remove(&call_id);
        }
        if p.is_relay() {
            if close {
                self.event(Event::CallClosed(call_id));
            }
            return;
        }
        self.by_addr.remove(&p.addr);
        if notify {
            let m = SessionMessage::CallEnded { txid: [0; 12] };
            self.transmit(p.addr, Bytes::from(m.to_vec()));
        }
        self.stats.leaves += 1;
        self.event(Event::ParticipantLeft { call: call_id, participant: pid, reason });
        if close {
            for worker in relays {
                self.event(Event::RelayClosed { call: call_id, worker });
            }
            self.event(Event::CallClosed(call_id));
        } else {
            self.update_mixer_demand(call_id);
        }
    }

    fn handle_command(&mut self, now: Instant, c: Command) {
        match c {
            Command::EndCall(call_id) => {
                self.ended.insert(call_id, now + self.config.ended_call_memory);
                let pids: Vec<ParticipantId> = match self.calls.get(&call_id) {
                    // Local participants first, relay links last.
                    Some(call) => {
                        let mut v: Vec<_> = call.participants.iter().filter(|p| !p.is_relay()).map(|p| p.id).collect();
                        v.extend(call.participants.iter().filter(|p| p.is_relay()).map(|p| p.id));
                        v
                    }
                    None => return,
                };
                for pid in pids {
                    self.remove_participant(call_id, pid, LeaveReason::CallEnded, true);
                }
                self.calls.remove(&call_id);
            }
            Command::RemoveParticipant(call_id, pid) => {
                self.remove_participant(call_id, pid, LeaveReason::Removed, true);
            }
            Command::AttachRelay { call: call_id, worker } => {
                if self.ended.contains_key(&call_id) || worker == self.config.placement.index {
                    return;
                }
                let call = self.calls.entry(call_id).or_insert_with(|| Call::new(call_id));
                if call.relay_index(worker).is_none() {
                    call.participants.push(relay_participant(worker, now));
                }
            }
            Command::DetachRelay { call, worker } => {
                let pid = ParticipantId(RELAY_PARTICIPANT_BASE + worker as u64);
                self.remove_participant(call, pid, LeaveReason::Removed, false);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.next_rank.is_some_and(|t| now >= t) {
            self.next_rank = Some(now + self.config.audio_rank_interval);
            let n = self.config.sd_audio_streams;
            for (id, call) in &mut self.calls {
                if let Some(ssrcs) = speakers::rank(call, n) {
                    self.out.push_back(Output::Event(Event::ActiveSpeakers { call: *id, ssrcs }));
                }
                if !call.has_mixer() {
                    continue;
                }
                let Some(list) = speakers::for_mixer(call) else { continue };
                let app = RtcpPacket::App(corecast_proto::session::speakers::app(ROUTER_SSRC, &list));
                let Ok(b) = corecast_proto::rtcp::write_compound(&[app]) else { continue };
                let b = Bytes::from(b);
                for m in call.participants.iter().filter(|p| p.role == Role::Mixer && !p.is_relay()) {
                    self.stats.tx_datagrams += 1;
                    emit(&mut self.out, *id, m, b.clone());
                }
            }
        }
        match self.next_sweep {
            Some(t) if now >= t => {}
            _ => return,
        }
        let elapsed = match self.next_sweep {
            Some(t) => now.saturating_duration_since(t) + self.config.sweep_interval,
            None => self.config.sweep_interval,
        };
        self.next_sweep = Some(now + self.config.sweep_interval);
        let timeout = self.config.silence_timeout;
        let secs = elapsed.as_secs_f64().max(1e-3);
        for call in self.calls.values_mut() {
            for p in &mut call.participants {
                for s in &mut p.producers {
                    s.bitrate_bps = (s.window_bytes as f64 * 8.0 / secs) as u64;
                    s.window_bytes = 0;
                }
            }
        }
        let mut silent = Vec::new();
        for (cid, call) in &self.calls {
            for p in call.participants.iter().filter(|p| !p.is_relay()) {
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

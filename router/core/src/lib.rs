//! corecast's sans-IO routing core.
//!
//! [`Router`] owns the calls of one worker (one core): their participants,
//! the streams each participant produces, and who consumes what. It reads no
//! clock and touches no socket: the driver passes time and datagrams in with
//! [`Router::handle_input`] and then calls [`Router::poll_output`] until it
//! returns [`Output::Timeout`], sending every [`Output::Transmit`], handing
//! every [`Output::Pipe`] to the named worker and acting on every
//! [`Output::Event`].
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
//!
//! The field's vocabulary (mediasoup's): a **call** has **participants**;
//! each reaches the router over a **transport** (a leg: the native UDP
//! transport, or a WebRTC transport from WHIP/WHEP); a participant's **producers** are the streams it sends;
//! a **consumer** is one receiver's state for one producer. A call too large
//! for one worker spreads over several, linked by **pipe transports**.
//!
//! What lives where:
//! - `api`: [`Input`], [`Output`], [`Command`], [`Event`] (the boundary);
//! - `config`, `placement`: [`RouterConfig`] and [`Placement`] (which worker owns a call);
//! - `call`, `participant`, `producer`, `consumer`, `transport`, `pipe`: the state;
//!   `cascade`: pipes between routers (one call over several routers: the links; `cascade::wire`: their format);
//! - `membership`: joins, leaves, commands, silence timeouts, spreading;
//!   `address_check`: signed joins moving only after a check, revoked tokens;
//! - `forward` (the RTP hot path) over `fanout` (the policy, a pure function);
//! - `framerate`: frame-rate caps (`max_fps`) by dropping upper temporal layers;
//! - `rtcp_route`: RTCP routing; `keyframe`: the one keyframe-request throttle;
//! - `reports`: the router's own RTCP reports (receive statistics, RRs to
//!   publishers, SRs to receivers, RTT per leg);
//! - `retransmit`: the per-producer retransmission buffer, NACKs answered from it;
//!   `nack_generator`: the router's own NACKs to publishers for the gaps it sees;
//! - `quality`: HD/SD per receiver and mixer demand; `overload`: the worker's load moves its
//!   heaviest HD receivers to SD and back; `speakers`: loudest speakers, Last-N's stage;
//! - `outbox`, `stats`, `snapshot`, `hash`: outputs and counters, admin views, the map hasher;
//! - [`webrtc`] (the WebRTC transport: ICE-lite state, DTLS over `dimpl`, the per-leg header
//!   rewrite and SRTP sealing) and `legs` (opening WebRTC legs, ICE checks, DTLS and SRTP in,
//!   consent and congestion feedback timers).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod address_check;
mod api;
mod bwe;
mod call;
mod cascade;
mod config;
mod consumer;
mod fanout;
mod forward;
mod framerate;
pub mod hash;
mod keyframe;
mod legs;
mod membership;
mod nack_generator;
mod outbox;
mod overload;
mod participant;
mod picture_id;
mod pipe;
mod pipe_auth;
mod placement;
mod producer;
mod quality;
mod reports;
mod retransmit;
mod rtcp_route;
mod simulcast;
mod snapshot;
mod speakers;
mod srtp_pair;
mod stats;
mod svc;
mod transport;
pub mod webrtc;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use corecast_proto::demux::{classify, Kind};
use corecast_proto::rtcp::RtcpPacket;
use corecast_proto::token::{CallId, ParticipantId, Role, VerifyingKey};
use corecast_proto::{MediaKind, Ssrc};

pub use api::{Command, Event, Input, LeaveReason, Output, PipeSend, Transmit};
pub use cascade::{open as cascade_open, seal as cascade_seal, CascadeParseError, LinkStats, PIPE_HEADER, PIPE_MAGIC};
pub use config::{receivers_for, RouterConfig, CORE_EGRESS_PPS, DEFAULT_RECEIVERS_PER_WORKER, PUBLISHER_PPS};
pub use legs::{LegPreferences, LegRefusal};
pub use pipe::PipeMessage;
pub use placement::Placement;
pub use simulcast::Layer;
pub use snapshot::{CallSnapshot, ParticipantSnapshot};
pub use stats::{BufferStats, DropReason, RouterStats};

use call::Call;
use forward::Origin;
use hash::FxHashMap;
use outbox::Outbox;

/// SSRC the router uses as the sender of the RTCP it originates: keyframe
/// requests, NACKs, congestion feedback and its receiver reports (one for
/// every leg and worker; its SRs go under each forwarded stream's own SSRC).
pub const ROUTER_SSRC: Ssrc = Ssrc(0x4343_5254);

/// The longest datagram the router takes (the I/O backends' receive slot,
/// `BackendOptions::max_datagram`); a longer one is dropped as malformed
/// before it is parsed, so nothing keeps or copies more than this per packet.
pub const MAX_DATAGRAM: usize = 2048;

/// The routing state machine of one worker.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    key: VerifyingKey,
    epoch: Instant,
    epoch_unix_ms: u64,
    calls: FxHashMap<CallId, Call>,
    by_addr: FxHashMap<SocketAddr, (CallId, ParticipantId)>,
    /// WebRTC legs by the router's ICE ufrag, and by every address that
    /// passed one of their checks.
    by_ufrag: FxHashMap<String, (CallId, ParticipantId)>,
    webrtc_addrs: FxHashMap<SocketAddr, (CallId, ParticipantId)>,
    dtls: Option<std::sync::Arc<webrtc::DtlsIdentity>>,
    ended: FxHashMap<CallId, Instant>,
    /// New addresses of native participants, waiting for their check's
    /// answer (see `address_check`).
    checking: FxHashMap<SocketAddr, (CallId, ParticipantId)>,
    /// Native participants that left or were removed, until their token's
    /// expiry (Unix ms): their token admits nobody again.
    revoked: FxHashMap<(CallId, ParticipantId), u64>,
    /// Addresses of native participants whose media is SRTP.
    srtp_addrs: hash::FxHashSet<SocketAddr>,
    out: Outbox,
    next_sweep: Option<Instant>,
    next_rank: Option<Instant>,
    /// When WebRTC legs' congestion feedback is next considered.
    next_feedback: Option<Instant>,
    /// When the next NACK to a publisher is due (see `nack_generator`).
    next_nack: Option<Instant>,
    /// The worker's load and the overload protection's state.
    overload: overload::Overload,
    /// The next tick of the report timer (see `reports`).
    next_reports: Option<Instant>,
    /// Sweeps so far (links to other routers are announced again every few: `cascade`).
    sweeps: u32,
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
            by_ufrag: FxHashMap::default(),
            webrtc_addrs: FxHashMap::default(),
            dtls: None,
            ended: FxHashMap::default(),
            checking: FxHashMap::default(),
            revoked: FxHashMap::default(),
            srtp_addrs: Default::default(),
            out: Outbox::new(epoch),
            next_sweep: None,
            next_rank: None,
            next_feedback: None,
            next_nack: None,
            overload: overload::Overload::default(),
            next_reports: None,
            sweeps: 0,
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &RouterStats {
        &self.out.stats
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Number of live calls (shares of calls, on a worker a call spread to).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Number of admitted participants over all calls.
    pub fn participant_count(&self) -> usize {
        self.by_addr.len() + self.by_ufrag.len()
    }

    /// Pipe transports (links to this worker's share of a call on another
    /// worker) over all calls.
    pub fn pipe_count(&self) -> usize {
        self.calls.values().map(|c| c.pipes.len()).sum()
    }

    /// What the retransmission buffers of every producer on this worker hold
    /// (walks every buffer: for stats requests, not the packet path).
    pub fn buffer_stats(&self) -> BufferStats {
        let mut b = BufferStats::default();
        for r in self.calls.values().flat_map(Call::producers).filter_map(|p| p.retransmit.as_deref()) {
            b.retransmit_buffers += 1;
            b.retransmit_bytes += r.heap_bytes() as u64;
        }
        b
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
        self.out.set_now(now);
        self.start_timers(now);
        match input {
            Input::Receive { source, contents } => self.handle_receive(now, source, contents),
            Input::Pipe { from_worker, call, message } => {
                self.handle_pipe(now, pipe::PipePeer::Worker(from_worker), call, message)
            }
            Input::Timeout => self.handle_timeout(now),
            Input::Command(c) => self.handle_command(now, c),
            Input::Load { busy_permille } => self.on_load(now, busy_permille),
        }
    }

    /// Starts the periodic timers at the first input.
    fn start_timers(&mut self, now: Instant) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.config.sweep_interval);
            if self.config.ranks_speakers() {
                self.next_rank = Some(now + self.config.audio_rank_interval);
            }
            self.next_reports = Some(now + reports::REPORT_TICK);
        }
    }

    /// The next output: transmits, pipe messages and events first, then the next deadline.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop() {
            return o;
        }
        let sweep = self.next_sweep.unwrap_or(self.epoch + self.config.sweep_interval);
        let t = self.next_rank.map_or(sweep, |r| r.min(sweep));
        let t = self.next_nack.map_or(t, |n| n.min(t));
        let t = self.next_reports.map_or(t, |n| n.min(t));
        let t = self.out.pace_due().map_or(t, |p| p.min(t));
        Output::Timeout(self.next_feedback.map_or(t, |f| f.min(t)))
    }

    fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: Bytes) {
        self.out.stats.rx_datagrams += 1;
        self.out.stats.rx_bytes += contents.len() as u64;
        if contents.len() > MAX_DATAGRAM {
            return self.out.drop_packet(DropReason::Malformed);
        }
        if cascade::is_pipe_datagram(&contents) {
            return self.handle_pipe_datagram(now, source, contents);
        }
        let kind = classify(&contents);
        if kind == Kind::Stun {
            // A Binding request with a USERNAME is an ICE check; corecast's
            // own session messages carry none.
            if let Ok(req) = corecast_proto::ice::BindingRequest::parse(&contents) {
                return self.handle_ice_check(now, source, req);
            }
            // No reply longer than the message (a JoinError to a spoofed source).
            self.out.limit_replies(source, contents.len());
            self.handle_session(now, source, &contents);
            return self.out.end_reply_limit();
        }
        let Some(&(call, pid)) = self.by_addr.get(&source) else {
            if let Some(&leg) = self.webrtc_addrs.get(&source) {
                return self.handle_webrtc(now, source, leg, kind, contents);
            }
            return self.out.drop_packet(match kind {
                Kind::Rtp | Kind::Rtcp | Kind::Dtls => DropReason::Unadmitted,
                _ => DropReason::Malformed,
            });
        };
        // A router with no SRTP native leg (the bench's plain runs) skips the lookup.
        let contents = if !self.srtp_addrs.is_empty() && self.srtp_addrs.contains(&source) {
            match self.unprotect_native(call, pid, kind, &contents) {
                Ok(plain) => plain,
                Err(reason) => return self.out.drop_packet(reason),
            }
        } else {
            contents
        };
        match kind {
            Kind::Rtp => self.forward_rtp(now, call, Origin::Participant(pid), contents),
            Kind::Rtcp => self.route_rtcp(now, call, Origin::Participant(pid), &contents),
            _ => self.out.drop_packet(DropReason::Malformed),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.out.pace_due().is_some_and(|t| now >= t) {
            self.drain_pacers();
        }
        if self.next_nack.is_some_and(|t| now >= t) {
            self.send_upstream_nacks(now);
        }
        if self.next_feedback.is_some_and(|t| now >= t) {
            self.send_feedback(now);
        }
        if self.next_reports.is_some_and(|t| now >= t) {
            self.send_reports(now);
        }
        if self.next_rank.is_some_and(|t| now >= t) {
            self.next_rank = Some(now + self.config.audio_rank_interval);
            self.rank_speakers();
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
        let secs = elapsed.as_secs_f64().max(1e-3);
        for call in self.calls.values_mut() {
            for s in call.producers_mut() {
                s.end_rate_window(secs);
            }
            // Layers that started or stopped, bitrates that moved: receivers choose again.
            simulcast::allocate_all(call);
        }
        self.sweep_silent(now);
        self.sweep_checks(now);
        self.sweep_webrtc(now);
        self.sweep_pipes(now);
        self.sweep_cascade(now);
        self.ended.retain(|_, until| *until > now);
    }

    /// Ranks every call's speakers: SD receivers' audio, and the list the
    /// call's mixer is told when it changes.
    fn rank_speakers(&mut self) {
        let n = self.config.sd_audio_streams;
        for (id, call) in &mut self.calls {
            if let Some(ssrcs) = speakers::rank(call, n) {
                self.out.event(Event::ActiveSpeakers { call: *id, ssrcs });
            }
            // The stage (Last-N receivers get who is on it) and the dominant
            // speaker (an event for the calls service, which tells browsers:
            // only someone heard, not the first of a silent call), in every
            // call of more than one participant.
            let last_n = call.participants.iter().filter_map(|p| p.last_n).max();
            let ranked = (last_n.is_some() || call.participants.len() > 1)
                .then(|| speakers::stage(call, last_n.unwrap_or(1)))
                .flatten();
            if let Some(stage) = ranked {
                let dominant = stage.first().and_then(|s| call.producer(*s)).map(|p| p.participant);
                let heard = |d: &ParticipantId| {
                    call.producers().any(|p| p.participant == *d && p.kind == MediaKind::Audio && p.loudness > 0)
                };
                if let Some(d) = dominant.filter(|d| call.dominant != Some(*d) && heard(d)) {
                    call.dominant = Some(d);
                    self.out.event(Event::DominantSpeaker { call: *id, participant: d });
                }
                if last_n.is_some() {
                    let app = RtcpPacket::App(corecast_proto::session::speakers::app(ROUTER_SSRC, &stage));
                    if let Ok(b) = corecast_proto::rtcp::write_compound(&[app]) {
                        let b = Bytes::from(b);
                        // To native clients (browsers learn the stage from the calls service).
                        let native = |p: &participant::Participant| matches!(p.transport, transport::Transport::Udp(_));
                        for r in call.participants.iter_mut().filter(|p| p.last_n.is_some() && native(p)) {
                            r.transport.send(&mut self.out, b.clone());
                        }
                    }
                }
            }
            if !call.participants.iter().any(|p| p.role == Role::Mixer) {
                continue;
            }
            let Some(list) = speakers::for_mixer(call) else { continue };
            let app = RtcpPacket::App(corecast_proto::session::speakers::app(ROUTER_SSRC, &list));
            let Ok(b) = corecast_proto::rtcp::write_compound(&[app]) else { continue };
            let b = Bytes::from(b);
            for m in call.participants.iter_mut().filter(|p| p.role == Role::Mixer) {
                m.transport.send(&mut self.out, b.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;

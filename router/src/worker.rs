//! One worker: a thread that owns one socket backend and one sans-IO router.
//!
//! The loop only moves bytes and timers: receive a batch, feed each datagram
//! to the core, queue what it says to transmit, flush once per batch. Control
//! commands arrive on a channel and are looked at before and after every
//! receive; the receive wait is bounded by the core's next deadline and by
//! [`COMMAND_POLL`].
//!
//! ## Pipe rings (calls spread over workers)
//! The core's pipe transports ([`PipeMessage`]) between workers' shares of
//! a call travel through a lock-free ring per (from, to) pair of workers:
//! each ring has exactly one producer thread and one consumer thread and is
//! FIFO, so a pipe's messages arrive in order. Media crosses as the received
//! `Bytes` itself (never copied; the far side parses the header again). A
//! control message that finds its ring full waits in an overflow queue and
//! goes first at the next turn (they must not be lost: they reserve seats and
//! announce producers); media that finds a ring full is dropped and counted.
//! A worker about to block in `recv` sets its *parked* flag and re-checks
//! its rings; a producer that pushes to a parked worker's ring sends it one
//! tiny wake datagram from its own socket (first byte 0xFF, which no
//! protocol on the port uses), so piped packets wait neither for a timer nor
//! for polling. Rings are drained right after every receive, before the
//! batch is handled: a seat granted before a redirect is always seen before
//! the redirected join.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::collections::VecDeque;

use corecast_core::webrtc::{IceCredentials, WebRtcLeg};
use corecast_core::{
    BufferStats, Command, Event, Input, LegPreferences, LegRefusal, Output, PipeMessage, PipeSend, Router, RouterStats,
};
use corecast_proto::token::{CallId, ParticipantId};
use corecast_proto::{MediaKind, Ssrc};
use crossbeam_channel::{Receiver, Sender};
use crossbeam_queue::ArrayQueue;

use crate::net::{Datagram, IoBackend, IoStats};

/// An event from one worker.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    /// Which worker.
    pub worker: usize,
    /// What happened.
    pub event: Event,
}

/// Longest the loop waits in `recv` before looking at commands.
pub const COMMAND_POLL: Duration = Duration::from_millis(20);
/// Capacity of each pipe ring, in messages.
pub const PIPE_RING: usize = 16_384;
const WAKE: &[u8] = &[0xFF, b'w'];

/// Requests to a worker.
#[derive(Debug)]
pub enum WorkerCommand {
    /// A control-plane command for the core.
    Core(Command),
    /// Reply with a snapshot of the worker's calls.
    Snapshot(Sender<Vec<corecast_core::CallSnapshot>>),
    /// Reply with the worker's counters.
    Stats(Sender<WorkerStats>),
    /// Open a WebRTC leg; reply whether the core took it.
    OpenWebRtc(Box<WebRtcLeg>, Sender<Result<(), LegRefusal>>),
    /// Reply with the streams a participant produces here, if it is here.
    Streams(CallId, ParticipantId, Sender<Option<Vec<(Ssrc, MediaKind)>>>),
    /// The video codec a participant publishes, if known (`Router::video_codec_of`).
    VideoCodec(CallId, ParticipantId, Sender<Option<corecast_core::webrtc::Codec>>),
    /// Reply with the peer's ufrag of a WebRTC session (by the router's ufrag).
    RemoteUfrag(String, Sender<Option<String>>),
    /// ICE restart of a WebRTC session: the new credentials; reply whether it took.
    RestartIce(String, IceCredentials, Sender<bool>),
    /// A WebRTC session's new preferences (`Router::set_leg_preferences`); reply whether it took.
    Preferences(String, LegPreferences, Sender<bool>),
    /// Stop the loop.
    Stop,
}

/// Counters of one worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// The core's counters.
    pub router: RouterStats,
    /// The backend's counters.
    pub io: IoStats,
    /// Loop iterations that received something.
    pub batches: u64,
    /// Live calls.
    pub calls: usize,
    /// Admitted participants.
    pub participants: usize,
    /// What the core's buffers hold now (a gauge).
    pub buffers: BufferStats,
    /// Pipe messages handed to other workers.
    pub piped_out: u64,
    /// Pipe messages taken from other workers.
    pub piped_in: u64,
    /// Pipe media dropped because a ring was full.
    pub pipe_drops: u64,
    /// Pipe transports to other workers' shares of calls (a gauge).
    pub pipe_links: usize,
    /// Of those, links to other routers' shares of calls (cascading; a gauge).
    pub cascade_links: usize,
    /// Counters of the links to each other router, by its address.
    pub links: Vec<(std::net::SocketAddr, corecast_core::LinkStats)>,
    /// Time the loop spent on work rather than waiting in `recv`, summed
    /// over the load windows that ended (the overload protection's figure).
    pub busy: Duration,
    /// The last load window's busy share, in permille (a gauge).
    pub load_permille: u16,
}

/// One message in a pipe ring.
#[derive(Debug)]
pub struct PipeMsg {
    /// Sending worker.
    pub from: usize,
    /// The call.
    pub call: CallId,
    /// The message.
    pub message: PipeMessage,
}

type Ring = Arc<ArrayQueue<PipeMsg>>;

/// A worker's ends of the pipe rings.
#[derive(Debug, Default)]
pub struct PipeLinks {
    /// `outbound[w]`: ring to worker `w` (None for this worker).
    pub outbound: Vec<Option<Ring>>,
    /// Rings from every other worker.
    pub inbound: Vec<Ring>,
    /// Every worker's parked flag.
    pub parked: Arc<Vec<AtomicBool>>,
    /// Where to send a worker its wake datagram (also how wakes are recognised).
    pub wake_addrs: Vec<SocketAddr>,
}

impl PipeLinks {
    /// Builds the rings and flags for `n` workers; `wake_addrs` in index order.
    pub fn build(n: usize, wake_addrs: &[SocketAddr]) -> Vec<PipeLinks> {
        let rings: Vec<Vec<Option<Ring>>> = (0..n)
            .map(|from| (0..n).map(|to| (from != to).then(|| Arc::new(ArrayQueue::new(PIPE_RING)))).collect())
            .collect();
        let parked: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        (0..n)
            .map(|me| PipeLinks {
                outbound: rings[me].clone(),
                inbound: (0..n).filter(|&f| f != me).filter_map(|f| rings[f][me].clone()).collect(),
                parked: parked.clone(),
                wake_addrs: wake_addrs.to_vec(),
            })
            .collect()
    }
}

struct Worker {
    index: usize,
    backend: Box<dyn IoBackend>,
    router: Router,
    commands: Receiver<WorkerCommand>,
    events: Sender<ServerEvent>,
    pipes: PipeLinks,
    /// Control messages waiting for room in the ring to each worker.
    overflow: Vec<VecDeque<PipeMsg>>,
    wake: Vec<bool>,
    deadline: Instant,
    batches: u64,
    piped_out: u64,
    piped_in: u64,
    pipe_drops: u64,
    /// The load figure's window: when it started, and the time spent
    /// waiting in `recv` since (the rest is busy).
    load_since: Instant,
    idle: Duration,
    /// Busy time over every load window that ended, and the last window's share.
    busy_total: Duration,
    load_permille: u16,
}

/// How often the worker tells its core how busy it was (`Input::Load`).
const LOAD_WINDOW: Duration = Duration::from_secs(1);

/// Runs the loop until [`WorkerCommand::Stop`] or a fatal socket error.
pub fn run(
    index: usize,
    backend: Box<dyn IoBackend>,
    router: Router,
    commands: Receiver<WorkerCommand>,
    events: Sender<ServerEvent>,
    pipes: PipeLinks,
) -> std::io::Result<()> {
    let n = pipes.outbound.len();
    let mut w = Worker {
        index,
        backend,
        router,
        commands,
        events,
        pipes,
        overflow: (0..n).map(|_| VecDeque::new()).collect(),
        wake: vec![false; n],
        deadline: Instant::now() + COMMAND_POLL,
        batches: 0,
        piped_out: 0,
        piped_in: 0,
        pipe_drops: 0,
        load_since: Instant::now(),
        idle: Duration::ZERO,
        busy_total: Duration::ZERO,
        load_permille: 0,
    };
    w.run()
}

impl Worker {
    fn run(&mut self) -> std::io::Result<()> {
        let mut batch: Vec<Datagram> = Vec::with_capacity(256);
        loop {
            if !self.handle_commands()? {
                return Ok(());
            }
            self.take_piped();
            let now = Instant::now();
            let mut wait = self.deadline.saturating_duration_since(now).min(COMMAND_POLL);
            if let Some(p) = self.pipes.parked.get(self.index) {
                p.store(true, Ordering::SeqCst);
                if self.pipes.inbound.iter().any(|q| !q.is_empty()) || self.overflow.iter().any(|o| !o.is_empty()) {
                    wait = Duration::ZERO;
                }
            }
            batch.clear();
            let waiting = Instant::now();
            let n = self.backend.recv(Some(wait), &mut batch);
            let received = Instant::now();
            // Waiting time: a receive that returned packets at once was work, not waiting.
            if n.as_ref().is_ok_and(|&n| n == 0) || received.duration_since(waiting) >= Duration::from_micros(50) {
                self.idle += received.duration_since(waiting);
            }
            if received.duration_since(self.load_since) >= LOAD_WINDOW {
                let window = received.duration_since(self.load_since);
                let busy = (1.0 - self.idle.as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0);
                self.busy_total += window.saturating_sub(self.idle);
                self.load_permille = (busy * 1000.0).round() as u16;
                self.router.handle_input(received, Input::Load { busy_permille: self.load_permille });
                self.drain();
                self.load_since = received;
                self.idle = Duration::ZERO;
            }
            if let Some(p) = self.pipes.parked.get(self.index) {
                p.store(false, Ordering::SeqCst);
            }
            let n = n?;
            let now = Instant::now();
            if n > 0 {
                self.batches += 1;
                if !self.handle_commands()? {
                    return Ok(());
                }
                // A seat granted before a redirect must be seen before the redirected join.
                self.take_piped();
                for d in batch.drain(..) {
                    if d.contents.first() == Some(&0xFF) && self.pipes.wake_addrs.contains(&d.source) {
                        continue; // a wake from another worker
                    }
                    self.router.handle_input(now, Input::Receive { source: d.source, contents: d.contents });
                    self.drain();
                }
            }
            self.take_piped();
            if now >= self.deadline {
                self.router.handle_input(now, Input::Timeout);
                self.drain();
            }
            self.send_wakes();
            self.backend.flush()?;
        }
    }

    /// Handles pending commands; false on Stop.
    fn handle_commands(&mut self) -> std::io::Result<bool> {
        while let Ok(c) = self.commands.try_recv() {
            match c {
                WorkerCommand::Core(cmd) => {
                    self.router.handle_input(Instant::now(), Input::Command(cmd));
                    self.drain();
                    self.send_wakes();
                    self.backend.flush()?;
                }
                WorkerCommand::OpenWebRtc(leg, reply) => {
                    let r = self.router.open_webrtc(Instant::now(), *leg);
                    let _ = reply.send(r);
                    self.drain();
                    self.send_wakes();
                    self.backend.flush()?;
                }
                WorkerCommand::Streams(call, participant, reply) => {
                    let _ = reply.send(self.router.streams_of(call, participant));
                }
                WorkerCommand::VideoCodec(call, participant, reply) => {
                    let _ = reply.send(self.router.video_codec_of(call, participant));
                }
                WorkerCommand::RemoteUfrag(local, reply) => {
                    let _ = reply.send(self.router.webrtc_remote_ufrag(&local));
                }
                WorkerCommand::RestartIce(session, creds, reply) => {
                    let _ = reply.send(self.router.restart_ice(&session, creds));
                }
                WorkerCommand::Preferences(session, prefs, reply) => {
                    let _ = reply.send(self.router.set_leg_preferences(&session, prefs));
                }
                WorkerCommand::Snapshot(reply) => {
                    let _ = reply.send(self.router.snapshot());
                }
                WorkerCommand::Stats(reply) => {
                    let _ = reply.send(WorkerStats {
                        router: *self.router.stats(),
                        io: self.backend.stats(),
                        batches: self.batches,
                        calls: self.router.call_count(),
                        participants: self.router.participant_count(),
                        buffers: self.router.buffer_stats(),
                        piped_out: self.piped_out,
                        piped_in: self.piped_in,
                        pipe_drops: self.pipe_drops,
                        pipe_links: self.router.pipe_count(),
                        cascade_links: self.router.cascade_count(),
                        links: self.router.link_stats(),
                        busy: self.busy_total,
                        load_permille: self.load_permille,
                    });
                }
                WorkerCommand::Stop => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Feeds messages from other workers' rings to the core (bounded per
    /// turn), after retrying control messages that waited for room.
    fn take_piped(&mut self) {
        self.retry_overflow();
        let now = Instant::now();
        for qi in 0..self.pipes.inbound.len() {
            for _ in 0..1024 {
                let Some(m) = self.pipes.inbound[qi].pop() else { break };
                self.piped_in += 1;
                self.router.handle_input(now, Input::Pipe { from_worker: m.from, call: m.call, message: m.message });
                self.drain();
            }
        }
    }

    /// Moves every pending output of the core to the backend, the rings or the
    /// event channel, and records the core's next deadline.
    #[inline]
    fn drain(&mut self) {
        loop {
            match self.router.poll_output() {
                Output::Transmit(t) => self.backend.queue(t.destination, t.contents),
                Output::Pipe(p) => self.pipe(p),
                Output::Event(e) => {
                    let _ = self.events.try_send(ServerEvent { worker: self.index, event: e });
                }
                Output::Timeout(t) => {
                    self.deadline = t;
                    return;
                }
            }
        }
    }

    #[inline]
    fn pipe(&mut self, p: PipeSend) {
        let Some(Some(ring)) = self.pipes.outbound.get(p.worker) else {
            self.pipe_drops += 1;
            return;
        };
        let media = matches!(p.message, PipeMessage::Media(_));
        let msg = PipeMsg { from: self.index, call: p.call, message: p.message };
        let overflow = &mut self.overflow[p.worker];
        if overflow.is_empty() {
            match ring.push(msg) {
                Ok(()) => {
                    self.piped_out += 1;
                    self.wake[p.worker] = true;
                }
                Err(msg) if !media => overflow.push_back(msg),
                Err(_) => self.pipe_drops += 1,
            }
        } else if !media {
            overflow.push_back(msg);
        } else {
            self.pipe_drops += 1;
        }
    }

    fn retry_overflow(&mut self) {
        for (w, overflow) in self.overflow.iter_mut().enumerate() {
            let Some(Some(ring)) = self.pipes.outbound.get(w) else { continue };
            while let Some(msg) = overflow.pop_front() {
                if let Err(msg) = ring.push(msg) {
                    overflow.push_front(msg);
                    break;
                }
                self.piped_out += 1;
                self.wake[w] = true;
            }
        }
    }

    /// One wake datagram to each parked worker this turn pushed packets to.
    fn send_wakes(&mut self) {
        for w in 0..self.wake.len() {
            if std::mem::take(&mut self.wake[w]) && self.pipes.parked[w].load(Ordering::SeqCst) {
                self.backend.queue(self.pipes.wake_addrs[w], Bytes::from_static(WAKE));
            }
        }
    }
}

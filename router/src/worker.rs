//! One worker: a thread that owns one socket backend and one sans-IO router.
//!
//! The loop only moves bytes and timers: receive a batch, feed each datagram
//! to the core, queue what it says to transmit, flush once per batch. Control
//! commands arrive on a channel and are looked at before and after every
//! receive; the receive wait is bounded by the core's next deadline and by
//! [`COMMAND_POLL`].
//!
//! ## Relay rings (calls spread over workers)
//! Packets for another worker's share of a call go through a lock-free ring
//! per (from, to) pair of workers: each ring has exactly one producer thread
//! and one consumer thread, and carries the received `Bytes` itself, so the
//! packet is parsed once and never copied. A worker about to block in
//! `recv` sets its *parked* flag and re-checks its rings; a producer that
//! pushes to a parked worker's ring sends it one tiny wake datagram from its
//! own socket (first byte 0xFF, which no protocol on the port uses), so
//! relayed packets wait neither for a timer nor for polling.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corecast_core::{Command, Event, Input, Output, Router, RouterStats};
use corecast_proto::token::CallId;
use crossbeam_channel::{Receiver, Sender};
use crossbeam_queue::ArrayQueue;

use crate::net::{Datagram, IoBackend, IoStats};
use crate::server::ServerEvent;

/// Longest the loop waits in `recv` before looking at commands.
pub const COMMAND_POLL: Duration = Duration::from_millis(20);
/// Capacity of each relay ring, in packets.
pub const RELAY_RING: usize = 16_384;
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
    /// Stop the loop.
    Stop,
}

/// Counters of one worker.
#[derive(Debug, Clone, Copy, Default)]
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
    /// Packets handed to other workers.
    pub relayed_out: u64,
    /// Packets taken from other workers.
    pub relayed_in: u64,
    /// Packets dropped because a relay ring was full.
    pub relay_drops: u64,
}

/// One packet in a relay ring.
#[derive(Debug)]
pub struct RelayMsg {
    /// Sending worker.
    pub from: usize,
    /// The call.
    pub call: CallId,
    /// The packet.
    pub contents: Bytes,
}

/// A worker's ends of the relay rings.
#[derive(Debug, Default)]
pub struct RelayLinks {
    /// `outbound[w]`: ring to worker `w` (None for this worker).
    pub outbound: Vec<Option<Arc<ArrayQueue<RelayMsg>>>>,
    /// Rings from every other worker.
    pub inbound: Vec<Arc<ArrayQueue<RelayMsg>>>,
    /// Every worker's parked flag.
    pub parked: Arc<Vec<AtomicBool>>,
    /// Where to send a worker its wake datagram (also how wakes are recognised).
    pub wake_addrs: Vec<SocketAddr>,
    /// Every worker's command channel (to attach relays on the other side).
    pub peers: Vec<Sender<WorkerCommand>>,
}

impl RelayLinks {
    /// Builds the rings and flags for `n` workers; `peers` and `wake_addrs` in index order.
    pub fn build(n: usize, peers: &[Sender<WorkerCommand>], wake_addrs: &[SocketAddr]) -> Vec<RelayLinks> {
        let rings: Vec<Vec<Option<Arc<ArrayQueue<RelayMsg>>>>> = (0..n)
            .map(|from| (0..n).map(|to| (from != to).then(|| Arc::new(ArrayQueue::new(RELAY_RING)))).collect())
            .collect();
        let parked: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        (0..n)
            .map(|me| RelayLinks {
                outbound: rings[me].clone(),
                inbound: (0..n).filter(|&f| f != me).filter_map(|f| rings[f][me].clone()).collect(),
                parked: parked.clone(),
                wake_addrs: wake_addrs.to_vec(),
                peers: peers.to_vec(),
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
    relay: RelayLinks,
    wake: Vec<bool>,
    deadline: Instant,
    batches: u64,
    relayed_out: u64,
    relayed_in: u64,
    relay_drops: u64,
}

/// Runs the loop until [`WorkerCommand::Stop`] or a fatal socket error.
pub fn run(
    index: usize,
    backend: Box<dyn IoBackend>,
    router: Router,
    commands: Receiver<WorkerCommand>,
    events: Sender<ServerEvent>,
    relay: RelayLinks,
) -> std::io::Result<()> {
    let n = relay.outbound.len();
    let mut w = Worker {
        index,
        backend,
        router,
        commands,
        events,
        relay,
        wake: vec![false; n],
        deadline: Instant::now() + COMMAND_POLL,
        batches: 0,
        relayed_out: 0,
        relayed_in: 0,
        relay_drops: 0,
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
            self.take_relayed();
            let now = Instant::now();
            let mut wait = self.deadline.saturating_duration_since(now).min(COMMAND_POLL);
            if let Some(p) = self.relay.parked.get(self.index) {
                p.store(true, Ordering::SeqCst);
                if self.relay.inbound.iter().any(|q| !q.is_empty()) {
                    wait = Duration::ZERO;
                }
            }
            batch.clear();
            let n = self.backend.recv(Some(wait), &mut batch);
            if let Some(p) = self.relay.parked.get(self.index) {
                p.store(false, Ordering::SeqCst);
            }
            let n = n?;
            let now = Instant::now();
            if n > 0 {
                self.batches += 1;
                // A relay attachment sent before a redirect must be seen before the redirected join.
                if !self.handle_commands()? {
                    return Ok(());
                }
                for d in batch.drain(..) {
                    if d.contents.first() == Some(&0xFF) && self.relay.wake_addrs.contains(&d.source) {
                        continue; // a wake from another worker
                    }
                    self.router.handle_input(now, Input::Receive { source: d.source, contents: d.contents });
                    self.drain();
                }
            }
            self.take_relayed();
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
                        relayed_out: self.relayed_out,
                        relayed_in: self.relayed_in,
                        relay_drops: self.relay_drops,
                    });
                }
                WorkerCommand::Stop => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Feeds packets from other workers' rings to the core (bounded per turn).
    fn take_relayed(&mut self) {
        let now = Instant::now();
        for qi in 0..self.relay.inbound.len() {
            for _ in 0..1024 {
                let Some(m) = self.relay.inbound[qi].pop() else { break };
                self.relayed_in += 1;
                self.router
                    .handle_input(now, Input::Relayed { from_worker: m.from, call: m.call, contents: m.contents });
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
                Output::Relay(r) => {
                    let msg = RelayMsg { from: self.index, call: r.call, contents: r.contents };
                    match self.relay.outbound.get(r.worker).and_then(|q| q.as_ref()) {
                        Some(q) if q.push(msg).is_ok() => {
                            self.relayed_out += 1;
                            self.wake[r.worker] = true;
                        }
                        _ => self.relay_drops += 1,
                    }
                }
                Output::Event(e) => {
                    match &e {
                        Event::RelayNeeded { call, worker } => {
                            self.tell(*worker, Command::AttachRelay { call: *call, worker: self.index })
                        }
                        Event::RelayClosed { call, worker } => {
                            self.tell(*worker, Command::DetachRelay { call: *call, worker: self.index })
                        }
                        _ => {}
                    }
                    let _ = self.events.try_send(ServerEvent { worker: self.index, event: e });
                }
                Output::Timeout(t) => {
                    self.deadline = t;
                    return;
                }
            }
        }
    }

    fn tell(&self, worker: usize, cmd: Command) {
        if let Some(p) = self.relay.peers.get(worker) {
            let _ = p.send(WorkerCommand::Core(cmd));
        }
    }

    /// One wake datagram to each parked worker this turn pushed packets to.
    fn send_wakes(&mut self) {
        for w in 0..self.wake.len() {
            if std::mem::take(&mut self.wake[w]) && self.relay.parked[w].load(Ordering::SeqCst) {
                self.backend.queue(self.relay.wake_addrs[w], Bytes::from_static(WAKE));
            }
        }
    }
}

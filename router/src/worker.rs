//! One worker: a thread that owns one socket backend and one sans-IO router.
//!
//! The loop only moves bytes and timers: receive a batch, feed each datagram
//! to the core, queue what it says to transmit, flush once per batch. Control
//! commands arrive on a channel and are looked at once per loop turn; the
//! receive wait is bounded by the core's next deadline and by
//! [`COMMAND_POLL`], so a command never waits longer than that.

use std::time::{Duration, Instant};

use corecast_core::{Command, Input, Output, Router, RouterStats};
use crossbeam_channel::{Receiver, Sender};

use crate::net::{Datagram, IoBackend, IoStats};
use crate::server::ServerEvent;

/// Longest the loop waits in `recv` before looking at commands.
pub const COMMAND_POLL: Duration = Duration::from_millis(20);

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
}

/// Runs the loop until [`WorkerCommand::Stop`] or a fatal socket error.
pub fn run(
    index: usize,
    mut backend: Box<dyn IoBackend>,
    mut router: Router,
    commands: Receiver<WorkerCommand>,
    events: Sender<ServerEvent>,
) -> std::io::Result<()> {
    let mut batch: Vec<Datagram> = Vec::with_capacity(256);
    let mut deadline = Instant::now() + COMMAND_POLL;
    let mut batches = 0u64;
    loop {
        // Commands first: they are rare and cheap to check.
        while let Ok(c) = commands.try_recv() {
            let now = Instant::now();
            match c {
                WorkerCommand::Core(cmd) => {
                    router.handle_input(now, Input::Command(cmd));
                    deadline = drain(&mut router, backend.as_mut(), &events, index);
                    backend.flush()?;
                }
                WorkerCommand::Snapshot(reply) => {
                    let _ = reply.send(router.snapshot());
                }
                WorkerCommand::Stats(reply) => {
                    let _ = reply.send(WorkerStats {
                        router: *router.stats(),
                        io: backend.stats(),
                        batches,
                        calls: router.call_count(),
                        participants: router.participant_count(),
                    });
                }
                WorkerCommand::Stop => return Ok(()),
            }
        }
        let now = Instant::now();
        let wait = deadline.saturating_duration_since(now).min(COMMAND_POLL);
        batch.clear();
        let n = backend.recv(Some(wait), &mut batch)?;
        let now = Instant::now();
        if n > 0 {
            batches += 1;
            for d in batch.drain(..) {
                router.handle_input(now, Input::Receive { source: d.source, contents: d.contents });
                deadline = drain(&mut router, backend.as_mut(), &events, index);
            }
        }
        if now >= deadline {
            router.handle_input(now, Input::Timeout);
            deadline = drain(&mut router, backend.as_mut(), &events, index);
        }
        backend.flush()?;
    }
}

/// Moves every pending output of the core to the backend or the event channel
/// and returns the core's next deadline.
#[inline]
fn drain(router: &mut Router, backend: &mut dyn IoBackend, events: &Sender<ServerEvent>, index: usize) -> Instant {
    loop {
        match router.poll_output() {
            Output::Transmit(t) => backend.queue(t.destination, t.contents),
            Output::Event(e) => {
                let _ = events.try_send(ServerEvent { worker: index, event: e });
            }
            Output::Timeout(t) => return t,
        }
    }
}

//! Socket I/O backends.
//!
//! The worker loop (see `worker.rs`) is the same for every backend: wait for a
//! batch of datagrams, hand each to the sans-IO [`corecast_core::Router`], queue
//! every transmit it produces, then flush. A backend only moves bytes:
//!
//! - [`basic`]: one `recv_from`/`send_to` per datagram on a std socket; the
//!   simplest possible backend, kept as the reference for correctness;
//! - `mmsg`: `recvmmsg`/`sendmmsg` with UDP GRO and GSO (issue 4);
//! - `uring`: io_uring with multishot `recvmsg` and a provided-buffer ring (issue 4).
//!
//! All `unsafe` code of the router lives under this module.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub mod basic;

/// One received datagram.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// Where it came from.
    pub source: SocketAddr,
    /// Its bytes (a GRO super-datagram arrives already split).
    pub contents: Bytes,
}

/// Counters a backend keeps (plain integers: a backend belongs to one thread).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Datagrams received.
    pub recv_datagrams: u64,
    /// Receive system calls (or completions) that returned data.
    pub recv_calls: u64,
    /// Datagrams sent.
    pub sent_datagrams: u64,
    /// Send system calls (or submissions) made.
    pub send_calls: u64,
    /// Sends that carried several datagrams as one GSO buffer.
    pub gso_sends: u64,
    /// GSO sends refused by the kernel and retried as plain sends.
    pub gso_fallbacks: u64,
    /// Datagrams that could not be sent (dropped).
    pub send_errors: u64,
    /// Datagrams dropped on receive (buffer exhaustion, truncation).
    pub recv_drops: u64,
}

/// A UDP socket driver the worker loop runs on.
pub trait IoBackend: Send {
    /// Short name for logs and bench output (`basic`, `mmsg`, `uring`).
    fn name(&self) -> &'static str;
    /// Address the socket is bound to.
    fn local_addr(&self) -> SocketAddr;
    /// Waits at most `timeout` (forever if `None`) for datagrams, appends what
    /// arrived to `out`, and returns how many were appended (0 on timeout).
    fn recv(&mut self, timeout: Option<Duration>, out: &mut Vec<Datagram>) -> io::Result<usize>;
    /// Queues a datagram for the next [`flush`](Self::flush). Datagrams for the
    /// same destination keep their order.
    fn queue(&mut self, destination: SocketAddr, contents: Bytes);
    /// Sends everything queued. Send errors for single datagrams are counted
    /// and dropped, not returned: UDP is lossy and one bad peer must not stop
    /// the loop.
    fn flush(&mut self) -> io::Result<()>;
    /// Counters so far.
    fn stats(&self) -> IoStats;
}

//! Socket I/O backends.
//!
//! The worker loop (see `worker.rs`) is the same for every backend: wait for a
//! batch of datagrams, hand each to the sans-IO [`corecast_core::Router`], queue
//! every transmit it produces, then flush. A backend only moves bytes:
//!
//! - [`basic`]: one `recv_from`/`send_to` per datagram on a std socket; the
//!   simplest possible backend, kept as the reference for correctness;
//! - [`mmsg`]: `recvmmsg`/`sendmmsg` with UDP GRO and GSO; what `Auto` runs
//!   when the kernel has UDP GSO;
//! - [`uring`]: io_uring with multishot `recvmsg` and a provided-buffer ring;
//!   what `Auto` runs without UDP GSO, where it moved more packets per core
//!   (the measurements are under [`open`]);
//! - [`xdp`]: AF_XDP kernel bypass with the router's own XDP program and its
//!   own Ethernet/IPv4/UDP framing; only when asked for (`xdp`), never by `Auto`.
//!
//! The fast backends share [`plan`] (grouping a flush's datagrams by
//! destination into GSO runs), [`msghdr`] (the `msghdr`s and GSO control
//! messages of a batch, also used by the bench's reference forwarders) and
//! [`sock`] (socket setup, addresses, control message parsing, fallback sends).
//!
//! [`open`] picks one ([`BackendKind`], overridable with `CORECAST_BACKEND`)
//! and logs which runs and why. `CORECAST_GSO=0` / `CORECAST_GRO=0` turn UDP
//! GSO / GRO off.
//!
//! Datagrams a fast backend returns share one allocation per received batch:
//! drop them (and clear the `recv` output vector) before the next `recv` so
//! the backend can reuse its memory, and copy any datagram kept for long.
//!
//! All `unsafe` code of the router lives under this module.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub mod basic;
pub mod mmsg;
pub mod msghdr;
pub mod plan;
pub mod sock;
pub mod uring;
pub mod xdp;

pub use sock::SocketOptions;

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
    /// Times the io_uring provided-buffer ring ran out (the receive was
    /// re-armed; datagrams wait in the socket buffer meanwhile, and any the
    /// socket buffer could not hold are counted in `recv_drops`).
    pub recv_ring_exhausted: u64,
    /// Of `recv_datagrams`, those that came through AF_XDP (`xdp` backend;
    /// the rest came through its kernel socket).
    pub xdp_recv_datagrams: u64,
    /// Of `sent_datagrams`, those framed and sent through AF_XDP.
    pub xdp_sent_datagrams: u64,
}

/// A UDP socket driver the worker loop runs on.
pub trait IoBackend: Send {
    /// Short name for logs and bench output (`basic`, `mmsg`, `uring`, `xdp`).
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
    /// One line for logs: the name and the kernel features in use.
    fn describe(&self) -> String {
        self.name().to_string()
    }
}

/// Which backend [`open`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The fastest one that works here (see [`open`]).
    #[default]
    Auto,
    /// [`basic::BasicBackend`].
    Basic,
    /// [`mmsg::MmsgBackend`].
    Mmsg,
    /// [`uring::UringBackend`].
    Uring,
    /// [`xdp::XdpBackend`] (AF_XDP; an error, not a fallback, when the
    /// kernel or the NIC refuses it).
    Xdp,
}

impl BackendKind {
    /// The name [`FromStr`](std::str::FromStr) takes (`auto`, `basic`, `mmsg`, `uring`, `xdp`).
    pub fn name(&self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Basic => "basic",
            BackendKind::Mmsg => "mmsg",
            BackendKind::Uring => "uring",
            BackendKind::Xdp => "xdp",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = io::Error;
    fn from_str(s: &str) -> io::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendKind::Auto),
            "basic" => Ok(BackendKind::Basic),
            "mmsg" => Ok(BackendKind::Mmsg),
            "uring" | "io_uring" | "io-uring" => Ok(BackendKind::Uring),
            "xdp" | "af_xdp" | "af-xdp" => Ok(BackendKind::Xdp),
            other => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unknown backend {other:?}"))),
        }
    }
}

/// Options of [`open`].
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Socket options.
    pub socket: SocketOptions,
    /// Receive with UDP GRO when the kernel supports it (`CORECAST_GRO=0` turns it off).
    pub gro: bool,
    /// Send with UDP GSO when the kernel supports it (`CORECAST_GSO=0` turns it off).
    pub gso: bool,
    /// Most datagrams (or GRO super-datagrams) received per batch.
    pub batch: usize,
    /// Largest datagram received without GRO (longer ones are dropped and counted).
    pub max_datagram: usize,
    /// Largest datagram sent as a GSO segment; longer ones go as plain sends.
    /// A segment must fit the path MTU (1472 = 1500 - IPv4 - UDP headers);
    /// raise it for jumbo frames or loopback.
    pub gso_max_segment: usize,
    /// io_uring: buffers in the provided-buffer ring (a power of two, at most 32768).
    pub ring_buffers: u16,
    /// io_uring: submission queue entries.
    pub ring_entries: u32,
    /// Test hook: the first this-many GSO sends fail as if the kernel returned EIO.
    #[doc(hidden)]
    pub fail_gso_sends: u32,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            socket: SocketOptions::default(),
            gro: true,
            gso: true,
            batch: 64,
            max_datagram: 2048,
            gso_max_segment: 1472,
            ring_buffers: 1024,
            ring_entries: 1024,
            fail_gso_sends: 0,
        }
    }
}

impl BackendOptions {
    /// Applies `CORECAST_GSO` / `CORECAST_GRO` from the environment.
    pub fn with_env(mut self) -> Self {
        if let Some(v) = sock::env_flag("CORECAST_GSO") {
            self.gso = self.gso && v;
        }
        if let Some(v) = sock::env_flag("CORECAST_GRO") {
            self.gro = self.gro && v;
        }
        self
    }
}

/// Opens a UDP socket on `addr` and wraps it in a backend.
///
/// `CORECAST_BACKEND=basic|mmsg|uring|xdp|auto` overrides `kind`; `CORECAST_GSO=0`
/// and `CORECAST_GRO=0` override `opts`. If io_uring is asked for but the
/// kernel lacks what it needs (probed at startup), `mmsg` runs instead.
///
/// `Auto` picks by what `corecast-bench fanout` measured on these VMs (2 vCPU,
/// loopback, 1200-byte packets, 8 per frame, fan-out 3; egress packets per
/// second of forwarder CPU; paired alternating 2 s runs on a shared machine,
/// run-to-run spread ±20%):
/// - with GSO (the default) mmsg and uring tie: at 288k pps out, means of
///   three sets mmsg 1.13M / 1.05M / 1.21M, uring 1.02M / 1.07M / 1.17M; at
///   432k mmsg 1.61M vs uring 1.43M; at ≈450k uring 1.65M vs mmsg 1.45M; at a
///   light 86k uring's smaller batches cost it (0.46M vs 0.82M). On a tie mmsg
///   wins: no memory shared with the kernel, no one-thread-per-ring rule;
/// - without GSO (kernel without `UDP_SEGMENT`, or `CORECAST_GSO=0`) uring is
///   ahead: at 144k pps out mmsg 292k / 302k vs uring 341k / 364k per core,
///   and when the core saturates (288k offered) uring forwarded 282k with 2%
///   loss where mmsg managed 184k with 36% loss; so `Auto` takes uring then,
///   when the probe passes.
///
/// (io_uring has been measured 5–25% slower than recvmmsg/sendmmsg for UDP
/// elsewhere, and mediasoup dropped its io_uring path for that reason. These
/// backends did not reproduce that, which is why the choice is made here,
/// from the figures above, and logged.)
pub fn open(kind: BackendKind, addr: SocketAddr, opts: &BackendOptions) -> io::Result<Box<dyn IoBackend>> {
    let (kind, why) = match std::env::var("CORECAST_BACKEND") {
        Ok(v) if !v.trim().is_empty() => (v.parse::<BackendKind>()?, "CORECAST_BACKEND"),
        _ => (kind, "configuration"),
    };
    let opts = opts.clone().with_env();
    let socket = sock::bind(addr, &opts.socket)?;
    let (kind, why) = match kind {
        BackendKind::Auto if opts.gso && sock::probe_gso(std::os::fd::AsRawFd::as_raw_fd(&socket)) => {
            (BackendKind::Mmsg, "auto: with UDP GSO, recvmmsg/sendmmsg is as fast as io_uring here and simpler")
        }
        BackendKind::Auto => (BackendKind::Uring, "auto: without UDP GSO, io_uring moves more packets per core here"),
        k => (k, why),
    };
    let backend: Box<dyn IoBackend> = match kind {
        BackendKind::Basic => Box::new(basic::BasicBackend::new(socket)?),
        BackendKind::Xdp => Box::new(
            xdp::XdpBackend::new(socket, &opts)
                .map_err(|e| io::Error::new(e.kind(), format!("xdp backend on {addr}: {e}")))?,
        ),
        BackendKind::Mmsg | BackendKind::Auto => Box::new(mmsg::MmsgBackend::new(socket, &opts)?),
        BackendKind::Uring => {
            // The ring gets a duplicate of the socket, so a failure leaves the
            // original for the fallback.
            match uring::probe().and_then(|()| uring::UringBackend::new(socket.try_clone()?, &opts)) {
                Ok(b) => Box::new(b),
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable; falling back to mmsg");
                    Box::new(mmsg::MmsgBackend::new(socket, &opts)?)
                }
            }
        }
    };
    tracing::info!(backend = %backend.describe(), reason = why, local = %backend.local_addr(), "socket backend");
    Ok(backend)
}

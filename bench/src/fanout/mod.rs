//! `corecast-bench fanout`: forwarding cost per router core.
//!
//! A load generator sends paced synthetic RTP frames (several equal-size
//! packets per frame) from every participant of every call over loopback;
//! the forwarder under test sends each packet to the call's other
//! participants; receivers count loss and one-way latency from a send
//! timestamp in the payload. The latency ends at the kernel's receive
//! timestamp on the client socket (`SO_TIMESTAMPNS`), so it is the
//! forwarding latency and leaves out how long the bench's receiving thread
//! waits for a CPU; `p99_app_latency_us` is the same up to that thread's
//! read. The forwarder's threads' CPU time comes from
//! `/proc/self/task/<tid>/schedstat`, so the headline figure is
//! **egress packets per second of router CPU** ("per core"), which does not
//! depend on how busy the load generator keeps the shared machine.
//!
//! The same load runs, in the same invocation, through:
//! - **corecast itself**: a [`RouterServer`] with its sans-IO core and worker
//!   loop on each socket backend (every client joins with a signed token and
//!   sends RTP with its own SSRC, exactly as a real client does);
//! - with `--backend-loops`, the bare socket backends driven by
//!   [`forward_with_backend`] (a trivial fan-out loop with no core): the
//!   difference to the row above is what the core costs;
//! - an *ideal forwarder*: the simplest `recvmmsg`/`sendmmsg` loop with no
//!   logic beyond the fan-out table, and its GSO variant (one `UDP_SEGMENT`
//!   send per receiver per batch): the kernel's ceiling;
//! - a *naive forwarder*: tokio `recv_from`/`send_to`.
//!
//! Results are printed as ratios to the ideal (plain mmsg) forwarder; `--json`
//! prints them as JSON on stdout (the table then goes to stderr): the first
//! router run's figures at the top level, every run under `runs`.
//!
//! `--sweep` finds the loss onset of the first router configuration by
//! raising the frame rate ×1.5 a step and bisecting between the last clean
//! and the first lossy rate, then runs at 80% of that rate (JSON `sweep`).
//!
//! With `--pin` the forwarder's threads are pinned to CPUs 0..`--router-cores`
//! and the load generator's to the CPUs after them, so that the two do not
//! preempt each other (on 2 vCPUs the generator then limits the load); the
//! forwarder's CPU time is then its CPUs' whole busy time (`/proc/stat`:
//! the loopback softirq work the kernel defers to `ksoftirqd` included),
//! or its threads' time if that is larger.
//!
//! On loopback the receiving socket's kernel work runs in the sender's system
//! call, so each forwarder's CPU includes delivering to the clients' sockets
//! (the clients receive with GRO so GSO sends stay whole); absolute figures
//! are for comparing forwarders on one machine.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use corecast_client::client::ssrcs_for;
use corecast_client::Client;
use corecast_core::RouterConfig;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId};
use corecast_router::net::basic::BasicBackend;
use corecast_router::net::mmsg::MmsgBackend;
use corecast_router::net::sock::{self, CmsgBuf, RawAddr, SocketOptions, GSO_CMSG_SPACE};
use corecast_router::net::uring::{self, UringBackend};
use corecast_router::net::{BackendKind, BackendOptions, IoBackend, IoStats};
use corecast_router::server::{RouterServer, ServerConfig};
use serde_json::{json, Value};

/// Options of `corecast-bench fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Concurrent calls.
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
    /// Participants per call (each receives the other participants' packets).
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Receivers of each packet (sets `--participants` to this + 1).
    #[arg(long)]
    pub fanout: Option<usize>,
    /// Frames per second each participant sends.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Packets per frame (equal size, as a paced client splits a frame).
    #[arg(long, default_value_t = 8)]
    pub packets_per_frame: usize,
    /// Packet size in bytes (at least 32).
    #[arg(long, default_value_t = 1200)]
    pub packet_size: usize,
    /// Forwarder threads (one socket each, SO_REUSEPORT on one address).
    #[arg(long, default_value_t = 1)]
    pub router_cores: usize,
    /// Router backend: auto, basic, mmsg, uring, or all (mmsg, mmsg+gso, uring, uring+gso).
    #[arg(long, default_value = "all")]
    pub backend: String,
    /// Also run the bare socket backends under a trivial fan-out loop (no core).
    #[arg(long)]
    pub backend_loops: bool,
    /// Do not use UDP GSO in the router backends (ignored for `all`).
    #[arg(long)]
    pub no_gso: bool,
    /// Seconds of load per configuration (at most 30).
    #[arg(long, alias = "seconds", default_value_t = 3.0)]
    pub duration: f64,
    /// Skip the ideal and naive reference forwarders.
    #[arg(long)]
    pub no_references: bool,
    /// Print JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Pin the forwarder's threads to CPUs 0..router-cores and the load
    /// generator's to the CPUs after them (when there are more CPUs than
    /// router cores), as the latency target assumes; router CPU time
    /// is then the router CPUs' whole busy time from `/proc/stat`. Off by
    /// default: on a 2-vCPU machine one CPU cannot offer more than about
    /// 350k packets/s out, so for throughput the generator, not the router,
    /// limits (unless with `--sender-gso`).
    #[arg(long)]
    pub pin: bool,
    /// Also find where loss starts for the first router configuration (frame
    /// rate raised ×1.5 a step, at most 8 steps, until loss exceeds 0.1%, then
    /// narrowed down by bisection, at most 3 more steps), then run it at 80%
    /// of that rate.
    #[arg(long)]
    pub sweep: bool,
    /// Also write a report into this directory: `fanout.md` (the command,
    /// the host, the tables), `fanout.json`, and SVG plots of packets/s per
    /// core, latency by percentile and, with `--sweep`, delivered against
    /// offered rate and p99 against delivered rate.
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
    /// The load generator sends each frame as one UDP GSO send (instead of
    /// one datagram per packet), so one generator CPU offers several times
    /// more. On loopback the forwarder then receives a frame as one
    /// coalesced datagram (GRO) or as its segments, as a NIC with GRO
    /// would deliver a burst of one client's packets; for finding loss
    /// onsets beyond what per-datagram sending can offer.
    #[arg(long)]
    pub sender_gso: bool,
}

// ---------------------------------------------------------------------------
// fan-out table

/// Which addresses are in which call: the whole "logic" of the stand-in router.
#[derive(Debug, Clone, Default)]
pub struct FanoutTable {
    index: HashMap<SocketAddr, u32>,
    call_of: Vec<u32>,
    calls: Vec<Vec<u32>>,
    addrs: Vec<SocketAddr>,
    raw: Vec<RawAddr>,
}

impl FanoutTable {
    /// Builds the table from each call's member addresses.
    pub fn new(calls: &[Vec<SocketAddr>]) -> Self {
        let mut t = FanoutTable::default();
        for (c, members) in calls.iter().enumerate() {
            let mut ids = Vec::new();
            for a in members {
                let id = t.addrs.len() as u32;
                t.index.insert(*a, id);
                t.call_of.push(c as u32);
                t.addrs.push(*a);
                t.raw.push(RawAddr::new(*a, false));
                ids.push(id);
            }
            t.calls.push(ids);
        }
        t
    }

    /// The member id of `source` and the ids of its call's members (itself included).
    pub fn lookup(&self, source: &SocketAddr) -> Option<(u32, &[u32])> {
        let id = *self.index.get(source)?;
        Some((id, &self.calls[self.call_of[id as usize] as usize]))
    }

    /// Address of member `id`.
    pub fn addr(&self, id: u32) -> SocketAddr {
        self.addrs[id as usize]
    }
}

/// The stand-in for the router's worker loop: receive a batch, queue every
/// packet to the other members of its call, flush. Measures a backend
/// without the core (`--backend-loops`); the `corecast-*` rows run the real
/// worker and core.
pub fn forward_with_backend(backend: &mut dyn IoBackend, table: &FanoutTable, stop: &AtomicBool) -> io::Result<()> {
    let mut batch = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        backend.recv(Some(Duration::from_millis(20)), &mut batch)?;
        for d in batch.drain(..) {
            if let Some((me, members)) = table.lookup(&d.source) {
                for &m in members {
                    if m != me {
                        backend.queue(table.addr(m), d.contents.clone());
                    }
                }
            }
        }
        backend.flush()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// reference forwarders

/// The ideal forwarder: `recvmmsg` into fixed buffers, one `sendmmsg` per
/// batch pointing straight at them; with `gso`, the packets of one batch for
/// one receiver go as `UDP_SEGMENT` runs. No per-packet logic but the lookup.
fn ideal_forwarder(socket: UdpSocket, table: &FanoutTable, gso: bool, stop: &AtomicBool) -> io::Result<IoStats> {
    const BATCH: usize = 64;
    const SLOT: usize = 2048;
    let fd = socket.as_raw_fd();
    let mut stats = IoStats::default();
    let mut bufs = vec![0u8; BATCH * SLOT];
    // SAFETY: these libc structs are plain old data; all-zero is valid.
    let (z_mmsg, z_iov, z_name) = unsafe {
        (mem::zeroed::<libc::mmsghdr>(), mem::zeroed::<libc::iovec>(), mem::zeroed::<libc::sockaddr_storage>())
    };
    let mut rmsgs = vec![z_mmsg; BATCH];
    let mut riov = vec![z_iov; BATCH];
    let mut names = vec![z_name; BATCH];
    let mut src_ids = vec![0u32; BATCH];
    let mut siov: Vec<libc::iovec> = Vec::new();
    let mut smsgs: Vec<libc::mmsghdr> = Vec::new();
    let mut cmsgs: Vec<CmsgBuf<GSO_CMSG_SPACE>> = Vec::new();
    let mut runs: Vec<(u32, usize, usize, u16)> = Vec::new(); // (dest, iov start, count, segment)
    let mut per_dest: Vec<Vec<u32>> = vec![Vec::new(); table.addrs.len()];
    let mut touched: Vec<u32> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if !sock::wait_fd(fd, libc::POLLIN, Some(Duration::from_millis(20)))? {
            continue;
        }
        for i in 0..BATCH {
            riov[i] = libc::iovec { iov_base: bufs[i * SLOT..].as_mut_ptr().cast(), iov_len: SLOT };
            let h = &mut rmsgs[i].msg_hdr;
            h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut riov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every msghdr points at live buffers of the lengths given.
        let n = unsafe { libc::recvmmsg(fd, rmsgs.as_mut_ptr(), BATCH as _, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        stats.recv_calls += 1;
        stats.recv_datagrams += n as u64;
        for i in 0..n {
            // SAFETY: the kernel wrote a socket address of msg_namelen bytes into names[i].
            let src = unsafe {
                sock::sockaddr_to_std(
                    (&names[i] as *const libc::sockaddr_storage).cast(),
                    rmsgs[i].msg_hdr.msg_namelen as usize,
                )
            };
            src_ids[i] = src.and_then(|s| table.index.get(&s).copied()).unwrap_or(u32::MAX);
            riov[i].iov_len = rmsgs[i].msg_len as usize;
        }
        siov.clear();
        smsgs.clear();
        cmsgs.clear();
        runs.clear();
        if gso {
            for (i, &src) in src_ids.iter().enumerate().take(n) {
                if src == u32::MAX {
                    continue;
                }
                for &m in &table.calls[table.call_of[src as usize] as usize] {
                    if m != src {
                        if per_dest[m as usize].is_empty() {
                            touched.push(m);
                        }
                        per_dest[m as usize].push(i as u32);
                    }
                }
            }
            for &m in &touched {
                let list = &per_dest[m as usize];
                let mut k = 0;
                while k < list.len() {
                    let seg = riov[list[k] as usize].iov_len;
                    let start = siov.len();
                    let mut count = 0;
                    while k < list.len() && count < 64 {
                        let len = riov[list[k] as usize].iov_len;
                        if len > seg || (count > 0 && len == 0) {
                            break;
                        }
                        siov.push(riov[list[k] as usize]);
                        count += 1;
                        k += 1;
                        if len < seg {
                            break;
                        }
                    }
                    runs.push((m, start, count, if count > 1 { seg as u16 } else { 0 }));
                    if runs.last().is_some_and(|r| r.3 != 0) {
                        let mut c = CmsgBuf::default();
                        sock::write_gso_cmsg(&mut c, seg as u16);
                        cmsgs.push(c);
                    }
                }
            }
            for &m in &touched {
                per_dest[m as usize].clear();
            }
            touched.clear();
        } else {
            for (i, &src) in src_ids.iter().enumerate().take(n) {
                if src == u32::MAX {
                    continue;
                }
                for &m in &table.calls[table.call_of[src as usize] as usize] {
                    if m != src {
                        runs.push((m, i, 1, 0));
                    }
                }
            }
        }
        let mut c = 0;
        for &(m, start, count, seg) in &runs {
            // SAFETY: msghdr is plain old data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            let a = &table.raw[m as usize];
            h.msg_name = &a.storage as *const libc::sockaddr_storage as *mut libc::c_void;
            h.msg_namelen = a.len;
            h.msg_iov = if gso { siov[start..].as_mut_ptr() } else { riov[start..].as_mut_ptr() };
            h.msg_iovlen = count as _;
            if seg != 0 {
                h.msg_control = cmsgs[c].0.as_mut_ptr().cast();
                h.msg_controllen = GSO_CMSG_SPACE as _;
                c += 1;
                stats.gso_sends += 1;
            }
            smsgs.push(libc::mmsghdr { msg_hdr: h, msg_len: 0 });
            stats.sent_datagrams += count as u64;
        }
        let mut i = 0;
        while i < smsgs.len() {
            let end = (i + 1024).min(smsgs.len());
            stats.send_calls += 1;
            // SAFETY: the messages point at the receive buffers, iovecs, addresses
            // and control buffers above, all alive and unchanged during the call.
            let r = unsafe { libc::sendmmsg(fd, smsgs[i..].as_mut_ptr(), (end - i) as _, 0) };
            if r > 0 {
                i += r as usize;
            } else {
                stats.send_errors += 1;
                i += 1;
            }
        }
    }
    Ok(stats)
}

/// The naive forwarder: tokio `recv_from` / `send_to`, one await per packet.
fn naive_forwarder(socket: UdpSocket, table: &FanoutTable, stop: &AtomicBool) -> io::Result<IoStats> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        socket.set_nonblocking(true)?;
        let s = tokio::net::UdpSocket::from_std(socket)?;
        let mut stats = IoStats::default();
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok(r) = tokio::time::timeout(Duration::from_millis(20), s.recv_from(&mut buf)).await else { continue };
            let Ok((len, src)) = r else { continue };
            stats.recv_datagrams += 1;
            if let Some((me, members)) = table.lookup(&src) {
                for &m in members {
                    if m != me {
                        stats.send_calls += 1;
                        match s.send_to(&buf[..len], table.addr(m)).await {
                            Ok(_) => stats.sent_datagrams += 1,
                            Err(_) => stats.send_errors += 1,
                        }
                    }
                }
            }
        }
        Ok(stats)
    })
}

// ---------------------------------------------------------------------------
// load generator

/// What forwards the load in one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarder {
    /// The real router (core + worker loop) on a backend.
    Corecast {
        kind: BackendKind,
        gso: bool,
    },
    /// A bare backend under [`forward_with_backend`].
    Router {
        kind: BackendKind,
        gso: bool,
    },
    Ideal {
        gso: bool,
    },
    Naive,
}

impl Forwarder {
    fn label(&self) -> String {
        let backend = |kind: &BackendKind, gso: bool| {
            let k = match kind {
                BackendKind::Auto => "auto",
                BackendKind::Basic => "basic",
                BackendKind::Mmsg => "mmsg",
                BackendKind::Uring => "uring",
            };
            if gso && *kind != BackendKind::Basic {
                format!("{k}+gso")
            } else {
                k.to_string()
            }
        };
        match self {
            Forwarder::Corecast { kind, gso } => format!("corecast-{}", backend(kind, *gso)),
            Forwarder::Router { kind, gso } => format!("loop-{}", backend(kind, *gso)),
            Forwarder::Ideal { gso: false } => "ideal-mmsg".into(),
            Forwarder::Ideal { gso: true } => "ideal-mmsg+gso".into(),
            Forwarder::Naive => "naive-tokio".into(),
        }
    }
}

/// Figures of one configuration.
#[derive(Debug, Clone, Default)]
struct Measured {
    label: String,
    sent: u64,
    expected: u64,
    received: u64,
    /// Router CPU time the per-core figure uses.
    cpu_s: f64,
    /// CPU time of the router's threads alone (schedstat).
    thread_cpu_s: f64,
    /// Where `cpu_s` comes from.
    cpu_from: &'static str,
    wall_s: f64,
    /// Forwarding latency: from the load generator's send call to the
    /// kernel's receive timestamp on the client socket (sorted).
    lat_us: Vec<u32>,
    /// The same up to the receiving thread reading the packet (sorted): adds
    /// the load generator's own scheduling on the shared CPUs.
    app_lat_us: Vec<u32>,
    io: IoStats,
    note: String,
}

impl Measured {
    fn egress_pps(&self) -> f64 {
        self.received as f64 / self.wall_s.max(1e-9)
    }
    fn pps_per_core(&self) -> f64 {
        self.received as f64 / self.cpu_s.max(1e-9)
    }
    /// pps/core as a multiple of `base`'s.
    fn ratio_to(&self, base: &Measured) -> f64 {
        self.pps_per_core() / base.pps_per_core().max(1e-9)
    }
    fn loss(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            1.0 - (self.received as f64 / self.expected as f64).min(1.0)
        }
    }
    fn pct(&self, p: f64) -> f64 {
        percentile(&self.lat_us, p)
    }
    fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "egress_pps": self.egress_pps(),
            "egress_pps_per_core": self.pps_per_core(),
            "router_cpu_s": self.cpu_s,
            "router_cpu_util": self.cpu_s / self.wall_s.max(1e-9),
            "router_thread_cpu_s": self.thread_cpu_s,
            "router_cpu_from": self.cpu_from,
            "sent": self.sent,
            "expected": self.expected,
            "received": self.received,
            "loss": self.loss(),
            "p50_latency_us": self.pct(0.50),
            "p99_latency_us": self.pct(0.99),
            "max_latency_us": self.pct(1.0),
            "p50_app_latency_us": percentile(&self.app_lat_us, 0.50),
            "p99_app_latency_us": percentile(&self.app_lat_us, 0.99),
            "send_calls": self.io.send_calls,
            "gso_sends": self.io.gso_sends,
            "gso_fallbacks": self.io.gso_fallbacks,
            "send_errors": self.io.send_errors,
            "recv_drops": self.io.recv_drops,
            "note": self.note,
        })
    }
}

/// The `p` quantile of sorted samples (0 when there are none).
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i])
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`, the clock of the
/// kernel's receive timestamps).
fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What the clients received.
#[derive(Debug, Default)]
struct Received {
    /// Media packets (RTCP from the router is not counted).
    count: u64,
    /// Send call → kernel receive timestamp, per packet, µs.
    fwd_lat_us: Vec<u32>,
    /// Send call → read by the receiving thread, per packet, µs.
    app_lat_us: Vec<u32>,
    /// Packets that came without a kernel timestamp (timed on receipt).
    untimestamped: u64,
}

/// Largest number of latency samples kept per run.
const MAX_LATENCY_SAMPLES: usize = 8 << 20;

/// Receives on every client socket until `stop`, with GRO (so the router's
/// GSO sends arrive whole) and `SO_TIMESTAMPNS`: each packet's forwarding
/// latency ends at the kernel's receive timestamp, so it does not include
/// the time this thread waits for a CPU it shares with the sender.
fn receive_load(sockets: &[UdpSocket], stop: &AtomicBool) -> io::Result<Received> {
    const BATCH: usize = 16;
    const SLOT: usize = 1 << 16;
    const CMSG: usize = sock::TIMESTAMP_CMSG_SPACE + sock::RECV_CMSG_SPACE;
    for s in sockets {
        sock::enable_gro(s.as_raw_fd());
        sock::enable_rx_timestamps(s.as_raw_fd());
    }
    let mut pfds: Vec<libc::pollfd> =
        sockets.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let mut bufs = vec![0u8; BATCH * SLOT];
    let mut cmsgs = vec![CmsgBuf::<CMSG>::default(); BATCH];
    // SAFETY: these libc structs are plain old data; all-zero is valid.
    let (z_mmsg, z_iov) = unsafe { (mem::zeroed::<libc::mmsghdr>(), mem::zeroed::<libc::iovec>()) };
    let mut msgs = vec![z_mmsg; BATCH];
    let mut iovs = vec![z_iov; BATCH];
    let mut rx = Received {
        fwd_lat_us: Vec::with_capacity(1 << 20),
        app_lat_us: Vec::with_capacity(1 << 20),
        ..Default::default()
    };
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `pfds` is a live array of pollfds of the given length.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 20) };
        if r <= 0 {
            continue;
        }
        for p in pfds.iter_mut() {
            if p.revents == 0 {
                continue;
            }
            p.revents = 0;
            loop {
                for i in 0..BATCH {
                    iovs[i] = libc::iovec { iov_base: bufs[i * SLOT..].as_mut_ptr().cast(), iov_len: SLOT };
                    let h = &mut msgs[i].msg_hdr;
                    h.msg_name = std::ptr::null_mut();
                    h.msg_namelen = 0;
                    h.msg_iov = &mut iovs[i];
                    h.msg_iovlen = 1;
                    h.msg_control = cmsgs[i].0.as_mut_ptr().cast();
                    h.msg_controllen = CMSG as _;
                }
                // SAFETY: every msghdr points at live buffers of the lengths given.
                let n = unsafe {
                    libc::recvmmsg(p.fd, msgs.as_mut_ptr(), BATCH as _, libc::MSG_DONTWAIT, std::ptr::null_mut())
                };
                if n <= 0 {
                    break;
                }
                let now = unix_ns();
                for (i, m) in msgs.iter().enumerate().take(n as usize) {
                    #[allow(clippy::unnecessary_cast)] // socklen_t on some libcs, size_t on glibc
                    let clen = (m.msg_hdr.msg_controllen as usize).min(CMSG);
                    let meta = sock::parse_recv_cmsgs(&cmsgs[i].0[..clen]);
                    let len = (m.msg_len as usize).min(SLOT);
                    let data = &bufs[i * SLOT..i * SLOT + len];
                    let stamp = meta.timestamp.map(|t| t.as_nanos() as u64);
                    for c in data.chunks(meta.gro_segment.unwrap_or(len).max(1)) {
                        // Media only: RTCP from the router (reports, feedback) is not counted.
                        if c.len() < 24 || c[0] != MAGIC || c[1] != PT {
                            continue;
                        }
                        rx.count += 1;
                        let sent = u64::from_be_bytes(c[12..20].try_into().unwrap_or([0; 8]));
                        if stamp.is_none() {
                            rx.untimestamped += 1;
                        }
                        if rx.fwd_lat_us.len() < MAX_LATENCY_SAMPLES {
                            let us = |t: u64| (t.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32;
                            rx.fwd_lat_us.push(us(stamp.unwrap_or(now)));
                            rx.app_lat_us.push(us(now));
                        }
                    }
                }
                if (n as usize) < BATCH {
                    break;
                }
            }
        }
    }
    Ok(rx)
}

const MAGIC: u8 = 0x80;
/// The payload type of the load (dynamic video).
const PT: u8 = 96;
/// Payload layout: [0] 0x80 (RTP v2), [1] payload type, [2..4] seq, [4..8]
/// RTP timestamp, [8..12] sender id (as SSRC), [12..20] send time (ns since
/// the Unix epoch), [20..24] frame.
fn fill_packet(buf: &mut [u8], sender: u32, seq: u16, frame: u32, sent_ns: u64) {
    buf[0] = MAGIC;
    buf[1] = PT;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&frame.wrapping_mul(3000).to_be_bytes());
    buf[8..12].copy_from_slice(&sender.to_be_bytes());
    buf[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    buf[20..24].copy_from_slice(&frame.to_be_bytes());
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// CPU time of thread `tid` of this process in seconds (from schedstat, ns).
fn thread_cpu_s(tid: i32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn cpu_of(tids: &[i32]) -> f64 {
    tids.iter().filter_map(|&t| thread_cpu_s(t)).sum()
}

/// Busy time of `cpus` in seconds from `/proc/stat` (user, nice, system, irq
/// and softirq: everything those CPUs did, the kernel's network work done
/// outside the router's system calls included). `None` without `cpus`.
fn cpus_busy_s(cpus: &[usize]) -> Option<f64> {
    if cpus.is_empty() {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0u64;
    for &c in cpus {
        let line = stat.lines().find(|l| l.split_whitespace().next() == Some(&format!("cpu{c}")))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        total += [0, 1, 2, 5, 6].iter().filter_map(|&i| v.get(i)).sum::<u64>();
    }
    Some(total as f64 / hz)
}

fn router_options(gso: bool, reuse: bool) -> BackendOptions {
    BackendOptions {
        socket: SocketOptions { reuse_port: reuse, recv_buffer: 16 << 20, send_buffer: 16 << 20, only_v6: false },
        gso,
        ..Default::default()
    }
    .with_env()
}

fn make_backend(kind: BackendKind, socket: UdpSocket, opts: &BackendOptions) -> io::Result<Box<dyn IoBackend>> {
    Ok(match kind {
        BackendKind::Basic => Box::new(BasicBackend::new(socket)?),
        BackendKind::Mmsg | BackendKind::Auto => Box::new(MmsgBackend::new(socket, opts)?),
        BackendKind::Uring => Box::new(UringBackend::new(socket, opts)?),
    })
}

/// Starts `cores` forwarder threads on one address; returns the address, the
/// threads' ids and their handles.
#[allow(clippy::type_complexity)]
fn start_forwarder(
    fwd: Forwarder,
    cores: usize,
    table: &Arc<FanoutTable>,
    stop: &Arc<AtomicBool>,
    cpus: &[usize],
) -> anyhow::Result<(SocketAddr, Vec<i32>, Vec<JoinHandle<io::Result<IoStats>>>)> {
    let opts = router_options(matches!(fwd, Forwarder::Router { gso: true, .. }), cores > 1);
    let mut addr: SocketAddr = "127.0.0.1:0".parse()?;
    let mut sockets = Vec::new();
    for _ in 0..cores {
        let s = sock::bind(addr, &opts.socket)?;
        addr = s.local_addr()?;
        sockets.push(s);
    }
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let table = Arc::clone(table);
        let stop = Arc::clone(stop);
        let tx = tx.clone();
        let opts = opts.clone();
        let cpu: Vec<usize> = cpus.get(i).copied().into_iter().collect();
        let h = std::thread::Builder::new().name(format!("fwd-{i}")).spawn(move || -> io::Result<IoStats> {
            pin_current(&cpu);
            let _ = tx.send(gettid());
            match fwd {
                Forwarder::Router { kind, .. } => {
                    let mut b = make_backend(kind, s, &opts)?;
                    forward_with_backend(b.as_mut(), &table, &stop)?;
                    Ok(b.stats())
                }
                Forwarder::Ideal { gso } => ideal_forwarder(s, &table, gso, &stop),
                Forwarder::Naive => naive_forwarder(s, &table, &stop),
                Forwarder::Corecast { .. } => unreachable!("the real router is started by start_corecast"),
            }
        })?;
        handles.push(h);
    }
    let mut tids = Vec::new();
    for _ in 0..cores {
        tids.push(rx.recv_timeout(Duration::from_secs(5)).context("forwarder thread did not start")?);
    }
    Ok((addr, tids, handles))
}

/// The real router under test, and the clients it admitted.
struct Corecast {
    server: RouterServer,
    /// Where each client sends (its call's worker).
    dests: Vec<SocketAddr>,
    /// Each client's video SSRC.
    ssrcs: Vec<u32>,
    /// Kept so the admitted sockets stay registered as joined clients.
    _clients: Vec<Client>,
}

/// Starts a [`RouterServer`] on `kind` with `cores` workers and joins every
/// client socket with a dev-key token (participants of one call are
/// consecutive sockets). The router's worker threads are found by name.
fn start_corecast(
    kind: BackendKind,
    gso: bool,
    cores: usize,
    participants: usize,
    sockets: &[UdpSocket],
    cpus: &[usize],
) -> anyhow::Result<(Corecast, Vec<i32>)> {
    let key = token::dev_signing_key();
    let before = worker_tids();
    let server = RouterServer::start(ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        advertise_ip: None,
        workers: cores,
        cpus: cpus.to_vec(),
        backend: match kind {
            BackendKind::Auto => "auto",
            BackendKind::Basic => "basic",
            BackendKind::Mmsg => "mmsg",
            BackendKind::Uring => "uring",
        }
        .into(),
        core: RouterConfig {
            max_participants_per_call: participants.max(2),
            max_receivers_per_worker: participants.max(2),
            ..RouterConfig::default()
        },
        public_key: key.verifying_key(),
        io: router_options(gso, false),
    })?;
    // A new thread names itself when it starts: look until all are there.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tids: Vec<i32> = Vec::new();
    while tids.len() < cores && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        tids = worker_tids().into_iter().filter(|t| !before.contains(t)).collect();
    }
    tids.sort_unstable();
    if tids.len() != cores {
        bail!("found {} router worker threads, expected {cores}", tids.len());
    }
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let mut clients = Vec::with_capacity(sockets.len());
    let (mut dests, mut ssrcs) = (Vec::new(), Vec::new());
    let mut call = CallId(rand::random());
    for (i, s) in sockets.iter().enumerate() {
        if i % participants == 0 {
            call = CallId(rand::random());
        }
        let pid = 1 + i as u64;
        let tok = crate::demo::publisher_token(&key, call, pid, now_ms + 3_600_000);
        // Any worker's address will do: a join on the wrong one is redirected.
        let c = Client::join_on(s.try_clone()?, server.addresses()[0], &tok, pid, Quality::Hd)
            .with_context(|| format!("participant {pid} joining the router"))?;
        dests.push(c.router());
        ssrcs.push(ssrcs_for(pid).1 .0);
        clients.push(c);
    }
    Ok((Corecast { server, dests, ssrcs, _clients: clients }, tids))
}

/// Where threads run: forwarder thread `i` on `router[i]`, the load
/// generator's threads on `generator` (empty: wherever the kernel likes).
#[derive(Debug, Clone, Default)]
struct Placement {
    router: Vec<usize>,
    generator: Vec<usize>,
}

impl Placement {
    fn new(args: &FanoutArgs) -> Placement {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !args.pin || n <= args.router_cores {
            return Placement::default();
        }
        Placement { router: (0..args.router_cores).collect(), generator: (args.router_cores..n).collect() }
    }
}

/// Pins the calling thread to `cpus` (nothing if empty).
fn pin_current(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    for &c in cpus {
        // SAFETY: `set` is a valid cpu_set_t and `c` is below CPU_SETSIZE (a CPU index of this machine).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        eprintln!("fanout: could not pin a thread to CPUs {cpus:?}: {}", io::Error::last_os_error());
    }
}

/// Ids of this process's threads named like router workers (`corecast-w<i>`).
fn worker_tids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        comm.starts_with("corecast-w").then(|| e.file_name().to_str()?.parse().ok())?
    })
    .collect()
}

/// Runs the load once through `fwd`.
fn run_one(args: &FanoutArgs, fwd: Forwarder) -> anyhow::Result<Measured> {
    // The sender runs on this thread: on the load generator's CPUs.
    let place = Placement::new(args);
    pin_current(&place.generator);
    let n_clients = args.calls * args.participants;
    let client_opts = BackendOptions {
        socket: SocketOptions { recv_buffer: 4 << 20, send_buffer: 4 << 20, ..Default::default() },
        batch: 4,
        gso: false,
        ..Default::default()
    };
    let mut sockets = Vec::with_capacity(n_clients);
    let mut addrs = Vec::with_capacity(n_clients);
    for _ in 0..n_clients {
        let s = sock::bind("127.0.0.1:0".parse()?, &client_opts.socket)?;
        addrs.push(s.local_addr()?);
        sockets.push(s);
    }
    let calls: Vec<Vec<SocketAddr>> = addrs.chunks(args.participants).map(|c| c.to_vec()).collect();
    let table = Arc::new(FanoutTable::new(&calls));
    let stop_fwd = Arc::new(AtomicBool::new(false));
    let (mut corecast, mut handles) = (None, Vec::new());
    let (dests, ssrcs, tids) = match fwd {
        Forwarder::Corecast { kind, gso } => {
            let (c, tids) = start_corecast(kind, gso, args.router_cores, args.participants, &sockets, &place.router)?;
            let r = (c.dests.clone(), c.ssrcs.clone(), tids);
            corecast = Some(c);
            r
        }
        _ => {
            let (router, tids, h) = start_forwarder(fwd, args.router_cores, &table, &stop_fwd, &place.router)?;
            handles = h;
            (vec![router; n_clients], (0..n_clients as u32).collect(), tids)
        }
    };
    // Each client: one socket; the receiver reads it raw (GRO and kernel
    // receive timestamps on), the sender a clone (plain sendmmsg).
    let mut tx_backends = Vec::with_capacity(n_clients);
    for s in &sockets {
        let clone = s.try_clone()?;
        let gso = args.sender_gso;
        tx_backends.push(MmsgBackend::new(clone, &BackendOptions { gro: false, gso, ..client_opts.clone() })?);
    }
    let stop_rx = Arc::new(AtomicBool::new(false));
    let rx_stop = Arc::clone(&stop_rx);
    let gen_cpus = place.generator.clone();
    let receiver = std::thread::spawn(move || -> io::Result<Received> {
        pin_current(&gen_cpus);
        receive_load(&sockets, &rx_stop)
    });

    // Sender: paced frames, participants' phases spread over the frame interval.
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.fps.max(1)));
    let duration = Duration::from_secs_f64(args.duration.clamp(0.2, 30.0));
    let frames = (duration.as_secs_f64() * f64::from(args.fps)).ceil() as u64;
    let size = args.packet_size.max(32);
    let cpu0 = cpu_of(&tids);
    let busy0 = cpus_busy_s(&place.router);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut seqs = vec![0u16; n_clients];
    let mut buf = vec![0u8; size];
    'frames: for f in 0..frames {
        for (c, tx) in tx_backends.iter_mut().enumerate() {
            let at = t0 + interval * f as u32 + interval.mul_f64(c as f64 / n_clients as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if t0.elapsed() > duration + Duration::from_secs(2) {
                break 'frames; // the machine is too slow for this load: stop, the loss shows it
            }
            let ns = unix_ns();
            for _ in 0..args.packets_per_frame {
                fill_packet(&mut buf, ssrcs[c], seqs[c], f as u32, ns);
                seqs[c] = seqs[c].wrapping_add(1);
                tx.queue(dests[c], Bytes::copy_from_slice(&buf));
            }
            tx.flush()?;
            sent += args.packets_per_frame as u64;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    // Drain: let queued packets arrive, then read CPU while the threads live.
    std::thread::sleep(Duration::from_millis(300));
    let cpu1 = cpu_of(&tids);
    let busy1 = cpus_busy_s(&place.router);
    stop_fwd.store(true, Ordering::Relaxed);
    let mut io = IoStats::default();
    let mut note = String::new();
    if let Some(c) = corecast.take() {
        for w in c.server.stats() {
            add_io(&mut io, &w.io);
            let dropped = w.router.dropped();
            if dropped > 0 {
                note.push_str(&format!("router dropped {dropped}; "));
            }
        }
        c.server.stop();
    }
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => add_io(&mut io, &s),
            Ok(Err(e)) => note = format!("forwarder error: {e}"),
            Err(_) => note = "forwarder panicked".into(),
        }
    }
    stop_rx.store(true, Ordering::Relaxed);
    let mut rx = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?.context("receiving the load")?;
    rx.fwd_lat_us.sort_unstable();
    rx.app_lat_us.sort_unstable();
    if rx.untimestamped > 0 {
        note.push_str(&format!("{} packets without a kernel timestamp (timed on receipt); ", rx.untimestamped));
    }
    let tx_errors: u64 = tx_backends.iter().map(|b| b.stats().send_errors).sum();
    if tx_errors > 0 {
        note.push_str(&format!("load generator send errors: {tx_errors}; "));
    }
    Ok(Measured {
        label: fwd.label(),
        sent,
        expected: sent * (args.participants.saturating_sub(1)) as u64,
        received: rx.count,
        // Pinned, the router's CPUs do nothing else: their whole busy time
        // (softirq work outside the router's threads included) is its cost.
        cpu_s: match (busy0, busy1) {
            (Some(a), Some(b)) => (b - a).max(cpu1 - cpu0),
            _ => cpu1 - cpu0,
        },
        thread_cpu_s: cpu1 - cpu0,
        cpu_from: if busy0.is_some() { "pinned router CPUs (/proc/stat)" } else { "router threads (schedstat)" },
        wall_s: wall,
        lat_us: rx.fwd_lat_us,
        app_lat_us: rx.app_lat_us,
        io,
        note,
    })
}

fn add_io(sum: &mut IoStats, s: &IoStats) {
    sum.send_calls += s.send_calls;
    sum.sent_datagrams += s.sent_datagrams;
    sum.gso_sends += s.gso_sends;
    sum.gso_fallbacks += s.gso_fallbacks;
    sum.send_errors += s.send_errors;
    sum.recv_drops += s.recv_drops;
    sum.recv_datagrams += s.recv_datagrams;
}

fn print_table(rows: &[&Measured], ideal: Option<&Measured>, to_stderr: bool) {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<16} {:>11} {:>14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "forwarder", "egress pps", "pps/core(cpu)", "vs ideal", "cpu", "loss", "p50 us", "p99 us", "gso sends"
    ));
    for m in rows {
        let ratio = ideal.map(|i| m.ratio_to(i));
        s.push_str(&format!(
            "{:<16} {:>11.0} {:>14.0} {:>8} {:>7.0}% {:>8.3}% {:>9.0} {:>9.0} {:>9}{}\n",
            m.label,
            m.egress_pps(),
            m.pps_per_core(),
            ratio.map_or("-".to_string(), |r| format!("{r:.2}x")),
            100.0 * m.cpu_s / m.wall_s.max(1e-9),
            100.0 * m.loss(),
            m.pct(0.5),
            m.pct(0.99),
            m.io.gso_sends,
            if m.note.is_empty() { String::new() } else { format!("  ({})", m.note) },
        ));
    }
    if to_stderr {
        eprint!("{s}");
    } else {
        print!("{s}");
    }
}

/// Runs the fan-out benchmark.
pub fn run(mut args: FanoutArgs) -> anyhow::Result<()> {
    if let Some(f) = args.fanout {
        args.participants = f + 1;
    }
    if args.participants < 2 || args.calls == 0 {
        bail!("need at least one call of two participants");
    }
    if args.router_cores == 0 || args.router_cores > 64 {
        bail!("--router-cores must be 1..=64");
    }
    let uring_ok = uring::probe().map_err(|e| eprintln!("io_uring unavailable, skipping it: {e}")).is_ok();
    let kinds: Vec<(BackendKind, bool)> = match args.backend.as_str() {
        "all" => {
            let mut k = vec![(BackendKind::Mmsg, false), (BackendKind::Mmsg, true)];
            if uring_ok {
                k.extend([(BackendKind::Uring, false), (BackendKind::Uring, true)]);
            }
            k
        }
        other => {
            let kind: BackendKind = other.parse()?;
            // Auto as `net::open` decides it: mmsg with GSO, io_uring without.
            let kind = match kind {
                BackendKind::Auto if args.no_gso && uring_ok => BackendKind::Uring,
                BackendKind::Auto => BackendKind::Mmsg,
                k => k,
            };
            if kind == BackendKind::Uring && !uring_ok {
                bail!("io_uring is not available here");
            }
            vec![(kind, !args.no_gso)]
        }
    };
    let mut routers: Vec<Forwarder> = kinds.iter().map(|&(kind, gso)| Forwarder::Corecast { kind, gso }).collect();
    if args.backend_loops {
        routers.extend(kinds.iter().map(|&(kind, gso)| Forwarder::Router { kind, gso }));
    }
    let fanout = args.participants - 1;
    let clients = args.calls * args.participants;
    let ingress = clients as f64 * f64::from(args.fps) * args.packets_per_frame as f64;
    eprintln!(
        "fanout: {} calls x {} participants ({} clients), {} fps x {} packets of {} B: {:.0} pps in, {:.0} pps out; {} router core(s), {:.1} s each",
        args.calls,
        args.participants,
        clients,
        args.fps,
        args.packets_per_frame,
        args.packet_size,
        ingress,
        ingress * fanout as f64,
        args.router_cores,
        args.duration
    );
    // References first, then the router: paired in one run on the same machine state.
    let mut refs = Vec::new();
    if !args.no_references {
        for f in [Forwarder::Ideal { gso: false }, Forwarder::Ideal { gso: true }, Forwarder::Naive] {
            refs.push(run_one(&args, f)?);
        }
    }
    let sweep = match (args.sweep, routers.first()) {
        (true, Some(&f)) => Some(sweep(&args, f)?),
        _ => None,
    };
    let mut results = Vec::new();
    for f in routers {
        results.push(run_one(&args, f)?);
    }
    let ideal = refs.first();
    let rows: Vec<&Measured> = results.iter().chain(refs.iter()).collect();
    print_table(&rows, ideal, args.json);
    let mut v = report_json(&args, fanout, &results, &refs);
    if let (Some(sw), Some(o)) = (sweep, v.as_object_mut()) {
        o.insert("sweep".into(), sw);
    }
    if let Some(dir) = &args.report {
        let files = write_report(dir, &args, &rows, &v)?;
        eprintln!("report: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

/// The `--report` files: Markdown, JSON and plots.
fn write_report(
    dir: &std::path::Path,
    args: &FanoutArgs,
    rows: &[&Measured],
    json: &Value,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use crate::plot::{self, Axis, Bar, Series};
    use crate::report;
    let fanout = args.participants - 1;
    let clients = args.calls * args.participants;
    let offered_out = |fps: f64| (clients * args.packets_per_frame * fanout) as f64 * fps;
    let ideal = rows.iter().find(|m| m.label == "ideal-mmsg");
    let ideal_gso = rows.iter().find(|m| m.label == "ideal-mmsg+gso");
    let ratio = |m: &Measured, r: Option<&&Measured>| r.map_or("-".to_string(), |r| format!("{:.2}x", m.ratio_to(r)));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                m.label.clone(),
                format!("{:.0}", m.egress_pps()),
                format!("{:.0}", m.pps_per_core()),
                ratio(m, ideal),
                ratio(m, ideal_gso),
                format!("{:.0}%", 100.0 * m.cpu_s / m.wall_s.max(1e-9)),
                format!("{:.3}%", 100.0 * m.loss()),
                format!("{:.0}", m.pct(0.5)),
                format!("{:.0}", m.pct(0.99)),
                format!("{:.0}", m.pct(1.0)),
                m.io.gso_sends.to_string(),
                m.note.clone(),
            ]
        })
        .collect();
    let mut md = report::md_header("corecast-bench fanout");
    md.push_str(&format!(
        "- load: {} calls x {} participants ({clients} clients), {} fps x {} packets of {} B: {:.0} pps out; {} router core(s){}, {:.1} s per row\n",
        args.calls,
        args.participants,
        args.fps,
        args.packets_per_frame,
        args.packet_size,
        offered_out(f64::from(args.fps)),
        args.router_cores,
        match (args.pin, args.sender_gso) {
            (true, true) => ", pinned, generator sends GSO",
            (true, false) => ", pinned",
            (false, true) => ", generator sends GSO",
            (false, false) => "",
        },
        args.duration
    ));
    md.push_str(&format!(
        "- router CPU: {}; latency: send call to the client socket's kernel receive timestamp\n\n",
        rows.first().map_or("-", |m| m.cpu_from)
    ));
    md.push_str(&report::md_table(
        &[
            "forwarder",
            "egress pps",
            "pps/core",
            "x ideal mmsg",
            "x ideal GSO",
            "router CPU",
            "loss",
            "p50 us",
            "p99 us",
            "max us",
            "GSO sends",
            "note",
        ],
        &table,
    ));
    md.push_str("\n![egress packets/s per router core](pps_per_core.svg)\n\n![latency by percentile](latency.svg)\n");
    let bars: Vec<Bar> = rows
        .iter()
        .map(|m| Bar { label: m.label.clone(), value: m.pps_per_core(), note: format!("({} ideal)", ratio(m, ideal)) })
        .collect();
    let mut files = vec![
        (
            "pps_per_core.svg".to_string(),
            plot::bar_chart("Egress packets/s per router core", "packets/s of router CPU", &bars),
        ),
        (
            "latency.svg".to_string(),
            plot::line_chart(
                "Forwarding latency by percentile",
                &Axis::nines("percentile"),
                &Axis::log("latency (us)"),
                &rows
                    .iter()
                    .map(|m| Series { label: m.label.clone(), points: plot::percentile_points(&m.lat_us, 12) })
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    if let Some(steps) = json.pointer("/sweep/steps").and_then(Value::as_array) {
        let label = json.pointer("/sweep/backend").and_then(Value::as_str).unwrap_or("router").to_string();
        let f = report::num;
        let sweep_rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                vec![
                    format!("{:.0}", f(s, "fps")),
                    format!("{:.0}", offered_out(f(s, "fps"))),
                    format!("{:.0}", f(s, "egress_pps")),
                    format!("{:.3}%", 100.0 * f(s, "loss")),
                    format!("{:.0}", f(s, "p99_latency_us")),
                ]
            })
            .collect();
        md.push_str(&format!("\n## Sweep ({label})\n\n"));
        md.push_str(&report::md_table(&["fps", "offered pps out", "egress pps", "loss", "p99 us"], &sweep_rows));
        if let Some(o) = json.pointer("/sweep/loss_onset_offered_egress_pps").and_then(Value::as_f64) {
            md.push_str(&format!("\nLoss starts at {o:.0} pps offered out."));
            if let Some(c) = json.pointer("/sweep/highest_clean_fps").and_then(Value::as_f64) {
                md.push_str(&format!(" The highest rate without loss: {:.0} pps ({c:.0} fps).", offered_out(c)));
            }
            if let Some(at) = json.pointer("/sweep/at_80_percent").filter(|v| !v.is_null()) {
                md.push_str(&format!(
                    " At 80% of that rate ({:.0} fps): {:.0} pps out, loss {:.3}%, p99 {:.0} us.",
                    f(at, "fps"),
                    f(at, "egress_pps"),
                    100.0 * f(at, "loss"),
                    f(at, "p99_latency_us")
                ));
            }
            md.push('\n');
        } else {
            md.push_str("\nNo loss onset within the sweep (where delivered stops following offered, the load generator is the limit).\n");
        }
        md.push_str(
            "\n![delivered against offered rate](sweep_throughput.svg)\n\n![p99 against delivered rate](sweep_latency.svg)\n",
        );
        let target: Vec<(f64, f64)> =
            steps.iter().map(|s| (offered_out(f(s, "fps")), offered_out(f(s, "fps")))).collect();
        let delivered: Vec<(f64, f64)> = steps.iter().map(|s| (offered_out(f(s, "fps")), f(s, "egress_pps"))).collect();
        let p99: Vec<(f64, f64)> = steps.iter().map(|s| (f(s, "egress_pps"), f(s, "p99_latency_us"))).collect();
        files.push((
            "sweep_throughput.svg".into(),
            plot::line_chart(
                "Delivered against offered load",
                &Axis::linear("offered egress packets/s"),
                &Axis::linear("delivered egress packets/s"),
                &[
                    Series { label: label.clone(), points: delivered },
                    Series { label: "offered".into(), points: target },
                ],
            ),
        ));
        files.push((
            "sweep_latency.svg".into(),
            plot::line_chart(
                "p99 latency against delivered load",
                &Axis::linear("delivered egress packets/s"),
                &Axis::log("p99 latency (us)"),
                &[Series { label, points: p99 }],
            ),
        ));
    }
    files.push(("fanout.json".into(), serde_json::to_string_pretty(json)? + "\n"));
    files.push(("fanout.md".into(), md));
    report::write_all(dir, &files)
}

/// The loss onset search: from `start` fps up ×1.5 a step (at most 8) until
/// `lossy(fps)` says a rate loses, then three bisection steps at most
/// between the last clean and the first lossy rate. Returns (highest clean
/// rate, lowest lossy rate), either `None` when the search did not see one.
fn find_onset(
    start: u32,
    lossy: &mut impl FnMut(u32) -> anyhow::Result<bool>,
) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let mut fps = f64::from(start.max(1));
    let mut clean: Option<u32> = None;
    let mut onset: Option<u32> = None;
    for _ in 0..8 {
        let f = fps.round() as u32;
        if lossy(f)? {
            onset = Some(f);
            break;
        }
        clean = Some(f);
        fps *= 1.5;
    }
    if let (Some(mut good), Some(mut bad)) = (clean, onset) {
        for _ in 0..3 {
            let mid = (good + bad) / 2;
            if mid == good || mid == bad {
                break;
            }
            if lossy(mid)? {
                bad = mid;
            } else {
                good = mid;
            }
        }
        return Ok((Some(good), Some(bad)));
    }
    Ok((clean, onset))
}

/// Raises the frame rate until `fwd` loses more than 0.1% (the loss onset),
/// narrows the onset down by bisecting between the last clean and the first
/// lossy rate (three more runs at most), then runs at 80% of the onset rate.
/// Returns every step (in rate order) and that run.
fn sweep(args: &FanoutArgs, fwd: Forwarder) -> anyhow::Result<Value> {
    let mut steps = Vec::new();
    let offered = |a: &FanoutArgs| {
        (a.calls * a.participants * a.packets_per_frame * (a.participants - 1)) as f64 * f64::from(a.fps)
    };
    let mut step = |fps: u32| -> anyhow::Result<bool> {
        let a = FanoutArgs { fps, ..args.clone() };
        let m = run_one(&a, fwd)?;
        eprintln!(
            "sweep {}: {} fps -> {:.0} pps out, loss {:.3}%, p99 {:.0} us",
            m.label,
            a.fps,
            m.egress_pps(),
            100.0 * m.loss(),
            m.pct(0.99)
        );
        steps.push(json!({"fps": a.fps, "offered_egress_pps": offered(&a), "egress_pps": m.egress_pps(),
            "loss": m.loss(), "p99_latency_us": m.pct(0.99)}));
        Ok(m.loss() > 0.001)
    };
    let (clean, onset) = find_onset(args.fps, &mut step)?;
    steps.sort_by_key(|s| s["fps"].as_u64());
    let onset = onset.map(|f| (f, offered(&FanoutArgs { fps: f, ..args.clone() })));
    let at80 = match onset {
        Some((onset_fps, _)) => {
            let a = FanoutArgs { fps: ((f64::from(onset_fps) * 0.8).round() as u32).max(1), ..args.clone() };
            let m = run_one(&a, fwd)?;
            eprintln!(
                "sweep {}: at 80% of the onset ({} fps): {:.0} pps out, loss {:.3}%, p99 {:.0} us",
                m.label,
                a.fps,
                m.egress_pps(),
                100.0 * m.loss(),
                m.pct(0.99)
            );
            json!({"fps": a.fps, "egress_pps": m.egress_pps(), "loss": m.loss(), "p99_latency_us": m.pct(0.99)})
        }
        None => Value::Null,
    };
    Ok(json!({
        "backend": fwd.label(),
        "steps": steps,
        "loss_onset_fps": onset.map(|o| o.0),
        "highest_clean_fps": clean,
        "loss_onset_offered_egress_pps": onset.map(|o| o.1),
        "at_80_percent": at80,
    }))
}

/// The JSON report: the first router run's figures at the top level (with
/// every reference), and every router run under `runs`.
fn report_json(args: &FanoutArgs, fanout: usize, results: &[Measured], refs: &[Measured]) -> Value {
    let ideal = refs.first();
    let ratio = |m: &Measured| ideal.map(|i| m.ratio_to(i));
    let references: serde_json::Map<String, Value> = refs
        .iter()
        .map(|m| {
            let mut v = m.to_json();
            if let (Some(r), Some(o)) = (ratio(m), v.as_object_mut()) {
                o.insert("ratio_to_ideal".into(), json!(r));
            }
            (m.label.clone(), v)
        })
        .collect();
    let run_json = |m: &Measured| {
        let mut v = m.to_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("backend".into(), json!(m.label));
            o.insert("router_cores".into(), json!(args.router_cores));
            o.insert("fanout".into(), json!(fanout));
            o.insert("calls".into(), json!(args.calls));
            o.insert("participants".into(), json!(args.participants));
            o.insert("fps".into(), json!(args.fps));
            o.insert("packets_per_frame".into(), json!(args.packets_per_frame));
            o.insert("packet_size".into(), json!(args.packet_size));
            o.insert("duration_s".into(), json!(args.duration));
            o.insert("pinned".into(), json!(args.pin));
            o.insert("sender_gso".into(), json!(args.sender_gso));
            if let Some(r) = ratio(m) {
                o.insert("ratio_to_ideal".into(), json!(r));
            }
            if let Some(g) = refs.iter().find(|r| r.label == "ideal-mmsg+gso") {
                o.insert("ratio_to_ideal_gso".into(), json!(m.ratio_to(g)));
            }
        }
        v
    };
    let mut top = results.first().map(run_json).unwrap_or_else(|| json!({}));
    if let Some(o) = top.as_object_mut() {
        o.insert("references".into(), Value::Object(references));
        o.insert("runs".into(), Value::Array(results.iter().map(run_json).collect()));
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup() {
        let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let t = FanoutTable::new(&[vec![a(1), a(2)], vec![a(3), a(4), a(5)]]);
        let (me, members) = t.lookup(&a(4)).unwrap();
        assert_eq!(t.addr(me), a(4));
        assert_eq!(members.iter().map(|&m| t.addr(m)).collect::<Vec<_>>(), vec![a(3), a(4), a(5)]);
        assert!(t.lookup(&a(9)).is_none());
    }

    #[test]
    fn onset_search_brackets_the_threshold() {
        let run = |threshold: u32| {
            let mut tried = Vec::new();
            let r = find_onset(30, &mut |f| {
                tried.push(f);
                Ok(f >= threshold)
            })
            .unwrap();
            (r, tried)
        };
        // Steps 30, 45, 68, 101, 152, 228; then bisection between 152 and 228.
        let ((clean, onset), tried) = run(200);
        assert_eq!(&tried[..6], &[30, 45, 68, 101, 152, 228]);
        assert_eq!(tried.len(), 9);
        let (c, o) = (clean.unwrap(), onset.unwrap());
        assert!(c < 200 && o >= 200 && o - c <= 10, "{c}..{o}");
        // Lossy from the start: no clean rate; never lossy: no onset.
        assert_eq!(run(1).0, (None, Some(30)));
        assert_eq!(run(u32::MAX).0, (Some(513), None));
        assert_eq!(run(u32::MAX).1.len(), 8);
    }

    #[test]
    fn report_has_tables_plots_and_json() {
        let args = FanoutArgs { calls: 2, participants: 3, fps: 20, packets_per_frame: 3, ..tiny_args() };
        let m = |label: &str, received: u64, cpu_s: f64| Measured {
            label: label.into(),
            sent: 100,
            expected: received,
            received,
            cpu_s,
            thread_cpu_s: cpu_s,
            cpu_from: "router threads (schedstat)",
            wall_s: 1.0,
            lat_us: (50..250).collect(),
            app_lat_us: (60..260).collect(),
            ..Default::default()
        };
        let rows =
            [m("corecast-mmsg+gso", 1000, 0.002), m("ideal-mmsg", 1000, 0.01), m("ideal-mmsg+gso", 1000, 0.0015)];
        let refs: Vec<&Measured> = rows.iter().collect();
        let mut v = report_json(&args, 2, &rows[..1], &rows[1..]);
        let step =
            |fps: u32, loss: f64| json!({"fps": fps, "egress_pps": 1000.0, "loss": loss, "p99_latency_us": 300.0});
        v.as_object_mut().unwrap().insert(
            "sweep".into(),
            json!({"backend": "corecast-mmsg+gso", "steps": [step(20, 0.0), step(30, 0.01)],
                   "loss_onset_offered_egress_pps": 540.0, "at_80_percent": step(24, 0.0)}),
        );
        let dir = std::env::temp_dir().join(format!("corecast-report-{}", std::process::id()));
        let files = write_report(&dir, &args, &refs, &v).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "pps_per_core.svg",
                "latency.svg",
                "sweep_throughput.svg",
                "sweep_latency.svg",
                "fanout.json",
                "fanout.md"
            ]
        );
        let md = std::fs::read_to_string(dir.join("fanout.md")).unwrap();
        assert!(md.contains("| corecast-mmsg+gso | 1000 | 500000 | 5.00x | 0.75x |"), "{md}");
        assert!(
            md.contains("Loss starts at 540 pps offered out. At 80% of that rate (24 fps): 1000 pps out, loss 0.000%"),
            "{md}"
        );
        for f in names.iter().filter(|n| n.ends_with(".svg")) {
            let svg = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(
                svg.starts_with("<svg")
                    && svg.ends_with("</svg>\n")
                    && svg.contains("<polyline") | svg.contains("class=\"bar\""),
                "{f}"
            );
        }
        let back: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("fanout.json")).unwrap()).unwrap();
        assert_eq!(back["backend"], "corecast-mmsg+gso");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tiny_args() -> FanoutArgs {
        FanoutArgs {
            calls: 2,
            participants: 3,
            fanout: None,
            fps: 20,
            packets_per_frame: 3,
            packet_size: 200,
            router_cores: 1,
            backend: "mmsg".into(),
            backend_loops: false,
            no_gso: false,
            duration: 0.3,
            no_references: false,
            json: false,
            pin: false,
            sweep: false,
            report: None,
            sender_gso: false,
        }
    }

    #[test]
    fn tiny_run_through_every_forwarder() {
        let args = tiny_args();
        for f in [
            Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true },
            Forwarder::Router { kind: BackendKind::Mmsg, gso: true },
            Forwarder::Ideal { gso: false },
            Forwarder::Ideal { gso: true },
            Forwarder::Naive,
        ] {
            let m = run_one(&args, f).unwrap();
            assert!(m.sent > 0);
            assert_eq!(m.received, m.expected, "{f:?}: {m:?}");
            // Every packet is timed, by the kernel's receive timestamp.
            assert_eq!(m.lat_us.len() as u64, m.received, "{f:?}");
            assert_eq!(m.app_lat_us.len() as u64, m.received, "{f:?}");
            assert!(!m.note.contains("kernel timestamp"), "{f:?}: {}", m.note);
            assert_eq!(m.cpu_from, "router threads (schedstat)");
        }
        // Pinned (where there is a CPU to spare), the router CPUs' busy time is the cost.
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            let pinned = FanoutArgs { pin: true, ..args };
            let m = run_one(&pinned, Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true }).unwrap();
            assert_eq!(m.received, m.expected, "{m:?}");
            assert_eq!(m.cpu_from, "pinned router CPUs (/proc/stat)");
            assert!(m.cpu_s >= m.thread_cpu_s);
        }
        // A generator that sends each frame as one GSO send: every packet still arrives once.
        let gso = FanoutArgs { sender_gso: true, ..tiny_args() };
        for f in [Forwarder::Corecast { kind: BackendKind::Mmsg, gso: true }, Forwarder::Ideal { gso: true }] {
            let m = run_one(&gso, f).unwrap();
            assert!(m.sent > 0);
            assert_eq!(m.received, m.expected, "{f:?} with a GSO sender: {m:?}");
        }
    }
}

//! What forwards the load: the real router (`corecast-*` rows), the bare
//! socket backends under a trivial fan-out loop (`loop-*`), and the ideal
//! (`recvmmsg`/`sendmmsg`, with and without GSO) and naive (tokio) reference
//! forwarders.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corecast_client::client::ssrcs_for;
use corecast_client::Client;
use corecast_core::RouterConfig;
use corecast_proto::join_key::JoinSecret;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId};
use corecast_router::net::basic::BasicBackend;
use corecast_router::net::mmsg::MmsgBackend;
use corecast_router::net::msghdr::{RecvMsgs, SendMsgs};
use corecast_router::net::sock::{self, RawAddr, SocketOptions};
use corecast_router::net::uring::UringBackend;
use corecast_router::net::{BackendKind, BackendOptions, IoBackend, IoStats};
use corecast_router::server::{RouterServer, ServerConfig};

use super::Forwarder;
use crate::measure::pin_current;
use crate::sys::gettid;

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
/// The headers are built by [`corecast_router::net::msghdr`], as in the
/// router's mmsg backend.
fn ideal_forwarder(socket: UdpSocket, table: &FanoutTable, gso: bool, stop: &AtomicBool) -> io::Result<IoStats> {
    const BATCH: usize = 64;
    const SLOT: usize = 2048;
    let fd = socket.as_raw_fd();
    let mut stats = IoStats::default();
    let mut received = RecvMsgs::<0>::new(BATCH, SLOT, true);
    let mut sends = SendMsgs::<libc::mmsghdr>::new();
    let mut src_ids = vec![0u32; BATCH];
    let mut runs: Vec<(u32, usize, usize, u16)> = Vec::new(); // (dest, iov start, count, segment)
    let mut per_dest: Vec<Vec<u32>> = vec![Vec::new(); table.addrs.len()];
    let mut touched: Vec<u32> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if !sock::wait_fd(fd, libc::POLLIN, Some(Duration::from_millis(20)))? {
            continue;
        }
        let n = match received.recv(socket.as_fd(), libc::MSG_DONTWAIT) {
            Ok(n) if n > 0 => n,
            _ => continue,
        };
        stats.recv_calls += 1;
        stats.recv_datagrams += n as u64;
        for (i, id) in src_ids.iter_mut().enumerate().take(n) {
            *id = received.source(i).and_then(|s| table.index.get(&s).copied()).unwrap_or(u32::MAX);
        }
        runs.clear();
        // The iovecs point straight at the receive buffers.
        let mut msgs = sends.batch();
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
                    let seg = received.payload(list[k] as usize).len();
                    let start = msgs.iovs();
                    let mut count = 0;
                    while k < list.len() && count < 64 {
                        let data = received.payload(list[k] as usize);
                        let len = data.len();
                        if len > seg || (count > 0 && len == 0) {
                            break;
                        }
                        msgs.push_iov(data);
                        count += 1;
                        k += 1;
                        if len < seg {
                            break;
                        }
                    }
                    runs.push((m, start, count, if count > 1 { seg as u16 } else { 0 }));
                }
            }
            for &m in &touched {
                per_dest[m as usize].clear();
            }
            touched.clear();
        } else {
            for i in 0..n {
                msgs.push_iov(received.payload(i));
            }
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
        for &(m, start, count, seg) in &runs {
            msgs.push_msg(&table.raw[m as usize], start, count, seg);
            if seg != 0 {
                stats.gso_sends += 1;
            }
            stats.sent_datagrams += count as u64;
        }
        let mut i = 0;
        while i < msgs.len() {
            let end = (i + 1024).min(msgs.len());
            stats.send_calls += 1;
            match msgs.sendmmsg(socket.as_fd(), i..end, 0) {
                Ok(r) if r > 0 => i += r,
                _ => {
                    stats.send_errors += 1;
                    i += 1;
                }
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

pub(super) fn router_options(gso: bool, reuse: bool) -> BackendOptions {
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
        BackendKind::Xdp => Box::new(corecast_router::net::xdp::XdpBackend::new(socket, opts)?),
    })
}

/// Starts `cores` forwarder threads on one address; returns the address, the
/// threads' ids and their handles.
#[allow(clippy::type_complexity)]
pub(super) fn start_forwarder(
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
            pin_current("fanout", &cpu);
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
pub(super) struct Corecast {
    pub server: RouterServer,
    /// Where each client sends (its call's worker).
    pub dests: Vec<SocketAddr>,
    /// Each client's video SSRC.
    pub ssrcs: Vec<u32>,
    /// Kept so the admitted sockets stay registered as joined clients.
    _clients: Vec<Client>,
}

/// A busy figure (per mille) no worker reaches: overload protection off.
pub(super) const OVERLOAD_OFF: u16 = u16::MAX;

/// Starts a [`RouterServer`] on `kind` with `cores` workers and joins every
/// client socket with a dev-key token (participants of one call are
/// consecutive sockets). The router's worker threads are found by name.
pub(super) fn start_corecast(
    listen: SocketAddr,
    (kind, gso, retransmission): (BackendKind, bool, bool),
    cores: usize,
    participants: usize,
    sockets: &[UdpSocket],
    cpus: &[usize],
) -> anyhow::Result<(Corecast, Vec<i32>)> {
    let key = token::dev_signing_key();
    let before = worker_tids();
    let server = RouterServer::start(ServerConfig {
        listen,
        advertise_ip: None,
        workers: cores,
        cpus: cpus.to_vec(),
        backend: kind.name().into(),
        core: RouterConfig {
            max_participants_per_call: participants.max(2),
            max_receivers_per_worker: participants.max(2),
            retransmission,
            // The bench measures what the router forwards at full load: its
            // overload protection (moving receivers to SD) stays out of it.
            overload_busy_permille: OVERLOAD_OFF,
            join_secret: Some(JoinSecret::dev()),
            plain_native_media: true,
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
        // Any worker's address will do: a join on the wrong one is redirected. Plain RTP: this
        // run measures forwarding alone (`--transport srtp` measures the same load over SRTP).
        let key = JoinSecret::dev().key_for(&tok);
        let c = Client::join_with(s.try_clone()?, server.addresses()[0], &tok, &key, pid, Quality::Hd, false)
            .with_context(|| format!("participant {pid} joining the router"))?;
        dests.push(c.router());
        ssrcs.push(ssrcs_for(pid).1 .0);
        clients.push(c);
    }
    Ok((Corecast { server, dests, ssrcs, _clients: clients }, tids))
}

/// Ids of this process's threads named like router workers (`corecast-w<i>`).
pub(super) fn worker_tids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        comm.starts_with("corecast-w").then(|| e.file_name().to_str()?.parse().ok())?
    })
    .collect()
}

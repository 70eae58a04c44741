//! `recvmmsg`/`sendmmsg` backend with UDP GRO on receive and UDP GSO on send.
//!
//! Receive: one `recvmmsg` fills up to `batch` slots of a receive area
//! allocated once; after the call the datagrams are copied back to back into
//! one [`BytesMut`] of exactly their total size, which is split into one
//! [`Bytes`] per datagram (GRO super-datagrams are cut into their segments
//! with [`Bytes::slice`]). So a batch costs one allocation at most, and none
//! once the previous batch's datagrams have all been dropped (the `BytesMut`
//! is then reclaimed in place). The copy (≈1.2 KB per datagram, far below the
//! kernel's ≈5 µs per datagram) is deliberate: with GRO each slot must hold
//! 64 KiB, so handing out slices of the slots would let one datagram kept by a
//! retransmission buffer pin megabytes; this way a kept datagram pins at most
//! its own batch's bytes.
//!
//! Send: [`SendPlan`] groups the queued datagrams per destination and cuts GSO
//! runs; one `sendmmsg` carries every plain datagram and every GSO run (an
//! iovec per segment pointing into the queued [`Bytes`]: no copy). The
//! headers of both directions are built by [`super::msghdr`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::msghdr::{RecvMsgs, SendMsgs};
use super::plan::{PlanEntry, SendPlan};
use super::sock::{self, DropCounter, RECV_CMSG_SPACE};
use super::{BackendOptions, Datagram, IoBackend, IoStats};

/// Most messages one `sendmmsg` takes (`UIO_MAXIOV`).
const MAX_MMSG: usize = 1024;
/// How long GSO stays off after the kernel refused a GSO send.
pub(crate) const GSO_BACKOFF: Duration = Duration::from_secs(1);

/// Whether an errno from a GSO send means "this socket/NIC cannot do GSO now".
pub(crate) fn gso_refusal(errno: i32) -> bool {
    matches!(errno, libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
}

/// `recvmmsg`/`sendmmsg` backend.
pub struct MmsgBackend {
    socket: UdpSocket,
    fd: RawFd,
    local: SocketAddr,
    v6: bool,
    batch: usize,
    gro: bool,
    gso: GsoState,
    gso_max_segment: usize,
    /// Receive slots (`batch * slot` bytes, allocated on the first receive)
    /// with their addresses, control buffers and headers.
    recv: RecvMsgs<RECV_CMSG_SPACE>,
    /// Copy target for one batch's datagrams.
    rbuf: BytesMut,
    /// The socket's SO_RCVTIMEO, once set.
    rcvtimeo: Option<Option<Duration>>,
    drops: DropCounter,
    queue: Vec<(SocketAddr, Bytes)>,
    plan: SendPlan,
    /// The headers of one flush's sends.
    sends: SendMsgs,
    stats: IoStats,
}

impl std::fmt::Debug for MmsgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgBackend")
            .field("local", &self.local)
            .field("batch", &self.batch)
            .field("gro", &self.gro)
            .field("gso", &self.gso)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers stored in the header vectors (`recv`, `sends`)
// point into memory the backend itself owns and are rewritten before every
// system call; nothing is shared with another thread, so moving the whole
// backend to another thread is sound.
unsafe impl Send for MmsgBackend {}

/// GSO on/off state with a back-off after the kernel refused a GSO send.
#[derive(Debug)]
pub(crate) struct GsoState {
    /// The kernel supports `UDP_SEGMENT` and the options allow it.
    pub supported: bool,
    /// After a refusal: GSO is off until this instant.
    pub retry_at: Option<Instant>,
    /// Test hook: the next this-many GSO sends fail as if the kernel said EIO.
    pub inject_failures: u32,
}

impl GsoState {
    pub(crate) fn new(supported: bool, inject_failures: u32) -> Self {
        GsoState { supported, retry_at: None, inject_failures }
    }

    /// Whether to plan GSO sends for this flush.
    pub(crate) fn enabled(&mut self) -> bool {
        if !self.supported {
            return false;
        }
        match self.retry_at {
            None => true,
            Some(t) if Instant::now() >= t => {
                self.retry_at = None;
                tracing::info!("retrying UDP GSO");
                true
            }
            Some(_) => false,
        }
    }

    /// Takes one injected failure if any is left.
    pub(crate) fn take_injected(&mut self) -> bool {
        if self.inject_failures > 0 {
            self.inject_failures -= 1;
            true
        } else {
            false
        }
    }

    /// Records a refusal (`errno`): GSO is off for [`GSO_BACKOFF`].
    pub(crate) fn refused(&mut self, errno: i32) {
        if self.retry_at.is_none() {
            tracing::warn!(errno, backoff = ?GSO_BACKOFF, "kernel refused a UDP GSO send; sending plain datagrams for a while");
        }
        self.retry_at = Some(Instant::now() + GSO_BACKOFF);
    }
}

impl MmsgBackend {
    /// Wraps a bound socket (see [`sock::bind`]); turns on GRO and probes GSO as `opts` allow.
    ///
    /// The socket is left blocking (receives wait in `recvmmsg` itself, bounded
    /// by `SO_RCVTIMEO`); every send is `MSG_DONTWAIT`.
    pub fn new(socket: UdpSocket, opts: &BackendOptions) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        let fd = socket.as_raw_fd();
        let local = socket.local_addr()?;
        let gro = opts.gro && sock::enable_gro(fd);
        let gso = opts.gso && sock::probe_gso(fd);
        sock::enable_rxq_ovfl(fd);
        let batch = opts.batch.clamp(1, MAX_MMSG);
        // With GRO each slot must hold a 64 KiB super-datagram (64 slots: a 4 MiB
        // receive area, allocated once).
        let slot = if gro { 65536 } else { opts.max_datagram.max(64) };
        tracing::debug!(%local, gro, gso, batch, slot, "mmsg backend ready");
        Ok(MmsgBackend {
            fd,
            local,
            v6: local.is_ipv6(),
            batch,
            gro,
            gso: GsoState::new(gso, opts.fail_gso_sends),
            gso_max_segment: opts.gso_max_segment,
            recv: RecvMsgs::new(batch, slot, true),
            rbuf: BytesMut::new(),
            rcvtimeo: None,
            drops: DropCounter::default(),
            queue: Vec::new(),
            plan: SendPlan::default(),
            sends: SendMsgs::new(),
            stats: IoStats::default(),
            socket,
        })
    }

    /// Whether UDP GRO is on.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Whether UDP GSO is supported and allowed (it may be paused after a refusal).
    pub fn gso(&self) -> bool {
        self.gso.supported
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Sets `SO_RCVTIMEO` (`None`: wait forever) unless it already has that value.
    fn set_rcvtimeo(&mut self, t: Option<Duration>) -> io::Result<()> {
        if self.rcvtimeo != Some(t) {
            self.socket.set_read_timeout(t)?;
            self.rcvtimeo = Some(t);
        }
        Ok(())
    }

    /// One `recvmmsg` with `flags`; returns (messages received, datagrams appended).
    fn recv_batch(&mut self, out: &mut Vec<Datagram>, flags: libc::c_int) -> io::Result<(usize, usize)> {
        let n = loop {
            match self.recv.recv(self.socket.as_fd(), flags) {
                Ok(n) => break n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Ok((0, 0)),
                    // An ICMP error queued on the socket: nothing to receive, go on.
                    Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => continue,
                    _ => return Err(e),
                },
            }
        };
        if n > 0 {
            self.stats.recv_calls += 1;
        }
        // One allocation for the batch (none if the last batch's datagrams are gone).
        let total: usize = (0..n).map(|i| self.recv.payload(i).len()).sum();
        self.rbuf.clear();
        self.rbuf.reserve(total);
        let mut appended = 0;
        for i in 0..n {
            let meta = self.recv.meta(i);
            if let Some(c) = meta.drop_counter {
                self.drops.update(c, &mut self.stats);
            }
            let Some(source) = self.recv.source(i) else {
                self.stats.recv_drops += 1;
                continue;
            };
            if self.recv.flags(i) & libc::MSG_TRUNC != 0 {
                self.stats.recv_drops += 1;
                continue;
            }
            self.rbuf.extend_from_slice(self.recv.payload(i));
            let data = self.rbuf.split().freeze();
            appended += split_gro(data, source, meta.gro_segment, out, &mut self.stats);
        }
        Ok((n, appended))
    }
}

/// Sends the datagrams of GSO entry `e` one by one after the kernel refused
/// it with `errno` (pausing GSO if the refusal says the socket cannot do it).
fn send_gso_fallback(
    fd: RawFd,
    plan: &SendPlan,
    queue: &[(SocketAddr, Bytes)],
    e: PlanEntry,
    errno: i32,
    gso: &mut GsoState,
    stats: &mut IoStats,
) {
    stats.gso_fallbacks += 1;
    if gso_refusal(errno) {
        gso.refused(errno);
    }
    let mut deadline = None;
    for &p in plan.packets(&e) {
        sock::send_one(fd, &plan.dests[e.dest as usize], &queue[p as usize].1, &mut deadline, stats);
    }
}

/// Appends `data` to `out`, cut into `segment`-sized datagrams when GRO merged
/// several; returns how many were appended.
pub(crate) fn split_gro(
    data: Bytes,
    source: SocketAddr,
    segment: Option<usize>,
    out: &mut Vec<Datagram>,
    stats: &mut IoStats,
) -> usize {
    match segment {
        Some(seg) if seg > 0 && data.len() > seg => {
            let mut n = 0;
            let mut off = 0;
            while off < data.len() {
                let end = (off + seg).min(data.len());
                out.push(Datagram { source, contents: data.slice(off..end) });
                off = end;
                n += 1;
            }
            stats.recv_datagrams += n as u64;
            n
        }
        _ => {
            out.push(Datagram { source, contents: data });
            stats.recv_datagrams += 1;
            1
        }
    }
}

impl IoBackend for MmsgBackend {
    fn name(&self) -> &'static str {
        "mmsg"
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn recv(&mut self, timeout: Option<Duration>, out: &mut Vec<Datagram>) -> io::Result<usize> {
        let deadline = timeout.map(|t| Instant::now() + t);
        if timeout.is_none_or(|t| t >= Duration::from_millis(1)) {
            // One system call per batch: a blocking `recvmmsg` that returns as
            // soon as one datagram is there (MSG_WAITFORONE) with whatever else
            // is queued, bounded by SO_RCVTIMEO. The timeout is rounded down to
            // whole milliseconds so that it rarely changes (a shorter wait only
            // means an early return with nothing).
            self.set_rcvtimeo(timeout.map(|t| Duration::from_millis(t.as_millis() as u64)))?;
            loop {
                let (msgs, appended) = self.recv_batch(out, libc::MSG_WAITFORONE)?;
                if appended > 0 {
                    return Ok(appended);
                }
                if msgs == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(0);
                }
                // Everything was dropped (truncated): look again.
            }
        }
        // Sub-millisecond timeouts: a non-blocking try, then ppoll.
        loop {
            let (msgs, appended) = self.recv_batch(out, libc::MSG_DONTWAIT)?;
            if appended > 0 {
                return Ok(appended);
            }
            if msgs > 0 {
                continue; // everything was dropped (truncated); look again
            }
            let wait = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(0);
                    }
                    Some(d - now)
                }
            };
            if !sock::wait_fd(self.fd, libc::POLLIN, wait)? && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
        }
    }

    fn queue(&mut self, destination: SocketAddr, contents: Bytes) {
        self.queue.push((destination, contents));
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let gso = self.gso.enabled();
        self.plan.build(&self.queue, gso, self.v6, self.gso_max_segment);
        // The headers of the plan: an iovec per datagram pointing into the
        // queued `Bytes`, a message (with a GSO control message for a run) per entry.
        let mut msgs = self.sends.batch();
        for &p in &self.plan.order {
            msgs.push_iov(&self.queue[p as usize].1);
        }
        for e in &self.plan.entries {
            msgs.push_msg(&self.plan.dests[e.dest as usize], e.start as usize, e.count as usize, e.segment);
        }
        let total = msgs.len();
        let mut i = 0;
        let mut deadline: Option<Instant> = None;
        while i < total {
            let e = self.plan.entries[i];
            if e.is_gso() && self.gso.take_injected() {
                send_gso_fallback(self.fd, &self.plan, &self.queue, e, libc::EIO, &mut self.gso, &mut self.stats);
                i += 1;
                continue;
            }
            let end = (i + MAX_MMSG).min(total);
            self.stats.send_calls += 1;
            let errno = match msgs.sendmmsg(self.socket.as_fd(), i..end, libc::MSG_DONTWAIT) {
                Ok(r) if r > 0 => {
                    for e in &self.plan.entries[i..i + r] {
                        self.stats.sent_datagrams += u64::from(e.count);
                        if e.is_gso() {
                            self.stats.gso_sends += 1;
                        }
                    }
                    i += r;
                    continue;
                }
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(0),
            };
            match errno {
                libc::EINTR => {}
                libc::EAGAIN => {
                    let now = Instant::now();
                    let d = *deadline.get_or_insert(now + sock::SEND_WAIT);
                    if now >= d || !sock::wait_fd(self.fd, libc::POLLOUT, Some(d - now))? {
                        // Still no room: drop the rest of this flush.
                        for e in &self.plan.entries[i..] {
                            self.stats.send_errors += u64::from(e.count);
                        }
                        break;
                    }
                }
                _ if e.is_gso() => {
                    send_gso_fallback(self.fd, &self.plan, &self.queue, e, errno, &mut self.gso, &mut self.stats);
                    i += 1;
                }
                _ => {
                    self.stats.send_errors += u64::from(e.count);
                    i += 1;
                }
            }
        }
        self.queue.clear();
        Ok(())
    }

    fn stats(&self) -> IoStats {
        self.stats
    }

    fn describe(&self) -> String {
        format!("mmsg (batch {}, gro {}, gso {})", self.batch, on(self.gro), on(self.gso.supported))
    }
}

pub(crate) fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

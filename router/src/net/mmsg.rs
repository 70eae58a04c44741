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
//! iovec per segment pointing into the queued [`Bytes`]: no copy).

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::plan::{PlanEntry, SendPlan};
use super::sock::{self, CmsgBuf, DropCounter, RawAddr, GSO_CMSG_SPACE, RECV_CMSG_SPACE};
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
    slot: usize,
    gro: bool,
    gso: GsoState,
    gso_max_segment: usize,
    /// Receive slots (`batch * slot` bytes, allocated on the first receive).
    slots: Vec<u8>,
    /// Copy target for one batch's datagrams.
    rbuf: BytesMut,
    /// The socket's SO_RCVTIMEO, once set.
    rcvtimeo: Option<Option<Duration>>,
    rmsgs: Vec<libc::mmsghdr>,
    riov: Vec<libc::iovec>,
    rnames: Vec<libc::sockaddr_storage>,
    rcmsgs: Vec<CmsgBuf<RECV_CMSG_SPACE>>,
    drops: DropCounter,
    queue: Vec<(SocketAddr, Bytes)>,
    plan: SendPlan,
    siov: Vec<libc::iovec>,
    scmsgs: Vec<CmsgBuf<GSO_CMSG_SPACE>>,
    smsgs: Vec<libc::mmsghdr>,
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

// SAFETY: the raw pointers stored in the scratch vectors (`rmsgs`, `riov`,
// `smsgs`, `siov`) point into memory the backend itself owns and
// are rewritten before every system call; nothing is shared with another
// thread, so moving the whole backend to another thread is sound.
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
        // SAFETY: the libc structs below are plain old data; all-zero is a valid value.
        let (mmsg, iov, name) = unsafe {
            (mem::zeroed::<libc::mmsghdr>(), mem::zeroed::<libc::iovec>(), mem::zeroed::<libc::sockaddr_storage>())
        };
        Ok(MmsgBackend {
            fd,
            local,
            v6: local.is_ipv6(),
            batch,
            slot,
            gro,
            gso: GsoState::new(gso, opts.fail_gso_sends),
            gso_max_segment: opts.gso_max_segment,
            slots: Vec::new(),
            rbuf: BytesMut::new(),
            rcvtimeo: None,
            rmsgs: vec![mmsg; batch],
            riov: vec![iov; batch],
            rnames: vec![name; batch],
            rcmsgs: vec![CmsgBuf::default(); batch],
            drops: DropCounter::default(),
            queue: Vec::new(),
            plan: SendPlan::default(),
            siov: Vec::new(),
            scmsgs: Vec::new(),
            smsgs: Vec::new(),
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
        if self.slots.is_empty() {
            self.slots = vec![0; self.batch * self.slot];
        }
        for (i, slot) in self.slots.chunks_exact_mut(self.slot).enumerate() {
            self.riov[i] = libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: slot.len() };
            let h = &mut self.rmsgs[i].msg_hdr;
            h.msg_name = (&mut self.rnames[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.riov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.rcmsgs[i].0.as_mut_ptr().cast();
            h.msg_controllen = RECV_CMSG_SPACE as _;
            h.msg_flags = 0;
            self.rmsgs[i].msg_len = 0;
        }
        let n = loop {
            // SAFETY: every msghdr points at live buffers owned by `self` (receive
            // slots, names, control buffers) of the lengths given; the kernel
            // writes within them and the call returns before they are touched.
            let r = unsafe {
                libc::recvmmsg(self.fd, self.rmsgs.as_mut_ptr(), self.batch as _, flags, std::ptr::null_mut())
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok((0, 0)),
                // An ICMP error queued on the socket: nothing to receive, go on.
                Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => continue,
                _ => return Err(e),
            }
        };
        if n > 0 {
            self.stats.recv_calls += 1;
        }
        // One allocation for the batch (none if the last batch's datagrams are gone).
        let total: usize = self.rmsgs[..n].iter().map(|m| (m.msg_len as usize).min(self.slot)).sum();
        self.rbuf.clear();
        self.rbuf.reserve(total);
        let mut appended = 0;
        for i in 0..n {
            let m = &self.rmsgs[i];
            let len = (m.msg_len as usize).min(self.slot);
            let flags = m.msg_hdr.msg_flags;
            #[allow(clippy::unnecessary_cast)] // socklen_t on some libcs, size_t on glibc
            let clen = (m.msg_hdr.msg_controllen as usize).min(RECV_CMSG_SPACE);
            let meta = sock::parse_recv_cmsgs(&self.rcmsgs[i].0[..clen]);
            if let Some(c) = meta.drop_counter {
                self.drops.update(c, &mut self.stats);
            }
            // SAFETY: the kernel wrote `msg_namelen` bytes (at most the storage size) into rnames[i].
            let source = unsafe {
                sock::sockaddr_to_std(
                    (&self.rnames[i] as *const libc::sockaddr_storage).cast(),
                    (m.msg_hdr.msg_namelen as usize).min(mem::size_of::<libc::sockaddr_storage>()),
                )
            };
            let Some(source) = source else {
                self.stats.recv_drops += 1;
                continue;
            };
            if flags & libc::MSG_TRUNC != 0 {
                self.stats.recv_drops += 1;
                continue;
            }
            self.rbuf.extend_from_slice(&self.slots[i * self.slot..i * self.slot + len]);
            let data = self.rbuf.split().freeze();
            appended += split_gro(data, source, meta.gro_segment, out, &mut self.stats);
        }
        Ok((n, appended))
    }

    fn send_gso_fallback(&mut self, e: PlanEntry, errno: i32) {
        self.stats.gso_fallbacks += 1;
        if gso_refusal(errno) {
            self.gso.refused(errno);
        }
        let mut deadline = None;
        for &p in self.plan.packets(&e) {
            sock::send_one(
                self.fd,
                &self.plan.dests[e.dest as usize],
                &self.queue[p as usize].1,
                &mut deadline,
                &mut self.stats,
            );
        }
    }

    /// Builds the `mmsghdr`s of the current plan (iovecs, GSO control messages).
    fn build_send_msgs(&mut self) {
        self.siov.clear();
        self.scmsgs.clear();
        self.smsgs.clear();
        for &p in &self.plan.order {
            let b = &self.queue[p as usize].1;
            self.siov.push(libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() });
        }
        for e in &self.plan.entries {
            if e.is_gso() {
                let mut c = CmsgBuf::default();
                sock::write_gso_cmsg(&mut c, e.segment);
                self.scmsgs.push(c);
            }
        }
        // The vectors no longer grow: pointers into them stay valid until the next flush.
        let mut gso_i = 0;
        for e in &self.plan.entries {
            // SAFETY: msghdr is plain old data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            let dest: &RawAddr = &self.plan.dests[e.dest as usize];
            h.msg_name = &dest.storage as *const libc::sockaddr_storage as *mut libc::c_void;
            h.msg_namelen = dest.len;
            h.msg_iov = self.siov[e.start as usize..].as_mut_ptr();
            h.msg_iovlen = e.count as _;
            if e.is_gso() {
                h.msg_control = self.scmsgs[gso_i].0.as_mut_ptr().cast();
                h.msg_controllen = GSO_CMSG_SPACE as _;
                gso_i += 1;
            }
            self.smsgs.push(libc::mmsghdr { msg_hdr: h, msg_len: 0 });
        }
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
        self.build_send_msgs();
        let total = self.smsgs.len();
        let mut i = 0;
        let mut deadline: Option<Instant> = None;
        while i < total {
            let e = self.plan.entries[i];
            if e.is_gso() && self.gso.take_injected() {
                self.send_gso_fallback(e, libc::EIO);
                i += 1;
                continue;
            }
            let end = (i + MAX_MMSG).min(total);
            self.stats.send_calls += 1;
            // SAFETY: smsgs[i..end] point at iovecs, addresses and control buffers
            // owned by `self` and at the queued `Bytes`, all alive and unchanged
            // for the duration of the call; the kernel only reads them (and
            // writes `msg_len`).
            let r =
                unsafe { libc::sendmmsg(self.fd, self.smsgs[i..].as_mut_ptr(), (end - i) as _, libc::MSG_DONTWAIT) };
            if r > 0 {
                for e in &self.plan.entries[i..i + r as usize] {
                    self.stats.sent_datagrams += u64::from(e.count);
                    if e.is_gso() {
                        self.stats.gso_sends += 1;
                    }
                }
                i += r as usize;
                continue;
            }
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
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
                    self.send_gso_fallback(e, errno);
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

//! io_uring backend: multishot `recvmsg` into a provided-buffer ring, and one
//! `sendmsg` SQE per planned send (a plain datagram or a GSO run) submitted
//! once per flush.
//!
//! Ownership rules, since the kernel reads and writes our memory
//! asynchronously:
//! - the buffer ring and its buffers are `mmap`ed once and unmapped only after
//!   the multishot receive has been cancelled and its last completion seen and
//!   the ring unregistered (if that cannot be confirmed on drop, they leak);
//! - the `msghdr` of the multishot receive is boxed and lives as long as the
//!   backend;
//! - every send's `msghdr`, iovecs, address, control message and the queued
//!   [`Bytes`] live in a `SendBatch` that is not reused until every one of
//!   its completions has arrived (a batch with stragglers is parked in
//!   `stranded` and a fresh one used).
//!
//! Received payloads are copied out of the ring buffers into one [`BytesMut`]
//! per batch (reused once the previous batch's datagrams are dropped), so each
//! ring buffer goes back to the kernel at once.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use io_uring::types::{Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

mod bufring;
mod setup;

pub use setup::probe;
use setup::{build_ring, on_helper_thread};

use super::mmsg::{gso_refusal, on, split_gro, GsoState};
use super::msghdr::{self, SendMsgs};
use super::plan::SendPlan;
use super::sock::{self, DropCounter, RECV_CMSG_SPACE};
use super::{BackendOptions, Datagram, IoBackend, IoStats};
use bufring::BufRing;

const RECV_TAG: u64 = 1 << 62;
const CANCEL_TAG: u64 = 1 << 61;
const SEND_TAG: u64 = 1 << 63;
const BGID: u16 = 0x00cc;
/// Size of `struct io_uring_recvmsg_out`, which starts every multishot receive buffer.
const RECVMSG_OUT_LEN: usize = 16;

/// Everything one flush's sends point at; kept until all their completions arrive.
#[derive(Debug, Default)]
struct SendBatch {
    gen: u32,
    outstanding: usize,
    queue: Vec<(SocketAddr, Bytes)>,
    plan: SendPlan,
    /// One `msghdr` per plan entry, pointing into `queue` and `plan.dests`.
    msgs: SendMsgs<libc::msghdr>,
}

/// io_uring backend.
pub struct UringBackend {
    ring: IoUring,
    socket: UdpSocket,
    fd: RawFd,
    local: SocketAddr,
    v6: bool,
    needs_enable: bool,
    flags_desc: &'static str,
    br: Option<BufRing>,
    registered: bool,
    recv_msg: Box<libc::msghdr>,
    armed: bool,
    gro: bool,
    gso: GsoState,
    gso_max_segment: usize,
    send_cqes: Vec<(u64, i32)>,
    /// Completions reaped but not yet handled: (user_data, result, flags).
    pending: Vec<(u64, i32, u32)>,
    rbuf: BytesMut,
    drops: DropCounter,
    queue: Vec<(SocketAddr, Bytes)>,
    send: SendBatch,
    stranded: Vec<SendBatch>,
    next_gen: u32,
    stats: IoStats,
}

impl std::fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringBackend")
            .field("local", &self.local)
            .field("setup", &self.flags_desc)
            .field("gro", &self.gro)
            .field("gso", &self.gso)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers in `recv_msg`, the send batches and the mappings
// point into memory the backend owns; the ring is driven only by the thread
// that currently owns the backend (with SINGLE_ISSUER, the ring is enabled on
// the first use, i.e. by the worker thread, which must then keep it).
unsafe impl Send for UringBackend {}

impl UringBackend {
    /// Wraps a bound socket (see [`sock::bind`]). Call [`probe`] first.
    ///
    /// The ring is created disabled when `SINGLE_ISSUER` is available and is
    /// enabled by the first `recv`/`flush`: the thread that makes that call
    /// becomes the only thread allowed to drive the backend.
    pub fn new(socket: UdpSocket, opts: &BackendOptions) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let local = socket.local_addr()?;
        let gro = opts.gro && sock::enable_gro(fd);
        let gso = opts.gso && sock::probe_gso(fd);
        sock::enable_rxq_ovfl(fd);
        let entries = opts.ring_entries.clamp(8, 32768);
        let cq = entries.saturating_mul(4).max(u32::from(opts.ring_buffers) * 2);
        let nbufs = opts.ring_buffers.clamp(1, 32768).next_power_of_two();
        let payload = if gro { 65536 } else { opts.max_datagram.max(64) };
        let name_len = mem::size_of::<libc::sockaddr_storage>();
        let buf_size = (RECVMSG_OUT_LEN + name_len + RECV_CMSG_SPACE + payload + 63) & !63;
        let br = BufRing::new(nbufs, buf_size)?;
        let (ring_addr, ring_entries) = (br.ring_addr(), br.entries);
        let (ring, needs_enable, flags_desc) = on_helper_thread(move || {
            let (ring, needs_enable, flags_desc) = build_ring(entries, cq)?;
            // SAFETY: the ring mapping holds `ring_entries` slots and stays mapped
            // until after `unregister_buf_ring` (see Drop; on an error here the
            // ring is closed before `br` is dropped).
            unsafe { ring.submitter().register_buf_ring_with_flags(ring_addr, ring_entries, BGID, 0) }?;
            Ok((ring, needs_enable, flags_desc))
        })?;
        let mut recv_msg = Box::new(msghdr::empty_msghdr());
        recv_msg.msg_namelen = name_len as libc::socklen_t;
        recv_msg.msg_controllen = RECV_CMSG_SPACE as _;
        tracing::debug!(%local, gro, gso, setup = flags_desc, buffers = nbufs, buf_size, "io_uring backend ready");
        let mut b = UringBackend {
            ring,
            fd,
            local,
            v6: local.is_ipv6(),
            needs_enable,
            flags_desc,
            br: Some(br),
            registered: true,
            recv_msg,
            armed: false,
            gro,
            gso: GsoState::new(gso, opts.fail_gso_sends),
            gso_max_segment: opts.gso_max_segment,
            send_cqes: Vec::new(),
            pending: Vec::new(),
            rbuf: BytesMut::new(),
            drops: DropCounter::default(),
            queue: Vec::new(),
            send: SendBatch::default(),
            stranded: Vec::new(),
            next_gen: 1,
            stats: IoStats::default(),
            socket,
        };
        // Hand every buffer to the kernel.
        if let Some(br) = b.br.as_mut() {
            for bid in 0..br.entries {
                br.push(bid);
            }
            br.publish();
        }
        Ok(b)
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Setup flags in use (for logs).
    pub fn setup(&self) -> &'static str {
        self.flags_desc
    }

    /// Whether UDP GRO is on.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Whether UDP GSO is supported and allowed.
    pub fn gso(&self) -> bool {
        self.gso.supported
    }

    /// Enables a disabled ring on first use (this thread becomes its issuer).
    fn start(&mut self) -> io::Result<()> {
        if self.needs_enable {
            self.ring.submitter().register_enable_rings()?;
            self.needs_enable = false;
        }
        if !self.armed {
            let e = opcode::RecvMsgMulti::new(Fd(self.fd), &*self.recv_msg, BGID).build().user_data(RECV_TAG);
            self.push_sqe(&e)?;
            self.armed = true;
        }
        Ok(())
    }

    fn push_sqe(&mut self, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every SQE we build points at memory that stays alive until
            // its completion (see the module docs).
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            // Queue full: submit what is there to make room.
            self.ring.submit()?;
        }
    }

    /// Moves every available completion into `pending` (send completions are
    /// handled at once).
    fn reap(&mut self) {
        let mut sends = mem::take(&mut self.send_cqes);
        let mut cq = self.ring.completion();
        cq.sync();
        for c in cq {
            let ud = c.user_data();
            if ud & SEND_TAG != 0 {
                sends.push((ud, c.result()));
            } else {
                self.pending.push((ud, c.result(), c.flags()));
            }
        }
        for &(ud, res) in &sends {
            self.on_send_completion(ud, res);
        }
        sends.clear();
        self.send_cqes = sends;
    }

    fn on_send_completion(&mut self, ud: u64, res: i32) {
        let gen = ((ud >> 32) & 0x1fff_ffff) as u32;
        let idx = (ud & 0xffff_ffff) as usize;
        let batch = if self.send.gen == gen {
            &mut self.send
        } else if let Some(b) = self.stranded.iter_mut().find(|b| b.gen == gen) {
            b
        } else {
            return;
        };
        batch.outstanding = batch.outstanding.saturating_sub(1);
        let e = batch.plan.entries[idx];
        if res >= 0 {
            self.stats.sent_datagrams += u64::from(e.count);
            if e.is_gso() {
                self.stats.gso_sends += 1;
            }
        } else {
            let errno = -res;
            let dest = batch.plan.dests[e.dest as usize];
            if e.is_gso() && errno != libc::EAGAIN {
                self.stats.gso_fallbacks += 1;
                if gso_refusal(errno) {
                    self.gso.refused(errno);
                }
            }
            if e.is_gso() || errno == libc::EAGAIN || errno == libc::EINTR {
                // Retry as plain sends (waiting for room, bounded).
                let mut deadline = None;
                for &p in batch.plan.packets(&e) {
                    sock::send_one(self.fd, &dest, &batch.queue[p as usize].1, &mut deadline, &mut self.stats);
                }
            } else {
                self.stats.send_errors += u64::from(e.count);
            }
        }
        self.stranded.retain(|b| b.outstanding > 0);
    }

    /// Waits for completions: at most `timeout` (forever if `None`) for at least one.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            None => self.ring.submitter().submit_and_wait(1),
            Some(t) => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Handles the pending receive completions; returns datagrams appended.
    fn process_recv(&mut self, out: &mut Vec<Datagram>) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let Some(br) = self.br.as_mut() else { return 0 };
        // Pass 1: total payload, so the copy target is allocated once.
        let mut total = 0;
        for &(ud, res, flags) in &self.pending {
            if ud == RECV_TAG && res > 0 {
                if let Some(bid) = cqueue::buffer_select(flags) {
                    if bid < br.entries {
                        // SAFETY: the completion handed `bid` back to us.
                        let buf = unsafe { br.buf(bid, res as usize) };
                        if let Ok(m) = RecvMsgOut::parse(buf, &self.recv_msg) {
                            total += m.payload_data().len();
                        }
                    }
                }
            }
        }
        self.rbuf.clear();
        self.rbuf.reserve(total);
        let mut appended = 0;
        let mut returned = false;
        for i in 0..self.pending.len() {
            let (ud, res, flags) = self.pending[i];
            if ud != RECV_TAG {
                continue; // cancel completions and the like
            }
            if !cqueue::more(flags) {
                self.armed = false;
            }
            if res < 0 {
                if -res == libc::ENOBUFS {
                    self.stats.recv_ring_exhausted += 1;
                } else if -res != libc::ECANCELED {
                    tracing::debug!(errno = -res, "io_uring multishot recvmsg ended");
                }
                continue;
            }
            let Some(bid) = cqueue::buffer_select(flags) else { continue };
            if bid >= br.entries {
                continue;
            }
            self.stats.recv_calls += 1;
            {
                // SAFETY: the completion handed `bid` back; it is pushed again only below.
                let buf = unsafe { br.buf(bid, res as usize) };
                match RecvMsgOut::parse(buf, &self.recv_msg) {
                    Ok(m) => {
                        let meta = sock::parse_recv_cmsgs(m.control_data());
                        if let Some(c) = meta.drop_counter {
                            self.drops.update(c, &mut self.stats);
                        }
                        // SAFETY: name_data is a slice of the buffer holding what the kernel wrote.
                        let source = unsafe { sock::sockaddr_to_std(m.name_data().as_ptr(), m.name_data().len()) };
                        match source {
                            Some(source) if !m.is_payload_truncated() => {
                                self.rbuf.extend_from_slice(m.payload_data());
                                let data = self.rbuf.split().freeze();
                                appended += split_gro(data, source, meta.gro_segment, out, &mut self.stats);
                            }
                            _ => self.stats.recv_drops += 1,
                        }
                    }
                    Err(()) => self.stats.recv_drops += 1,
                }
            }
            br.push(bid);
            returned = true;
        }
        if returned {
            br.publish();
        }
        self.pending.clear();
        appended
    }

    /// Waits (bounded) for the current send batch's completions; parks it if
    /// some never arrive.
    fn settle_sends(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(200);
        while self.send.outstanding > 0 {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    outstanding = self.send.outstanding,
                    "io_uring sends slow to complete; parking their buffers"
                );
                let fresh = SendBatch::default();
                self.stranded.push(mem::replace(&mut self.send, fresh));
                break;
            }
            let ts = Timespec::from(deadline - now);
            let args = SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(self.send.outstanding, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            self.reap();
        }
        Ok(())
    }
}

impl IoBackend for UringBackend {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn recv(&mut self, timeout: Option<Duration>, out: &mut Vec<Datagram>) -> io::Result<usize> {
        self.start()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        // Completions reaped earlier (during a flush) count too.
        self.reap();
        loop {
            if !self.pending.is_empty() {
                let n = self.process_recv(out);
                if !self.armed {
                    self.start()?;
                }
                if n > 0 {
                    return Ok(n);
                }
            }
            // Enter the kernel even when the time is up: with DEFER_TASKRUN the
            // receive completions are only posted by an enter with GETEVENTS.
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            self.wait(wait)?;
            self.reap();
            if self.pending.is_empty() && deadline.is_some_and(|d| Instant::now() >= d) {
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
        self.start()?;
        // The previous batch is settled (flush waits), so its memory is free to reuse.
        let gso = self.gso.enabled();
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0x1fff_ffff;
        let b = &mut self.send;
        b.gen = gen;
        mem::swap(&mut b.queue, &mut self.queue);
        self.queue.clear();
        b.plan.build(&b.queue, gso, self.v6, self.gso_max_segment);
        let mut msgs = b.msgs.batch();
        for &p in &b.plan.order {
            msgs.push_iov(&b.queue[p as usize].1);
        }
        for e in &b.plan.entries {
            msgs.push_msg(&b.plan.dests[e.dest as usize], e.start as usize, e.count as usize, e.segment);
        }
        // The batch's vectors no longer change until all completions are in.
        let n = self.send.msgs.len();
        let mut injected = Vec::new();
        for i in 0..n {
            let e = self.send.plan.entries[i];
            if e.is_gso() && self.gso.take_injected() {
                injected.push(i);
                continue;
            }
            let sqe = opcode::SendMsg::new(Fd(self.fd), &self.send.msgs.headers()[i])
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .user_data(SEND_TAG | (u64::from(gen) << 32) | i as u64);
            self.send.outstanding += 1;
            self.push_sqe(&sqe)?;
        }
        self.stats.send_calls += 1;
        let want = self.send.outstanding;
        match self.ring.submitter().submit_and_wait(want.min(1)) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        self.reap();
        for i in injected {
            self.send.outstanding += 1;
            let ud = SEND_TAG | (u64::from(gen) << 32) | i as u64;
            self.on_send_completion(ud, -libc::EIO);
        }
        self.settle_sends()
    }

    fn stats(&self) -> IoStats {
        self.stats
    }

    fn describe(&self) -> String {
        let buffers = self.br.as_ref().map_or(0, |b| b.entries);
        format!(
            "uring ({}, {} ring buffers, gro {}, gso {})",
            self.flags_desc,
            buffers,
            on(self.gro),
            on(self.gso.supported)
        )
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // Stop the multishot receive and wait for its last completion, and for
        // outstanding sends, before the memory they use goes away.
        let mut quiet = !self.armed;
        if self.armed && !self.needs_enable {
            let cancel = opcode::AsyncCancel::new(RECV_TAG).build().user_data(CANCEL_TAG);
            if self.push_sqe(&cancel).is_ok() {
                let deadline = Instant::now() + Duration::from_millis(500);
                while Instant::now() < deadline {
                    if self.wait(Some(Duration::from_millis(20))).is_err() {
                        break; // e.g. EEXIST: dropped on a thread that is not the ring's issuer
                    }
                    self.reap();
                    if self.pending.iter().any(|&(ud, _, f)| ud == RECV_TAG && !cqueue::more(f)) {
                        quiet = true;
                        break;
                    }
                }
            }
        }
        let _ = self.settle_sends();
        let sends_done = self.send.outstanding == 0 && self.stranded.is_empty();
        if quiet && sends_done && self.registered && self.ring.submitter().unregister_buf_ring(BGID).is_ok() {
            self.registered = false;
        }
        if self.registered || !sends_done {
            // Could not confirm the kernel is done with our memory: leak it rather than free it.
            tracing::warn!("io_uring backend dropped with operations in flight; leaking its buffers");
            mem::forget(self.br.take());
            mem::forget(mem::take(&mut self.send));
            mem::forget(mem::take(&mut self.stranded));
        }
    }
}

//! The `msghdr`s of batched UDP I/O, built in one place for the fast backends
//! and the bench's reference forwarders:
//!
//! - [`SendMsgs`]: the messages of one batch of sends, each a destination, a
//!   run of iovecs pointing at the caller's datagrams (no copy) and, for a GSO
//!   run, a `UDP_SEGMENT` control message; as `mmsghdr`s for `sendmmsg` or as
//!   `msghdr`s for io_uring `SENDMSG`;
//! - [`RecvMsgs`]: `batch` receive slots (payload, source address, control
//!   buffer) and their `mmsghdr`s, for `recvmmsg`.
//!
//! Both keep their vectors between batches, so a batch allocates nothing in
//! steady state. Building headers is safe code (they only hold pointers). A
//! [`SendBatch`] borrows every datagram and address its headers point at
//! for as long as it lives, so [`SendBatch::sendmmsg`] is safe; a
//! [`RecvMsgs`] owns all the memory its headers point at, so
//! [`RecvMsgs::recv`] is safe. The io_uring backend reads the headers
//! ([`SendMsgs::headers`]) after the batch's borrow has ended and keeps the
//! memory alive by its own rules (see `uring.rs`).

use std::io;
use std::marker::PhantomData;
use std::mem;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::sock::{self, CmsgBuf, RawAddr, RecvMeta, GSO_CMSG_SPACE};

mod private {
    pub trait Sealed {}
    impl Sealed for libc::msghdr {}
    impl Sealed for libc::mmsghdr {}
}

/// A header type [`SendMsgs`] builds: `libc::mmsghdr` (for `sendmmsg`) or
/// `libc::msghdr` (for `sendmsg` and io_uring `SENDMSG`).
pub trait MsgHeader: Copy + private::Sealed {
    /// Wraps a `msghdr`.
    fn from_msghdr(h: libc::msghdr) -> Self;
    /// The `msghdr` inside.
    fn msghdr(&self) -> &libc::msghdr;
    /// The `msghdr` inside, mutably.
    fn msghdr_mut(&mut self) -> &mut libc::msghdr;
}

impl MsgHeader for libc::msghdr {
    fn from_msghdr(h: libc::msghdr) -> Self {
        h
    }
    fn msghdr(&self) -> &libc::msghdr {
        self
    }
    fn msghdr_mut(&mut self) -> &mut libc::msghdr {
        self
    }
}

impl MsgHeader for libc::mmsghdr {
    fn from_msghdr(h: libc::msghdr) -> Self {
        libc::mmsghdr { msg_hdr: h, msg_len: 0 }
    }
    fn msghdr(&self) -> &libc::msghdr {
        &self.msg_hdr
    }
    fn msghdr_mut(&mut self) -> &mut libc::msghdr {
        &mut self.msg_hdr
    }
}

/// An all-zero `msghdr`: no address, no iovecs, no control data.
pub fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain old data (integers and raw pointers); all-zero is a valid value.
    unsafe { mem::zeroed() }
}

/// A `msghdr` sending the `count` iovecs at `iov` to `dest` (no control data).
pub fn send_msghdr(dest: &RawAddr, iov: *mut libc::iovec, count: usize) -> libc::msghdr {
    let mut h = empty_msghdr();
    h.msg_name = &dest.storage as *const libc::sockaddr_storage as *mut libc::c_void;
    h.msg_namelen = dest.len;
    h.msg_iov = iov;
    h.msg_iovlen = count as _;
    h
}

/// An iovec of `data` (the kernel only reads through it when sending).
pub fn iovec(data: &[u8]) -> libc::iovec {
    libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() }
}

// ---------------------------------------------------------------------------
// sends

/// Storage for the messages of one batch of sends; [`batch`](Self::batch)
/// starts filling it. Its vectors keep their capacity between batches.
pub struct SendMsgs<H: MsgHeader = libc::mmsghdr> {
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<CmsgBuf<GSO_CMSG_SPACE>>,
    msgs: Vec<H>,
}

impl<H: MsgHeader> Default for SendMsgs<H> {
    fn default() -> Self {
        SendMsgs { iovs: Vec::new(), cmsgs: Vec::new(), msgs: Vec::new() }
    }
}

impl<H: MsgHeader> std::fmt::Debug for SendMsgs<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMsgs")
            .field("iovs", &self.iovs.len())
            .field("gso_cmsgs", &self.cmsgs.len())
            .field("msgs", &self.msgs.len())
            .finish()
    }
}

impl<H: MsgHeader> SendMsgs<H> {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the previous batch and starts a new one, which borrows this
    /// storage and every datagram and address it is given for `'a`.
    pub fn batch<'a>(&'a mut self) -> SendBatch<'a, H> {
        self.iovs.clear();
        self.cmsgs.clear();
        self.msgs.clear();
        SendBatch { store: self, _data: PhantomData }
    }

    /// The headers of the last batch built. They point at that batch's
    /// datagrams and addresses, which the caller must keep alive and
    /// unchanged for as long as anything (the kernel) may read them.
    pub fn headers(&self) -> &[H] {
        &self.msgs
    }

    /// Number of messages of the last batch.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Whether the last batch has no message.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }
}

/// One batch of sends being built: first every iovec ([`push_iov`](Self::push_iov)),
/// then the messages ([`push_msg`](Self::push_msg)), each a run of those iovecs.
pub struct SendBatch<'a, H: MsgHeader = libc::mmsghdr> {
    store: &'a mut SendMsgs<H>,
    _data: PhantomData<&'a [u8]>,
}

impl<H: MsgHeader> std::fmt::Debug for SendBatch<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SendBatch").field(&self.store).finish()
    }
}

impl<'a, H: MsgHeader> SendBatch<'a, H> {
    /// Adds an iovec for `data` and returns its index.
    ///
    /// # Panics
    /// After the first [`push_msg`](Self::push_msg) (the iovecs of a batch
    /// must not move once a message points at them).
    pub fn push_iov(&mut self, data: &'a [u8]) -> usize {
        assert!(self.store.msgs.is_empty(), "every iovec of a batch comes before its first message");
        self.store.iovs.push(iovec(data));
        self.store.iovs.len() - 1
    }

    /// Number of iovecs pushed.
    pub fn iovs(&self) -> usize {
        self.store.iovs.len()
    }

    /// Adds a message sending iovecs `start..start + count` to `dest`: one
    /// datagram, or with `segment` > 0 one GSO send the kernel cuts into
    /// `segment`-byte datagrams (`UDP_SEGMENT`; the last may be shorter).
    ///
    /// # Panics
    /// If the iovecs are out of range.
    pub fn push_msg(&mut self, dest: &'a RawAddr, start: usize, count: usize, segment: u16) {
        let s = &mut *self.store;
        assert!(start.checked_add(count).is_some_and(|end| end <= s.iovs.len()), "iovecs out of range");
        let mut h = send_msghdr(dest, s.iovs[start..].as_mut_ptr(), count);
        if segment != 0 {
            let mut c = CmsgBuf::default();
            sock::write_gso_cmsg(&mut c, segment);
            let before = s.cmsgs.as_ptr();
            s.cmsgs.push(c);
            if s.cmsgs.as_ptr() != before {
                // The control buffers moved (only while the vector grows):
                // point the earlier GSO messages at their new place.
                let mut k = 0;
                for m in &mut s.msgs {
                    let m = m.msghdr_mut();
                    if m.msg_controllen != 0 {
                        m.msg_control = s.cmsgs[k].0.as_mut_ptr().cast();
                        k += 1;
                    }
                }
            }
            let last = s.cmsgs.len() - 1;
            h.msg_control = s.cmsgs[last].0.as_mut_ptr().cast();
            h.msg_controllen = GSO_CMSG_SPACE as _;
        }
        s.msgs.push(H::from_msghdr(h));
    }

    /// Number of messages pushed.
    pub fn len(&self) -> usize {
        self.store.msgs.len()
    }

    /// Whether no message was pushed.
    pub fn is_empty(&self) -> bool {
        self.store.msgs.is_empty()
    }

    /// The headers built so far.
    pub fn headers(&self) -> &[H] {
        &self.store.msgs
    }
}

impl SendBatch<'_, libc::mmsghdr> {
    /// Sends messages `range` with one `sendmmsg(fd, .., flags)`; returns how
    /// many the kernel took (it stops at the first that fails, and fails
    /// only if the first does). The kernel takes at most `UIO_MAXIOV` (1024)
    /// messages per call.
    ///
    /// # Panics
    /// If `range` is out of bounds.
    pub fn sendmmsg(&mut self, fd: BorrowedFd<'_>, range: Range<usize>, flags: libc::c_int) -> io::Result<usize> {
        let msgs = &mut self.store.msgs[range];
        // SAFETY: every header points at iovecs and control buffers in
        // `self.store` and at datagrams and addresses borrowed for the life of
        // `self` (checked in range when pushed), all alive and unchanged for the
        // call; the kernel only reads them and writes each `msg_len`.
        let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as _, flags as _) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }
}

// ---------------------------------------------------------------------------
// receives

/// `batch` receive slots of `slot` bytes (allocated on the first receive),
/// optionally with their source addresses, each with a `CMSG`-byte control
/// buffer, and their `mmsghdr`s.
pub struct RecvMsgs<const CMSG: usize> {
    batch: usize,
    slot: usize,
    slots: Vec<u8>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf<CMSG>>,
    msgs: Vec<libc::mmsghdr>,
    received: usize,
}

impl<const CMSG: usize> std::fmt::Debug for RecvMsgs<CMSG> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMsgs")
            .field("batch", &self.batch)
            .field("slot", &self.slot)
            .field("source_addresses", &!self.names.is_empty())
            .field("control", &CMSG)
            .field("received", &self.received)
            .finish()
    }
}

impl<const CMSG: usize> RecvMsgs<CMSG> {
    /// Room for `batch` datagrams of up to `slot` bytes; with
    /// `source_addresses`, the kernel also reports where each came from.
    pub fn new(batch: usize, slot: usize, source_addresses: bool) -> Self {
        let batch = batch.max(1);
        // SAFETY: these libc structs are plain old data; all-zero is a valid value.
        let (mmsg, iov, name) = unsafe {
            (mem::zeroed::<libc::mmsghdr>(), mem::zeroed::<libc::iovec>(), mem::zeroed::<libc::sockaddr_storage>())
        };
        RecvMsgs {
            batch,
            slot,
            slots: Vec::new(),
            iovs: vec![iov; batch],
            names: if source_addresses { vec![name; batch] } else { Vec::new() },
            cmsgs: vec![CmsgBuf::default(); batch],
            msgs: vec![mmsg; batch],
            received: 0,
        }
    }

    /// Slots per receive.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Bytes per slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// One `recvmmsg(fd, .., flags)` into every slot; returns how many
    /// datagrams arrived (errors such as `EAGAIN` and `EINTR` are returned
    /// as they are). What arrived stays readable until the next receive.
    pub fn recv(&mut self, fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<usize> {
        self.received = 0;
        if self.slots.is_empty() {
            self.slots = vec![0; self.batch * self.slot];
        }
        let with_names = !self.names.is_empty();
        for (i, slot) in self.slots.chunks_exact_mut(self.slot).enumerate() {
            self.iovs[i] = libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: slot.len() };
            let h = &mut self.msgs[i].msg_hdr;
            if with_names {
                h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            } else {
                h.msg_name = std::ptr::null_mut();
                h.msg_namelen = 0;
            }
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            if CMSG > 0 {
                h.msg_control = self.cmsgs[i].0.as_mut_ptr().cast();
            } else {
                h.msg_control = std::ptr::null_mut();
            }
            h.msg_controllen = CMSG as _;
            h.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every header points at buffers owned by `self` (slots,
        // addresses, control buffers) of the lengths given; the kernel writes
        // within them and the call returns before they are touched again.
        let r = unsafe {
            libc::recvmmsg(fd.as_raw_fd(), self.msgs.as_mut_ptr(), self.batch as _, flags as _, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = (r as usize).min(self.batch);
        Ok(self.received)
    }

    /// Datagrams of the last receive.
    pub fn len(&self) -> usize {
        self.received
    }

    /// Whether the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Payload of datagram `i` of the last receive (a GRO super-datagram is
    /// several; cut at most at the slot size).
    ///
    /// # Panics
    /// If `i` is not below [`len`](Self::len).
    pub fn payload(&self, i: usize) -> &[u8] {
        assert!(i < self.received, "datagram {i} of {}", self.received);
        let len = (self.msgs[i].msg_len as usize).min(self.slot);
        &self.slots[i * self.slot..i * self.slot + len]
    }

    /// `msg_flags` of datagram `i` (`MSG_TRUNC`: it did not fit its slot).
    pub fn flags(&self, i: usize) -> libc::c_int {
        self.msgs[i].msg_hdr.msg_flags
    }

    /// The control messages the kernel wrote for datagram `i`.
    pub fn control(&self, i: usize) -> &[u8] {
        #[allow(clippy::unnecessary_cast)] // socklen_t on some libcs, size_t on glibc
        let len = (self.msgs[i].msg_hdr.msg_controllen as usize).min(CMSG);
        &self.cmsgs[i].0[..len]
    }

    /// What the control messages of datagram `i` say (see [`sock::parse_recv_cmsgs`]).
    pub fn meta(&self, i: usize) -> RecvMeta {
        sock::parse_recv_cmsgs(self.control(i))
    }

    /// Where datagram `i` came from (`None` without source addresses or for
    /// families other than IPv4/IPv6).
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        let name = self.names.get(i)?;
        let len = (self.msgs[i].msg_hdr.msg_namelen as usize).min(mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: `name` is a live sockaddr_storage and `len` is at most its size.
        unsafe { sock::sockaddr_to_std((name as *const libc::sockaddr_storage).cast(), len) }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    use super::*;
    use crate::net::sock::RECV_CMSG_SPACE;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        (rx, tx)
    }

    #[test]
    fn gso_messages_keep_their_control_buffers_while_the_batch_grows() {
        let dest = RawAddr::new("127.0.0.1:9".parse().unwrap(), false);
        let data = vec![7u8; 100];
        let mut store = SendMsgs::<libc::msghdr>::new();
        for round in 0..2 {
            let mut b = store.batch();
            for _ in 0..40 {
                b.push_iov(&data);
            }
            for k in 0..20 {
                b.push_msg(&dest, 2 * k, 2, if k % 3 == 0 { 0 } else { 50 + k as u16 });
            }
            assert_eq!((b.iovs(), b.len()), (40, 20), "round {round}");
            let mut gso = 0;
            for (k, h) in store.headers().iter().enumerate() {
                #[allow(clippy::unnecessary_cast)] // c_int on some libcs, size_t on glibc
                let iovlen = h.msg_iovlen as usize;
                assert_eq!(iovlen, 2);
                assert_eq!(h.msg_namelen, dest.len);
                if k % 3 == 0 {
                    assert!(h.msg_control.is_null() && h.msg_controllen == 0);
                    continue;
                }
                // Each GSO message points at its own, live control buffer.
                assert_eq!(h.msg_control.cast::<CmsgBuf<GSO_CMSG_SPACE>>().cast_const(), &store.cmsgs[gso] as *const _);
                let mut c = CmsgBuf::<GSO_CMSG_SPACE>::default();
                sock::write_gso_cmsg(&mut c, 50 + k as u16);
                assert_eq!(store.cmsgs[gso].0, c.0);
                gso += 1;
            }
            assert_eq!(gso, 13);
        }
    }

    #[test]
    #[should_panic(expected = "before its first message")]
    fn iovecs_after_a_message_are_refused() {
        let dest = RawAddr::new("127.0.0.1:9".parse().unwrap(), false);
        let data = [1u8; 4];
        let mut store = SendMsgs::<libc::mmsghdr>::new();
        let mut b = store.batch();
        b.push_iov(&data);
        b.push_msg(&dest, 0, 1, 0);
        b.push_iov(&data);
    }

    #[test]
    fn sendmmsg_and_recvmmsg_round_trip() {
        let (rx, tx) = pair();
        let dest = RawAddr::new(rx.local_addr().unwrap(), false);
        let packets: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let mut store = SendMsgs::new();
        let mut b = store.batch();
        for p in &packets {
            b.push_iov(p);
        }
        for i in 0..packets.len() {
            b.push_msg(&dest, i, 1, 0);
        }
        assert_eq!(b.sendmmsg(tx.as_fd(), 0..3, 0).unwrap(), 3);
        let mut r = RecvMsgs::<RECV_CMSG_SPACE>::new(8, 2048, true);
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = r.recv(rx.as_fd(), libc::MSG_WAITFORONE).unwrap();
            for i in 0..n {
                assert_eq!(r.source(i), Some(tx.local_addr().unwrap()));
                assert_eq!(r.flags(i) & libc::MSG_TRUNC, 0);
                got.push(r.payload(i).to_vec());
            }
        }
        assert_eq!(got, packets);
        // Without source addresses there is none to report.
        let mut r = RecvMsgs::<0>::new(2, 64, false);
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        assert_eq!(r.recv(rx.as_fd(), 0).unwrap(), 1);
        assert_eq!((r.payload(0), r.source(0), r.control(0)), (&b"x"[..], None, &[][..]));
    }
}

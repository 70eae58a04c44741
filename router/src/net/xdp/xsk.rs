//! One AF_XDP socket with its own UMEM and its four rings, set up with `libc`
//! (socket, `XDP_UMEM_REG`, ring sizes, `mmap` of the rings, `bind` to one
//! queue) as Documentation/networking/af_xdp.rst describes.
//!
//! The rings are single-producer/single-consumer queues shared with the
//! kernel: the producer index is written with release ordering after the
//! descriptors, the consumer index likewise after they were read; each side
//! reads the other's index with acquire ordering. One thread owns an `Xsk`.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes per UMEM frame (a power of two: aligned chunk mode).
pub const FRAME_SIZE: usize = 2048;
/// Entries of each ring (a power of two).
pub const RING_SIZE: u32 = 2048;
/// Frames in the UMEM: half for receiving (all of them on the fill ring at
/// first), half for sending.
pub const FRAMES: usize = 2 * RING_SIZE as usize;
/// Frames the kernel sends per wake-up in copy mode, where it allows more than its 32.
pub const TX_BUDGET: u32 = 256;
/// Bytes the kernel keeps in front of a received packet in copy mode
/// (`XDP_PACKET_HEADROOM`); a received frame holds at most this much less.
pub const RX_HEADROOM: usize = 256;

/// A ring shared with the kernel.
struct Ring<T> {
    map: *mut libc::c_void,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    mask: u32,
    /// Our copy of the index we own, and the last value seen of the other.
    head: u32,
    tail: u32,
    _t: PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    /// Maps ring `pgoff` of `fd` with the offsets the kernel reported.
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64) -> io::Result<Ring<T>> {
        let map_len = off.desc as usize + RING_SIZE as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh shared mapping of the ring the kernel created for
        // `fd` (its size set before with setsockopt); `pgoff` selects which.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let at = |o: u64| map.cast::<u8>().wrapping_add(o as usize);
        Ok(Ring {
            map,
            map_len,
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: RING_SIZE - 1,
            head: 0,
            tail: 0,
            _t: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: `producer` points into the live mapping at a 4-byte aligned
        // offset the kernel gave; the kernel accesses it atomically too.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    /// Whether the kernel asked to be woken (`XDP_RING_NEED_WAKEUP`).
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, i: u32) -> *mut T {
        // SAFETY: `i & mask` < RING_SIZE entries, all inside the mapping.
        unsafe { self.descs.add((i & self.mask) as usize) }
    }

    // Producer side (fill, TX): `head` is our producer index, `tail` the
    // kernel's consumer index as last read.

    /// Free entries, refreshing the kernel's index when fewer than `want`.
    fn free(&mut self, want: u32) -> u32 {
        let free = RING_SIZE - self.head.wrapping_sub(self.tail);
        if free >= want {
            return free;
        }
        self.tail = self.consumer().load(Ordering::Acquire);
        RING_SIZE - self.head.wrapping_sub(self.tail)
    }

    /// Writes one entry (the caller checked [`free`](Self::free)).
    fn push(&mut self, v: T) {
        // SAFETY: the slot is free (between the kernel's consumer index and
        // ours): the kernel does not read it until `submit`.
        unsafe { self.slot(self.head).write(v) };
        self.head = self.head.wrapping_add(1);
    }

    /// Publishes the entries pushed.
    fn submit(&self) {
        self.producer().store(self.head, Ordering::Release);
    }

    // Consumer side (RX, completion): `tail` is our consumer index, `head`
    // the kernel's producer index as last read.

    /// Entries ready to read.
    fn ready(&mut self) -> u32 {
        if self.head == self.tail {
            self.head = self.producer().load(Ordering::Acquire);
        }
        self.head.wrapping_sub(self.tail)
    }

    /// Reads the next entry (the caller checked [`ready`](Self::ready)).
    fn pop(&mut self) -> T {
        // SAFETY: the entry is between our consumer index and the kernel's
        // producer index (read with acquire): written and ours until `release`.
        let v = unsafe { self.slot(self.tail).read() };
        self.tail = self.tail.wrapping_add(1);
        v
    }

    /// Hands the entries read back to the kernel.
    fn release(&self) {
        self.consumer().store(self.tail, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no reference into
        // it outlives the ring.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// An AF_XDP socket bound to one queue, with its UMEM.
pub struct Xsk {
    fd: OwnedFd,
    umem: *mut u8,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    /// Whether the bind got zero-copy.
    pub zero_copy: bool,
}

impl std::fmt::Debug for Xsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xsk").field("fd", &self.fd).field("zero_copy", &self.zero_copy).finish_non_exhaustive()
    }
}

// SAFETY: the rings and the UMEM are mappings owned by this value alone (the
// kernel is the only other party); moving it to another thread moves that
// ownership with it.
unsafe impl Send for Xsk {}

fn check(r: libc::c_int, what: &str) -> io::Result<()> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("AF_XDP {what}: {e}")));
    }
    Ok(())
}

fn setopt<T>(fd: RawFd, name: libc::c_int, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: `v` is a live `T` of the size passed, which is what option `name` reads.
    let r = unsafe {
        libc::setsockopt(fd, libc::SOL_XDP, name, (v as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    check(r, what)
}

impl Xsk {
    /// Opens a socket on `ifindex` queue `queue`: zero-copy if `zero_copy`
    /// and the driver allows it, otherwise copy mode.
    pub fn open(ifindex: u32, queue: u32, zero_copy: bool) -> io::Result<Xsk> {
        // SAFETY: plain socket creation; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(fd, "socket (kernel without CONFIG_XDP_SOCKETS?)")?;
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        let len = FRAMES * FRAME_SIZE;
        // SAFETY: a fresh private anonymous mapping; checked below.
        let umem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let umem = umem.cast::<u8>();
        let mut xsk = Self::rings(fd, umem, len).inspect_err(|_| {
            // SAFETY: the mapping made above, not yet owned by an `Xsk`.
            unsafe { libc::munmap(umem.cast(), len) };
        })?;
        let mut sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP | if zero_copy { libc::XDP_ZEROCOPY } else { libc::XDP_COPY },
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        let bind = |sa: &libc::sockaddr_xdp| {
            // SAFETY: `sa` is a live sockaddr_xdp of the size passed.
            let r = unsafe {
                libc::bind(
                    raw,
                    (sa as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            check(r, &format!("bind to queue {queue}"))
        };
        match bind(&sa) {
            Ok(()) => xsk.zero_copy = zero_copy,
            Err(e) if zero_copy => {
                tracing::info!(error = %e, queue, "AF_XDP zero-copy refused; using copy mode");
                sa.sxdp_flags = libc::XDP_USE_NEED_WAKEUP | libc::XDP_COPY;
                bind(&sa)?;
            }
            Err(e) => return Err(e),
        }
        // Every receive frame on the fill ring.
        xsk.fill.free(RING_SIZE);
        for i in 0..FRAMES / 2 {
            xsk.fill.push((i * FRAME_SIZE) as u64);
        }
        xsk.fill.submit();
        Ok(xsk)
    }

    fn rings(fd: OwnedFd, umem: *mut u8, len: usize) -> io::Result<Xsk> {
        let raw = fd.as_raw_fd();
        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: len as u64,
            chunk_size: FRAME_SIZE as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setopt(raw, libc::XDP_UMEM_REG, &reg, "UMEM registration (locked-memory limit?)")?;
        setopt(raw, libc::XDP_UMEM_FILL_RING, &RING_SIZE, "fill ring")?;
        setopt(raw, libc::XDP_UMEM_COMPLETION_RING, &RING_SIZE, "completion ring")?;
        setopt(raw, libc::XDP_RX_RING, &RING_SIZE, "RX ring")?;
        setopt(raw, libc::XDP_TX_RING, &RING_SIZE, "TX ring")?;
        // Copy mode: frames sent per `sendto` (the kernel's default is 32);
        // `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+; older kernels refuse it: fine).
        const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
        let _ = setopt(raw, XDP_MAX_TX_SKB_BUDGET, &TX_BUDGET, "TX budget");
        // SAFETY: all-zero is a valid xdp_mmap_offsets (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is live and `optlen` holds its size.
        let r = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut optlen,
            )
        };
        check(r, "ring offsets")?;
        Ok(Xsk {
            fill: Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING)?,
            comp: Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
            rx: Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64)?,
            tx: Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64)?,
            fd,
            umem,
            zero_copy: false,
        })
    }

    /// The socket's descriptor (for the XSKMAP and `poll`).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Addresses of the frames that start out free for sending.
    pub fn tx_frames() -> impl Iterator<Item = u64> {
        (FRAMES / 2..FRAMES).map(|i| (i * FRAME_SIZE) as u64)
    }

    /// The `len` bytes at UMEM address `addr` (within one frame).
    pub fn frame(&self, addr: u64, len: u32) -> &[u8] {
        let start = addr as usize;
        if start >= FRAMES * FRAME_SIZE {
            return &[]; // not a UMEM address (the kernel never hands one out)
        }
        let len = (len as usize).min(FRAME_SIZE - start % FRAME_SIZE);
        // SAFETY: `start..start + len` lies inside the UMEM mapping (`start`
        // checked above, `len` cut at the end of its frame); the frame is ours (taken from
        // the RX ring and not yet back on the fill ring) while the borrow lasts.
        unsafe { std::slice::from_raw_parts(self.umem.add(start), len) }
    }

    /// The whole TX frame at `addr` (a frame from [`tx_frames`](Self::tx_frames)
    /// or the completion ring: owned by us until pushed to the TX ring).
    pub fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let start = (addr as usize & !(FRAME_SIZE - 1)).min((FRAMES - 1) * FRAME_SIZE);
        // SAFETY: one whole frame inside the UMEM; not in any ring, so the
        // kernel does not touch it; `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.umem.add(start), FRAME_SIZE) }
    }

    /// Received descriptors ready (at most `max`).
    pub fn rx_ready(&mut self, max: u32) -> u32 {
        self.rx.ready().min(max)
    }

    /// The next received descriptor: (address, length).
    pub fn rx_pop(&mut self) -> (u64, u32) {
        let d = self.rx.pop();
        (d.addr, d.len)
    }

    /// Gives the RX ring's entries read back and their frames to the fill ring.
    pub fn rx_recycle(&mut self, addrs: &[u64]) {
        self.rx.release();
        // The fill ring has room for every receive frame: it never overflows.
        self.fill.free(addrs.len() as u32);
        for &a in addrs {
            self.fill.push(a & !(FRAME_SIZE as u64 - 1));
        }
        self.fill.submit();
    }

    /// Whether the kernel wants a wake-up to take frames from the fill ring.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Moves completed TX frames to `free`.
    pub fn complete(&mut self, free: &mut Vec<u64>) {
        let n = self.comp.ready();
        for _ in 0..n {
            free.push(self.comp.pop());
        }
        if n > 0 {
            self.comp.release();
        }
    }

    /// Room on the TX ring.
    pub fn tx_room(&mut self) -> u32 {
        self.tx.free(RING_SIZE)
    }

    /// Queues frame `addr` of `len` bytes (the caller checked [`tx_room`](Self::tx_room)).
    pub fn tx_push(&mut self, addr: u64, len: u32) {
        self.tx.push(libc::xdp_desc { addr, len, options: 0 });
    }

    /// Publishes the TX entries and, if the kernel wants it (always in copy
    /// mode), kicks it with `sendto`. `Ok(false)`: the kernel is busy (retry).
    pub fn tx_submit(&mut self) -> io::Result<bool> {
        self.tx.submit();
        if !self.tx.needs_wakeup() {
            return Ok(true);
        }
        // SAFETY: a zero-length send with null buffers and address: the
        // AF_XDP wake-up call; no memory is passed.
        let r = unsafe { libc::sendto(self.fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        if r >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(false),
            _ => Err(e),
        }
    }

    /// TX entries the kernel has not taken yet.
    pub fn tx_pending(&mut self) -> u32 {
        RING_SIZE - self.tx.free(RING_SIZE)
    }

    /// Wakes the kernel's receive side (after the fill ring ran dry).
    pub fn rx_wakeup(&self) {
        // SAFETY: a zero-length non-blocking receive with null buffers: the
        // AF_XDP wake-up call for the fill ring.
        unsafe {
            libc::recvfrom(
                self.fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Packets the kernel dropped for this socket (RX ring full, no fill frame).
    pub fn rx_dropped(&self) -> u64 {
        // SAFETY: all-zero is a valid xdp_statistics (plain integers).
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` is live and `len` holds its size.
        let r = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if r < 0 {
            0
        } else {
            st.rx_dropped + st.rx_ring_full
        }
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // SAFETY: the UMEM mapped in `open`, unmapped once. The socket closes
        // after this (field drop order puts the rings' unmapping before it),
        // and the kernel keeps its own reference to the pinned pages until then.
        unsafe { libc::munmap(self.umem.cast(), FRAMES * FRAME_SIZE) };
    }
}

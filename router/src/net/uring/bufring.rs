//! The provided-buffer ring the multishot receive fills: two anonymous
//! mappings (the ring's slots and the buffers) that live until the kernel no
//! longer uses them (see the parent module's ownership rules).

use std::io;
use std::mem;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// An anonymous private mapping (page aligned, zeroed).
#[derive(Debug)]
pub(super) struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing does not alias any existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; owners only drop a
        // Mapping once the kernel no longer uses it (see the module docs).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A provided-buffer ring: `entries` ring slots and as many buffers of `buf_size` bytes.
#[derive(Debug)]
pub(super) struct BufRing {
    ring: Mapping,
    bufs: Mapping,
    pub(super) entries: u16,
    buf_size: usize,
    tail: u16,
}

impl BufRing {
    pub(super) fn new(entries: u16, buf_size: usize) -> io::Result<Self> {
        let ring = Mapping::new((entries as usize * mem::size_of::<BufRingEntry>()).max(4096))?;
        let bufs = Mapping::new(entries as usize * buf_size)?;
        Ok(BufRing { ring, bufs, entries, buf_size, tail: 0 })
    }

    pub(super) fn ring_addr(&self) -> u64 {
        self.ring.ptr as u64
    }

    /// Writes buffer `bid` into the next ring slot (not yet visible to the kernel).
    pub(super) fn push(&mut self, bid: u16) {
        let mask = self.entries - 1;
        let slot = (self.tail & mask) as usize;
        // SAFETY: slot < entries, and the ring mapping holds `entries` entries;
        // the kernel does not read slots past the published tail.
        let e = unsafe { &mut *self.ring.ptr.cast::<BufRingEntry>().add(slot) };
        // SAFETY: bid < entries, so the buffer lies inside the buffer mapping.
        e.set_addr(unsafe { self.bufs.ptr.add(bid as usize * self.buf_size) } as u64);
        e.set_len(self.buf_size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed buffer visible to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: the ring mapping starts with entry 0, whose `resv` field is the
        // ring's tail; the kernel reads it concurrently, hence the atomic store.
        let tail = unsafe { BufRingEntry::tail(self.ring.ptr.cast::<BufRingEntry>()) } as *mut u16;
        // SAFETY: `tail` is a valid, 2-aligned u16 inside the mapping, only ever
        // accessed atomically by us and the kernel.
        unsafe { AtomicU16::from_ptr(tail) }.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`.
    ///
    /// # Safety
    /// The kernel must have handed `bid` back (a completion named it) and it
    /// must not have been pushed again yet.
    pub(super) unsafe fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let len = len.min(self.buf_size);
        // SAFETY: bid < entries (checked by the caller's lookup) keeps the range
        // inside the mapping; the caller guarantees the kernel is not writing it.
        unsafe { std::slice::from_raw_parts(self.bufs.ptr.add(bid as usize * self.buf_size), len) }
    }
}

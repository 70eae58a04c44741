//! UDP socket setup and the small pieces of raw socket plumbing the fast
//! backends share: socket options, `sockaddr` conversion, control messages
//! (GRO segment size, `SO_RXQ_OVFL` drop counter, GSO segment size) and a
//! plain `sendmsg` with a bounded wait used for every fallback path.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::IoStats;

/// Options for opening a backend's socket (see [`super::open`]).
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Set `SO_REUSEPORT` so several workers can bind the same address.
    pub reuse_port: bool,
    /// Requested receive buffer (`SO_RCVBUFFORCE` when permitted, else `SO_RCVBUF`).
    pub recv_buffer: usize,
    /// Requested send buffer (`SO_SNDBUFFORCE` when permitted, else `SO_SNDBUF`).
    pub send_buffer: usize,
    /// For IPv6 addresses: accept IPv6 only (no v4-mapped traffic).
    pub only_v6: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions { reuse_port: false, recv_buffer: 8 << 20, send_buffer: 8 << 20, only_v6: false }
    }
}

/// Binds a UDP socket with the given options. The socket is left blocking;
/// the fast backends switch it to non-blocking.
pub fn bind(addr: SocketAddr, opts: &SocketOptions) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(opts.only_v6)?;
    }
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    set_buffer(socket.as_raw_fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, opts.recv_buffer);
    set_buffer(socket.as_raw_fd(), libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, opts.send_buffer);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Tries the `*FORCE` variant (needs `CAP_NET_ADMIN`, ignores `rmem_max`),
/// then the ordinary option (capped by `net.core.[rw]mem_max`). Failures are
/// not fatal: a smaller buffer only means more drops under bursts.
fn set_buffer(fd: RawFd, force: libc::c_int, plain: libc::c_int, size: usize) {
    if size == 0 {
        return;
    }
    // The kernel doubles the value it is given; ask for half.
    let v = (size / 2).min(i32::MAX as usize) as libc::c_int;
    if setsockopt_int(fd, libc::SOL_SOCKET, force, v).is_err() {
        if let Err(e) = setsockopt_int(fd, libc::SOL_SOCKET, plain, v) {
            tracing::debug!(error = %e, "setting a socket buffer size failed");
        }
    }
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size; the
    // kernel only reads it. An invalid fd yields EBADF, not UB.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an integer socket option.
pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes the kernel expects;
    // it writes at most `len` bytes into `value`.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut len) };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns on UDP GRO (receive coalescing). Returns whether the kernel accepted it.
pub fn enable_gro(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok()
}

/// Whether the kernel supports UDP GSO (`UDP_SEGMENT`) on this socket. The NIC
/// may still refuse a GSO send later (EIO); the backends fall back then.
pub fn probe_gso(fd: RawFd) -> bool {
    getsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok()
}

/// Turns on `SO_RXQ_OVFL`: every received datagram carries the socket's count
/// of datagrams dropped for lack of buffer space, so drops can be counted.
pub fn enable_rxq_ovfl(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).is_ok()
}

/// Turns on `SO_TIMESTAMPNS`: every received datagram carries the kernel's
/// receive time (`CLOCK_REALTIME`), taken when the datagram reached the
/// receiving host's stack, before any queueing in the socket. Benchmarks use
/// it to measure forwarding latency without the receiving application's
/// scheduling delay. Returns whether the kernel accepted it.
pub fn enable_rx_timestamps(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).is_ok()
}

/// Reads a boolean-ish environment variable: `0`, `false`, `off`, `no` are
/// false, anything else set is true; unset is `None`.
pub fn env_flag(name: &str) -> Option<bool> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().to_ascii_lowercase();
    Some(!matches!(v.as_str(), "0" | "false" | "off" | "no"))
}

// ---------------------------------------------------------------------------
// sockaddr conversion

/// A socket address in the kernel's layout.
#[derive(Clone, Copy)]
pub struct RawAddr {
    /// Storage large enough for any address family.
    pub storage: libc::sockaddr_storage,
    /// Bytes of `storage` in use.
    pub len: libc::socklen_t,
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawAddr({:?})", self.to_socket_addr())
    }
}

impl RawAddr {
    /// An all-zero address (family `AF_UNSPEC`).
    pub fn zeroed() -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        RawAddr { storage: unsafe { mem::zeroed() }, len: 0 }
    }

    /// Converts `addr`; a v4 address sent from an IPv6 socket (`v6_socket`)
    /// becomes v4-mapped.
    pub fn new(addr: SocketAddr, v6_socket: bool) -> Self {
        let addr = match addr {
            SocketAddr::V4(a) if v6_socket => {
                SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
            }
            a => a,
        };
        let mut raw = RawAddr::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for
                // sockaddr_in; we write one plain value at its start.
                unsafe { std::ptr::write((&mut raw.storage as *mut libc::sockaddr_storage).cast(), sin) };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write((&mut raw.storage as *mut libc::sockaddr_storage).cast(), sin6) };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    /// Converts back; `None` for families other than IPv4/IPv6.
    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        // SAFETY: the pointer is to a live, aligned sockaddr_storage.
        unsafe { sockaddr_to_std((&self.storage as *const libc::sockaddr_storage).cast(), self.len as usize) }
    }
}

/// Reads a socket address the kernel wrote.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes (alignment is not required).
pub unsafe fn sockaddr_to_std(ptr: *const u8, len: usize) -> Option<SocketAddr> {
    if len < mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: the caller guarantees `len` readable bytes; we checked the family fits.
    let family = unsafe { std::ptr::read_unaligned(ptr.cast::<libc::sa_family_t>()) };
    match family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: `len` covers a sockaddr_in; read_unaligned has no alignment need.
            let sin = unsafe { std::ptr::read_unaligned(ptr.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: `len` covers a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(ptr.cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// control messages

const fn cmsg_align(n: usize) -> usize {
    (n + mem::size_of::<usize>() - 1) & !(mem::size_of::<usize>() - 1)
}

/// `CMSG_SPACE(n)`.
pub const fn cmsg_space(n: usize) -> usize {
    cmsg_align(mem::size_of::<libc::cmsghdr>()) + cmsg_align(n)
}

/// `CMSG_LEN(n)`.
pub const fn cmsg_len(n: usize) -> usize {
    cmsg_align(mem::size_of::<libc::cmsghdr>()) + n
}

/// Control buffer space a receive needs: the GRO segment size and the
/// `SO_RXQ_OVFL` drop counter.
pub const RECV_CMSG_SPACE: usize = cmsg_space(mem::size_of::<libc::c_int>()) + cmsg_space(mem::size_of::<u32>());

/// Control buffer space of a receive timestamp (`SCM_TIMESTAMPNS`).
pub const TIMESTAMP_CMSG_SPACE: usize = cmsg_space(mem::size_of::<libc::timespec>());

/// Control buffer space of one GSO send (a `u16` segment size).
pub const GSO_CMSG_SPACE: usize = cmsg_space(mem::size_of::<u16>());

/// An 8-byte-aligned control buffer of `N` bytes.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub struct CmsgBuf<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for CmsgBuf<N> {
    fn default() -> Self {
        CmsgBuf([0; N])
    }
}

/// What the control messages of one received datagram said.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// GRO segment size: the payload is several datagrams of this size (the last may be shorter).
    pub gro_segment: Option<usize>,
    /// The socket's cumulative drop counter (`SO_RXQ_OVFL`).
    pub drop_counter: Option<u32>,
    /// Kernel receive time since the Unix epoch (`SO_TIMESTAMPNS`).
    pub timestamp: Option<Duration>,
}

/// Parses a received control buffer (`buf` is the part the kernel filled).
pub fn parse_recv_cmsgs(buf: &[u8]) -> RecvMeta {
    let mut meta = RecvMeta::default();
    let hdr = cmsg_align(mem::size_of::<libc::cmsghdr>());
    let mut off = 0;
    while off + hdr <= buf.len() {
        // SAFETY: `off + hdr <= buf.len()`, so a cmsghdr's bytes are in bounds;
        // read_unaligned needs no alignment.
        let cm = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast::<libc::cmsghdr>()) };
        let len = cm.cmsg_len as usize;
        if len < hdr || off + len > buf.len() {
            break;
        }
        let data = &buf[off + hdr..off + len];
        match (cm.cmsg_level, cm.cmsg_type) {
            (libc::SOL_UDP, libc::UDP_GRO) if data.len() >= 4 => {
                let v = i32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
                if v > 0 {
                    meta.gro_segment = Some(v as usize);
                }
            }
            (libc::SOL_UDP, libc::UDP_GRO) if data.len() >= 2 => {
                meta.gro_segment = Some(u16::from_ne_bytes([data[0], data[1]]) as usize);
            }
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) if data.len() >= 4 => {
                meta.drop_counter = Some(u32::from_ne_bytes([data[0], data[1], data[2], data[3]]));
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if data.len() >= mem::size_of::<libc::timespec>() => {
                // SAFETY: the length was checked; read_unaligned needs no alignment.
                let ts = unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<libc::timespec>()) };
                if ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec) {
                    meta.timestamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
            }
            _ => {}
        }
        off += cmsg_align(len);
    }
    meta
}

/// Writes one `UDP_SEGMENT` control message into `buf`.
pub fn write_gso_cmsg(buf: &mut CmsgBuf<GSO_CMSG_SPACE>, segment: u16) {
    // SAFETY: cmsghdr is plain old data; all-zero is valid.
    let mut cm: libc::cmsghdr = unsafe { mem::zeroed() };
    cm.cmsg_len = cmsg_len(mem::size_of::<u16>()) as _;
    cm.cmsg_level = libc::SOL_UDP;
    cm.cmsg_type = libc::UDP_SEGMENT;
    // SAFETY: the buffer is 8-aligned and holds CMSG_SPACE(2) >= sizeof(cmsghdr) bytes.
    unsafe { std::ptr::write(buf.0.as_mut_ptr().cast::<libc::cmsghdr>(), cm) };
    let hdr = cmsg_align(mem::size_of::<libc::cmsghdr>());
    buf.0[hdr..hdr + 2].copy_from_slice(&segment.to_ne_bytes());
}

/// Tracks the `SO_RXQ_OVFL` counter and adds its increases to `recv_drops`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DropCounter {
    last: Option<u32>,
}

impl DropCounter {
    /// Accounts a counter value seen on a received datagram.
    pub fn update(&mut self, value: u32, stats: &mut IoStats) {
        if let Some(last) = self.last {
            stats.recv_drops += u64::from(value.wrapping_sub(last));
        } else {
            stats.recv_drops += u64::from(value);
        }
        self.last = Some(value);
    }
}

// ---------------------------------------------------------------------------
// plain sends with a bounded wait

/// How long a send waits in total for socket buffer space before dropping.
pub const SEND_WAIT: Duration = Duration::from_millis(20);

/// Waits until `fd` is ready for `events` or `timeout` passes; returns whether it is ready.
pub fn wait_fd(fd: RawFd, events: libc::c_short, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfd` is one live pollfd; `ts_ptr` is null or points to a live
    // timespec; a null sigmask leaves the mask unchanged.
    let r = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
    match r {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Sends one datagram with `sendmsg`, waiting (bounded by `deadline`) for
/// buffer space on `EAGAIN`. Counts it as sent or as a send error.
pub fn send_one(fd: RawFd, dest: &RawAddr, data: &[u8], deadline: &mut Option<Instant>, stats: &mut IoStats) {
    let mut iov = super::msghdr::iovec(data);
    loop {
        let msg = super::msghdr::send_msghdr(dest, &mut iov, 1);
        stats.send_calls += 1;
        // SAFETY: every pointer in `msg` refers to a live local or to `data`,
        // which outlives the call; the kernel only reads them.
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
        if r >= 0 {
            stats.sent_datagrams += 1;
            return;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                let now = Instant::now();
                let d = *deadline.get_or_insert(now + SEND_WAIT);
                if now < d && wait_fd(fd, libc::POLLOUT, Some(d - now)).unwrap_or(false) {
                    continue;
                }
                stats.send_errors += 1;
                return;
            }
            _ => {
                stats.send_errors += 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_addr_round_trips() {
        for a in ["127.0.0.1:5000", "[::1]:6000", "[fe80::1%2]:7"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(RawAddr::new(a, a.is_ipv6()).to_socket_addr(), Some(a));
        }
        let v4: SocketAddr = "10.1.2.3:99".parse().unwrap();
        let mapped = RawAddr::new(v4, true).to_socket_addr().unwrap();
        assert_eq!(mapped, "[::ffff:10.1.2.3]:99".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn gso_cmsg_parses_as_written() {
        let mut b = CmsgBuf::<GSO_CMSG_SPACE>::default();
        write_gso_cmsg(&mut b, 1200);
        // parse_recv_cmsgs accepts a 2-byte UDP_GRO-level payload as a segment size.
        let mut raw = b.0;
        // SAFETY: the buffer is aligned and starts with the cmsghdr written above.
        let cm = unsafe { &mut *(raw.as_mut_ptr().cast::<libc::cmsghdr>()) };
        cm.cmsg_type = libc::UDP_GRO;
        assert_eq!(parse_recv_cmsgs(&raw).gro_segment, Some(1200));
        assert_eq!(parse_recv_cmsgs(&[]), RecvMeta::default());
        assert_eq!(parse_recv_cmsgs(&[1, 2, 3]), RecvMeta::default());
    }

    /// A datagram received on a socket with `SO_TIMESTAMPNS` carries the
    /// kernel's receive time, next to the GRO segment size.
    #[test]
    fn receive_timestamp_is_reported() {
        let opts = SocketOptions::default();
        let rx = bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let tx = bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        assert!(enable_rx_timestamps(rx.as_raw_fd()));
        enable_gro(rx.as_raw_fd());
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        tx.send_to(b"stamp me", rx.local_addr().unwrap()).unwrap();
        assert!(wait_fd(rx.as_raw_fd(), libc::POLLIN, Some(Duration::from_secs(10))).unwrap());
        let mut data = [0u8; 64];
        let mut cmsg = CmsgBuf::<{ TIMESTAMP_CMSG_SPACE + RECV_CMSG_SPACE }>::default();
        let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
        let mut h = crate::net::msghdr::empty_msghdr();
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_control = cmsg.0.as_mut_ptr().cast();
        h.msg_controllen = cmsg.0.len() as _;
        // SAFETY: the header points at live buffers of the lengths given.
        let n = unsafe { libc::recvmsg(rx.as_raw_fd(), &mut h, libc::MSG_DONTWAIT) };
        let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(n, 8);
        #[allow(clippy::unnecessary_cast)] // socklen_t on some libcs, size_t on glibc
        let clen = h.msg_controllen as usize;
        let meta = parse_recv_cmsgs(&cmsg.0[..clen]);
        let ts = meta.timestamp.expect("a receive timestamp");
        // Same clock (CLOCK_REALTIME); allow for a clock step of the VM.
        assert!(ts + Duration::from_secs(5) >= before && ts <= after + Duration::from_secs(5), "{ts:?}");
    }
}

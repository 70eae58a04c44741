//! AF_XDP backend: kernel bypass for the router's UDP media.
//!
//! Each worker has one AF_XDP socket ([`xsk`]) bound to one receive queue of
//! the interface that holds the router's address, with its own UMEM and its
//! fill, completion, RX and TX rings. The XDP program (router/bpf, loaded by
//! [`loader`], one per interface, shared by the workers and detached when the
//! last of them goes) hands the socket the IPv4 UDP datagrams for the worker's
//! port that arrive on its queue; everything else reaches the kernel.
//!
//! Beside it the worker keeps an ordinary UDP socket on the same address. It
//! receives what the program passes on (a datagram for this port that arrived
//! on another queue: steer ports to queues with `ethtool -N ... flow-type udp4
//! dst-port P action Q` on a multi-queue NIC) and sends what must not be
//! framed by hand: datagrams to the host's own addresses (the workers' wake
//! datagrams), to destinations whose next hop the kernel has not resolved (so
//! it sends the ARP request) or that are due a confirmation (see [`neigh`]),
//! and datagrams too long for the MTU (the kernel fragments them).
//!
//! Everything else is framed here ([`packet`]: Ethernet, IPv4 with DF, UDP,
//! both checksums) into the socket's TX frames, grouped per destination as the
//! other backends group them (one neighbour lookup per destination and flush),
//! and the kernel is kicked once per 32 frames in copy mode (its per-call
//! budget; [`xsk::TX_BUDGET`] where the kernel lets it be raised) or only
//! when it asks in zero-copy mode. Received datagrams are copied out of their frames into one [`BytesMut`] per batch (as `mmsg`
//! does), so each frame goes back on the fill ring at once; nothing is
//! allocated per packet on either path through AF_XDP.
//!
//! Zero-copy is asked for first and copy mode used if the driver refuses
//! (veth: always); native XDP first, generic if the driver refuses.
//! `CORECAST_XDP_COPY=1` skips the zero-copy attempt, `CORECAST_XDP_GENERIC=1`
//! the native one. IPv6 is refused at start.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::plan::SendPlan;
use super::sock::{self, SEND_WAIT};
use super::{BackendOptions, Datagram, IoBackend, IoStats};

pub mod loader;
pub mod neigh;
pub mod packet;
pub mod rtnl;
pub mod veth;
pub mod xsk;

use loader::{Attachment, XdpMode};
use neigh::{Interface, Neighbours, Route};
use packet::{ETH_LEN, HEADERS, IPV4_LEN, UDP_LEN};
use xsk::{Xsk, FRAME_SIZE, RING_SIZE};

/// One attachment per interface, shared by the workers on it, with the
/// queues they took.
struct Registered {
    /// The network namespace (its inode) and the interface's index in it.
    netns: u64,
    ifindex: u32,
    attachment: Weak<Attachment>,
    queues: Vec<u32>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

/// A worker's queue and port in the program's maps; released on drop.
#[derive(Debug)]
struct Lease {
    attachment: Arc<Attachment>,
    netns: u64,
    queue: u32,
    port: Option<u16>,
}

impl Lease {
    /// Takes the lowest free queue of `iface`, attaching the program first if
    /// no worker has yet.
    fn take(iface: &Interface, generic_only: bool) -> io::Result<Lease> {
        let netns = netns_id();
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|r| r.attachment.strong_count() > 0);
        let i = match reg.iter().position(|r| r.netns == netns && r.ifindex == iface.index) {
            Some(i) => i,
            None => {
                let a = Arc::new(Attachment::attach(iface.index, &iface.name, generic_only)?);
                reg.push(Registered {
                    netns,
                    ifindex: iface.index,
                    attachment: Arc::downgrade(&a),
                    queues: Vec::new(),
                });
                // Keep it alive until the lease holds it.
                let r = reg.last_mut().expect("just pushed");
                let queue = 0;
                r.queues.push(queue);
                return Ok(Lease { attachment: a, netns, queue, port: None });
            }
        };
        let r = &mut reg[i];
        let attachment = r.attachment.upgrade().ok_or_else(|| io::Error::other("XDP program detached"))?;
        let Some(queue) = (0..iface.rx_queues).find(|q| !r.queues.contains(q)) else {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} has {} receive queue(s), all taken by other workers: one AF_XDP worker per queue \
                     (fewer workers, or more queues: ethtool -L {} combined N)",
                    iface.name, iface.rx_queues, iface.name
                ),
            ));
        };
        r.queues.push(queue);
        Ok(Lease { attachment, netns, queue, port: None })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(p) = self.port {
            let _ = self.attachment.ports.set(u32::from(p), 0);
        }
        self.attachment.xsks.delete(self.queue);
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = reg.iter_mut().find(|r| r.netns == self.netns && r.ifindex == self.attachment.ifindex) {
            r.queues.retain(|&q| q != self.queue);
        }
    }
}

/// The calling thread's network namespace (interface indexes are per namespace).
fn netns_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino())
}

/// This network namespace's IPv4 addresses: (interface, address, netmask).
fn ipv4_addresses() -> io::Result<Vec<(String, Ipv4Addr, Ipv4Addr)>> {
    let list = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    Ok(list
        .filter_map(|a| {
            let ip = a.address.as_ref()?.as_sockaddr_in()?.ip();
            let mask = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in()).map_or(Ipv4Addr::BROADCAST, |m| m.ip());
            Some((a.interface_name, ip, mask))
        })
        .collect())
}

/// The AF_XDP backend.
pub struct XdpBackend {
    socket: UdpSocket,
    local: SocketAddrV4,
    xsk: Xsk,
    lease: Lease,
    neigh: Neighbours,
    /// Longest payload framed here (MTU and frame size); longer ones go through the kernel.
    max_payload: usize,
    batch: usize,
    max_datagram: usize,
    /// TX frames not in any ring.
    free: Vec<u64>,
    /// Scratch: the RX descriptors of one batch.
    rx: Vec<(u64, u32)>,
    rx_addrs: Vec<u64>,
    rbuf: BytesMut,
    /// Receive buffer of the kernel socket.
    kbuf: Vec<u8>,
    /// The last wait saw the kernel socket readable.
    kernel_readable: bool,
    kernel_looks: u32,
    queue: Vec<(SocketAddr, Bytes)>,
    plan: SendPlan,
    ip_id: u16,
    stats: IoStats,
}

impl std::fmt::Debug for XdpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpBackend").field("local", &self.local).field("xsk", &self.xsk).finish_non_exhaustive()
    }
}

impl XdpBackend {
    /// Opens the AF_XDP side for a bound IPv4 socket (see [`sock::bind`]),
    /// attaching the XDP program to its interface if no other worker has.
    pub fn new(socket: UdpSocket, opts: &BackendOptions) -> io::Result<Self> {
        let local = match socket.local_addr()? {
            SocketAddr::V4(a) if !a.ip().is_unspecified() && !a.ip().is_loopback() => a,
            a => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the xdp backend needs the IPv4 address of an Ethernet interface to listen on, not {a} \
                         (IPv6, wildcard and loopback are not supported)"
                    ),
                ))
            }
        };
        socket.set_nonblocking(true)?;
        let addrs = ipv4_addresses()?;
        let iface = Interface::for_address(*local.ip(), &addrs)?;
        let generic_only = sock::env_flag("CORECAST_XDP_GENERIC").unwrap_or(false);
        let zero_copy = !sock::env_flag("CORECAST_XDP_COPY").unwrap_or(false);
        let mut lease = Lease::take(&iface, generic_only)?;
        let xsk = Xsk::open(iface.index, lease.queue, zero_copy)?;
        lease.attachment.xsks.set(lease.queue, xsk.fd() as u32)?;
        lease.attachment.ports.set(u32::from(local.port()), lease.queue + 1)?;
        lease.port = Some(local.port());
        let max_payload = iface.mtu.min(FRAME_SIZE - ETH_LEN) - IPV4_LEN - UDP_LEN;
        tracing::info!(
            iface = %iface.name, driver = %iface.driver, queue = lease.queue, queues = iface.rx_queues,
            mode = ?lease.attachment.mode, zero_copy = xsk.zero_copy, mtu = iface.mtu, "AF_XDP socket ready"
        );
        let local_ips = addrs.iter().map(|a| a.1).collect();
        Ok(XdpBackend {
            socket,
            local,
            xsk,
            lease,
            neigh: Neighbours::new(iface, local_ips),
            max_payload,
            batch: opts.batch.clamp(1, RING_SIZE as usize),
            max_datagram: opts.max_datagram.max(64),
            free: Xsk::tx_frames().collect(),
            rx: Vec::new(),
            rx_addrs: Vec::new(),
            rbuf: BytesMut::new(),
            kbuf: vec![0; 65536],
            kernel_readable: true,
            kernel_looks: 0,
            queue: Vec::new(),
            plan: SendPlan::default(),
            ip_id: 0,
            stats: IoStats::default(),
        })
    }

    /// Whether the socket got zero-copy.
    pub fn zero_copy(&self) -> bool {
        self.xsk.zero_copy
    }

    /// Native or generic XDP.
    pub fn mode(&self) -> XdpMode {
        self.lease.attachment.mode
    }

    /// The queue this worker's socket is bound to.
    pub fn queue_id(&self) -> u32 {
        self.lease.queue
    }

    /// What is on the RX ring and the kernel socket now, without waiting.
    fn take_ready(&mut self, out: &mut Vec<Datagram>) -> usize {
        let n = self.xsk.rx_ready(self.batch as u32);
        self.rx.clear();
        self.rx_addrs.clear();
        for _ in 0..n {
            let d = self.xsk.rx_pop();
            self.rx.push(d);
            self.rx_addrs.push(d.0);
        }
        let mut appended = 0;
        if n > 0 {
            self.stats.recv_calls += 1;
            // One allocation for the batch (none once the last batch's datagrams are gone).
            let total: usize = self.rx.iter().map(|&(_, len)| len as usize).sum();
            self.rbuf.clear();
            self.rbuf.reserve(total);
            for &(addr, len) in &self.rx {
                let frame = self.xsk.frame(addr, len);
                match packet::parse(frame) {
                    Some(r) if *r.destination.ip() == *self.local.ip() && r.destination.port() == self.local.port() => {
                        self.rbuf.extend_from_slice(&frame[r.payload]);
                        out.push(Datagram { source: SocketAddr::V4(r.source), contents: self.rbuf.split().freeze() });
                        appended += 1;
                    }
                    _ => self.stats.recv_drops += 1,
                }
            }
            self.xsk.rx_recycle(&self.rx_addrs);
            self.stats.recv_datagrams += appended as u64;
            self.stats.xdp_recv_datagrams += appended as u64;
        }
        // The kernel socket's share (rare: datagrams from the host itself, or
        // from another queue); one copy each. Looked at when the last wait
        // saw it readable, and every 8th time regardless (a busy RX ring
        // means no waits): no system call per batch for nothing.
        self.kernel_looks = self.kernel_looks.wrapping_add(1);
        if !self.kernel_readable && !self.kernel_looks.is_multiple_of(8) {
            return appended;
        }
        self.kernel_readable = false;
        while appended < self.batch {
            match self.socket.recv_from(&mut self.kbuf) {
                Ok((len, source)) if len <= self.max_datagram => {
                    out.push(Datagram { source, contents: Bytes::copy_from_slice(&self.kbuf[..len]) });
                    self.stats.recv_datagrams += 1;
                    self.stats.recv_calls += 1;
                    appended += 1;
                }
                Ok(_) => self.stats.recv_drops += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // WouldBlock, or an ICMP error queued on the socket
            }
        }
        appended
    }

    /// Sends one datagram through the kernel socket.
    fn send_kernel(&mut self, dest: SocketAddr, data: &[u8]) {
        self.stats.send_calls += 1;
        match self.socket.send_to(data, dest) {
            Ok(_) => self.stats.sent_datagrams += 1,
            Err(_) => self.stats.send_errors += 1,
        }
    }

    /// Publishes the TX ring and kicks the kernel until it took everything
    /// (copy mode) or for at most [`SEND_WAIT`]; reclaims completed frames.
    fn push_tx(&mut self) -> io::Result<()> {
        let mut deadline: Option<Instant> = None;
        loop {
            self.stats.send_calls += 1;
            let taken = self.xsk.tx_submit()?;
            self.xsk.complete(&mut self.free);
            if self.xsk.tx_pending() == 0 || (taken && self.xsk.zero_copy) {
                return Ok(());
            }
            if !taken {
                let now = Instant::now();
                let d = *deadline.get_or_insert(now + SEND_WAIT);
                if now >= d {
                    return Ok(()); // the next flush kicks again
                }
                sock::wait_fd(self.xsk.fd(), libc::POLLOUT, Some(Duration::from_micros(100)))?;
            }
        }
    }

    /// A free TX frame, pushing and reclaiming if none is.
    fn tx_frame(&mut self) -> io::Result<Option<u64>> {
        if self.free.is_empty() || self.xsk.tx_room() == 0 {
            self.push_tx()?;
        }
        if self.xsk.tx_room() == 0 {
            return Ok(None);
        }
        Ok(self.free.pop())
    }
}

impl IoBackend for XdpBackend {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.local)
    }

    fn recv(&mut self, timeout: Option<Duration>, out: &mut Vec<Datagram>) -> io::Result<usize> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let n = self.take_ready(out);
            if n > 0 {
                return Ok(n);
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
            if self.xsk.fill_needs_wakeup() {
                self.xsk.rx_wakeup();
            }
            self.kernel_readable = wait_two(self.xsk.fd(), self.socket.as_raw_fd(), wait)?;
        }
    }

    fn queue(&mut self, destination: SocketAddr, contents: Bytes) {
        self.queue.push((destination, contents));
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        self.xsk.complete(&mut self.free);
        // Grouped per destination (order kept within one), as the GSO
        // backends group: one neighbour lookup per destination.
        self.plan.build(&self.queue, true, false, usize::MAX);
        let queue = std::mem::take(&mut self.queue);
        let now = Instant::now();
        let mut framed = 0u32;
        for ei in 0..self.plan.entries.len() {
            let e = self.plan.entries[ei];
            let dest = queue[self.plan.order[e.start as usize] as usize].0;
            let (route, dst) = match dest {
                SocketAddr::V4(d) => (self.neigh.route(*d.ip(), now), d),
                SocketAddr::V6(_) => {
                    self.stats.send_errors += u64::from(e.count);
                    continue;
                }
            };
            for k in e.start..e.start + e.count {
                let data = &queue[self.plan.order[k as usize] as usize].1;
                let mac = match route {
                    Route::Frame(mac) if data.len() <= self.max_payload => mac,
                    _ => {
                        self.send_kernel(dest, data);
                        continue;
                    }
                };
                let Some(addr) = self.tx_frame()? else {
                    self.stats.send_errors += 1; // no TX room for SEND_WAIT: dropped
                    continue;
                };
                let src_mac = self.neigh.interface().mac;
                let frame = self.xsk.frame_mut(addr);
                frame[HEADERS..HEADERS + data.len()].copy_from_slice(data);
                self.ip_id = self.ip_id.wrapping_add(1);
                let len = packet::write_headers(frame, (src_mac, mac), self.local, dst, self.ip_id, data.len());
                self.xsk.tx_push(addr, len as u32);
                self.stats.sent_datagrams += 1;
                self.stats.xdp_sent_datagrams += 1;
                framed += 1;
            }
        }
        self.queue = queue;
        self.queue.clear();
        if framed > 0 {
            self.push_tx()?;
        }
        Ok(())
    }

    fn stats(&self) -> IoStats {
        let mut s = self.stats;
        s.recv_drops += self.xsk.rx_dropped();
        s
    }

    fn describe(&self) -> String {
        let i = self.neigh.interface();
        format!(
            "xdp ({} {} queue {}/{}, {:?} XDP, {})",
            i.name,
            i.driver,
            self.lease.queue,
            i.rx_queues,
            self.lease.attachment.mode,
            if self.xsk.zero_copy { "zero-copy" } else { "copy mode" }
        )
    }
}

/// Waits until either descriptor is readable or `timeout` passes; returns
/// whether `b` is readable.
fn wait_two(a: libc::c_int, b: libc::c_int, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd { fd: a, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: b, events: libc::POLLIN, revents: 0 },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` are two live pollfds; `ts_ptr` is null or points to a
    // live timespec; a null sigmask leaves the mask unchanged.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        return Ok(true);
    }
    Ok(fds[1].revents != 0)
}

//! Where the `xdp` backend's frames go: the interface that owns the router's
//! address (name, index, MAC, MTU, queues) and next-hop MAC addresses from
//! the kernel's neighbour table (an `RTM_GETNEIGH` dump, [`super::rtnl`]), with
//! the default gateway (`/proc/thread-self/net/route`, read once at start) for destinations off the interface's subnet.
//!
//! The kernel keeps resolving: a destination without a complete entry, or
//! whose entry has not been confirmed for [`CONFIRM_EVERY`], gets its next
//! datagram through the kernel's UDP socket (which sends an ARP request or
//! confirms the entry), and the table is re-read at most every
//! [`REREAD_EVERY`] on a miss.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use corecast_core::hash::FxHashMap;

use super::packet::Mac;
use super::rtnl::Rtnl;

/// How often a destination's next datagram goes through the kernel, so that
/// the kernel re-confirms its neighbour entry (its default reachable time is 30 s).
pub const CONFIRM_EVERY: Duration = Duration::from_secs(10);
/// Least time between two reads of the neighbour table on misses.
pub const REREAD_EVERY: Duration = Duration::from_millis(50);

/// The interface holding the router's address.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Name (`eth0`).
    pub name: String,
    /// Index.
    pub index: u32,
    /// Its MAC address.
    pub mac: Mac,
    /// Its MTU (IP packet size).
    pub mtu: usize,
    /// Receive queues.
    pub rx_queues: u32,
    /// The router's address on it and the subnet's prefix length.
    pub addr: Ipv4Addr,
    /// Subnet mask.
    pub mask: u32,
    /// The driver (`veth`, `ice`, ...), for logs.
    pub driver: String,
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl Interface {
    /// Finds the interface that has `addr` (`ifaddrs`: the namespace's
    /// IPv4 addresses) and asks the kernel about it with ioctls on a socket
    /// of the calling thread's network namespace (not `/sys`, which shows the
    /// namespace it was mounted in).
    pub fn for_address(addr: Ipv4Addr, ifaddrs: &[(String, Ipv4Addr, Ipv4Addr)]) -> io::Result<Interface> {
        let Some((name, _, mask)) = ifaddrs.iter().find(|(_, a, _)| *a == addr) else {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("no interface has {addr}: the xdp backend must listen on an interface's own IPv4 address"),
            ));
        };
        let probe = std::net::UdpSocket::bind("0.0.0.0:0")?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&probe);
        let mut ifr = ifreq(name)?;
        ioctl(fd, libc::SIOCGIFHWADDR, &mut ifr).map_err(|e| ctx(e, name, "hardware address"))?;
        // struct sockaddr at 16: family (2 bytes), then the address.
        if u16::from_ne_bytes([ifr[16], ifr[17]]) != libc::ARPHRD_ETHER {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("{name} is not an Ethernet interface")));
        }
        let mac: Mac = ifr[18..24].try_into().expect("6 bytes");
        let mut ifr = ifreq(name)?;
        ioctl(fd, libc::SIOCGIFMTU, &mut ifr).map_err(|e| ctx(e, name, "MTU"))?;
        let mtu = i32::from_ne_bytes(ifr[16..20].try_into().expect("4 bytes")).max(68) as usize;
        let mut ifr = ifreq(name)?;
        ioctl(fd, libc::SIOCGIFINDEX, &mut ifr).map_err(|e| ctx(e, name, "index"))?;
        let index = i32::from_ne_bytes(ifr[16..20].try_into().expect("4 bytes")) as u32;
        // ETHTOOL_GCHANNELS: struct ethtool_channels (9 u32: cmd, 4 maxima,
        // rx, tx, other, combined counts).
        let mut ch = [0u32; 9];
        ch[0] = 0x3c;
        let rx_queues = match ethtool(fd, name, ch.as_mut_ptr().cast()) {
            Ok(()) => (ch[5] + ch[8]).max(1),
            Err(_) => 1,
        };
        // ETHTOOL_GDRVINFO: struct ethtool_drvinfo, the driver's name at 4.
        let mut info = [0u8; 196];
        info[..4].copy_from_slice(&3u32.to_ne_bytes());
        let driver = match ethtool(fd, name, info.as_mut_ptr()) {
            Ok(()) => {
                let d = &info[4..36];
                String::from_utf8_lossy(&d[..d.iter().position(|&c| c == 0).unwrap_or(32)]).into_owned()
            }
            Err(_) => "unknown".into(),
        };
        Ok(Interface { name: name.clone(), index, mac, mtu, rx_queues, addr, mask: u32::from(*mask), driver })
    }

    /// Whether `ip` is on this interface's subnet.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == u32::from(self.addr) & self.mask
    }
}

/// What to do with a datagram for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Frame it for this next-hop MAC.
    Frame(Mac),
    /// Send it through the kernel's socket (a local address, an unresolved
    /// or unconfirmed neighbour, no route on this interface).
    Kernel,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Mac,
    /// When it was read from the kernel's table.
    confirmed: Instant,
}

/// Next hops by destination, from the kernel's neighbour table.
#[derive(Debug)]
pub struct Neighbours {
    iface: Interface,
    /// The namespace's own addresses (sent through the kernel: loopback).
    local: Vec<Ipv4Addr>,
    gateway: Option<Ipv4Addr>,
    entries: FxHashMap<Ipv4Addr, Entry>,
    last_read: Option<Instant>,
    /// The kernel's table, asked over a netlink socket of the router's namespace.
    rtnl: Option<Rtnl>,
    scratch: Vec<(Ipv4Addr, Mac)>,
}

impl Neighbours {
    /// A table for `iface`; `local` are this host's addresses.
    pub fn new(iface: Interface, local: Vec<Ipv4Addr>) -> Self {
        let gateway =
            std::fs::read_to_string("/proc/thread-self/net/route").ok().and_then(|t| default_gateway(&t, &iface.name));
        let rtnl = Rtnl::open()
            .map_err(|e| tracing::warn!(error = %e, "no rtnetlink socket: every datagram goes through the kernel"))
            .ok();
        Neighbours { iface, local, gateway, entries: FxHashMap::default(), last_read: None, rtnl, scratch: Vec::new() }
    }

    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// Where a datagram to `dst` goes now.
    pub fn route(&mut self, dst: Ipv4Addr, now: Instant) -> Route {
        if dst.is_loopback() || dst.is_multicast() || dst.is_broadcast() || self.local.contains(&dst) {
            return Route::Kernel;
        }
        let hop = if self.iface.on_link(dst) {
            dst
        } else {
            match self.gateway {
                Some(g) => g,
                None => return Route::Kernel,
            }
        };
        if let Some(e) = self.entries.get(&hop) {
            if now.duration_since(e.confirmed) < CONFIRM_EVERY {
                return Route::Frame(e.mac);
            }
            // Due: this one goes through the kernel, which confirms the entry
            // (or resolves it anew); a later datagram reads it again.
            self.entries.remove(&hop);
            return Route::Kernel;
        }
        if self.last_read.is_none_or(|t| now.duration_since(t) >= REREAD_EVERY) {
            self.last_read = Some(now);
            self.scratch.clear();
            if let Some(r) = &mut self.rtnl {
                if let Err(e) = r.neighbours(self.iface.index, &mut self.scratch) {
                    tracing::debug!(error = %e, "neighbour dump failed");
                }
            }
            for &(ip, mac) in &self.scratch {
                self.entries.entry(ip).or_insert(Entry { mac, confirmed: now });
            }
            if let Some(e) = self.entries.get(&hop) {
                return Route::Frame(e.mac);
            }
        }
        Route::Kernel // unknown: the kernel resolves it
    }
}

fn ctx(e: io::Error, name: &str, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{name}: {what}: {e}"))
}

/// A `struct ifreq` (40 bytes) naming `name`.
fn ifreq(name: &str) -> io::Result<[u8; 40]> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("interface name too long: {name}")));
    }
    let mut r = [0u8; 40];
    r[..name.len()].copy_from_slice(name.as_bytes());
    Ok(r)
}

fn ioctl(fd: std::os::fd::RawFd, req: libc::c_ulong, ifr: &mut [u8; 40]) -> io::Result<()> {
    // SAFETY: `ifr` is a live 40-byte `struct ifreq` with a NUL-terminated
    // name; these requests read the name and write at most the union after it.
    let r = unsafe { libc::ioctl(fd, req, ifr.as_mut_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SIOCETHTOOL` with `data` (an ethtool command structure, its command set).
fn ethtool(fd: std::os::fd::RawFd, name: &str, data: *mut u8) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    ifr[16..24].copy_from_slice(&(data as usize as u64).to_ne_bytes());
    // SAFETY: `ifr` names the interface and points at `data`, which the
    // caller keeps alive and sized for the command in its first word.
    let r = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, ifr.as_mut_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The default route's gateway on `dev` from `/proc/net/route`.
pub fn default_gateway(text: &str, dev: &str) -> Option<Ipv4Addr> {
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || f[0] != dev || f[1] != "00000000" || f[7] != "00000000" {
            return None;
        }
        let g = u32::from_str_radix(f[2], 16).ok()?;
        (g != 0).then(|| Ipv4Addr::from(g.to_le_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_and_macs_parse() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_gateway(route, "eth0"), Some("192.168.1.1".parse().unwrap()));
        assert_eq!(default_gateway(route, "ccx0"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
        assert_eq!(parse_mac("01:02:03:04:05"), None);
    }
}

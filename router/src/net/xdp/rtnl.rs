//! The kernel's IPv4 neighbour table over rtnetlink (`RTM_GETNEIGH` dump).
//!
//! The netlink socket is opened once, by the thread that opens the backend,
//! so it stays in the router's network namespace whichever thread asks
//! later (`/proc/thread-self/net/arp` would follow the asking thread).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::packet::Mac;

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT: a known
/// link-layer address (NUD_INCOMPLETE and NUD_FAILED have none).
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80;
const NLMSG_HDR: usize = 16;
const NDMSG: usize = 12;

/// A route netlink socket of the namespace it was opened in.
#[derive(Debug)]
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens the socket (in the calling thread's network namespace).
    pub fn open() -> io::Result<Rtnl> {
        // SAFETY: plain socket creation; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // A dump answers at once; never hang the worker on it.
        let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
        // SAFETY: `tv` is a live timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Rtnl { fd, seq: 0, buf: vec![0; 32 << 10] })
    }

    /// The IPv4 neighbours with a link-layer address on interface `ifindex`.
    pub fn neighbours(&mut self, ifindex: u32, out: &mut Vec<(Ipv4Addr, Mac)>) -> io::Result<()> {
        let mut ndmsg = [0u8; NDMSG];
        ndmsg[0] = libc::AF_INET as u8;
        ndmsg[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        self.send_request(RTM_GETNEIGH, NLM_F_DUMP, &ndmsg)?;
        loop {
            let n = self.recv()?;
            if parse_dump(&self.buf[..n], self.seq, ifindex, out)? {
                return Ok(());
            }
        }
    }

    /// Sends one request of `kind` (the next sequence number, `NLM_F_REQUEST | flags`)
    /// whose body, after the netlink header, is `body`.
    fn send_request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = Vec::with_capacity(NLMSG_HDR + body.len());
        req.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&[0; 4]); // port id: the kernel's
        req.extend_from_slice(body);
        // SAFETY: `req` is live for the call and its length is passed.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one datagram of answers into the buffer; its length.
    fn recv(&mut self) -> io::Result<usize> {
        // SAFETY: `buf` is live and writable for its whole length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLM_F_ACK: u16 = 0x4;
const IFINFOMSG: usize = 16;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_FLAGS: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;

impl Rtnl {
    /// One request (header, `ifinfomsg` for `ifindex`, then `attrs`) and the
    /// kernel's answer: the first message of this sequence number.
    fn link_request(&mut self, kind: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> io::Result<Vec<u8>> {
        let mut body = vec![0u8; IFINFOMSG];
        body[0] = libc::AF_UNSPEC as u8;
        body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        body.extend_from_slice(attrs);
        self.send_request(kind, flags, &body)?;
        loop {
            let n = self.recv()?;
            let b = &self.buf[..n];
            if b.len() >= NLMSG_HDR && u32::from_ne_bytes([b[8], b[9], b[10], b[11]]) == self.seq {
                let len = (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize).min(b.len());
                return Ok(b[..len].to_vec());
            }
        }
    }

    /// The id of the XDP program attached to `ifindex` (0: none).
    pub fn xdp_prog_id(&mut self, ifindex: u32) -> io::Result<u32> {
        let m = self.link_request(RTM_GETLINK, 0, ifindex, &[])?;
        check_ack(&m)?;
        if m.len() < NLMSG_HDR + IFINFOMSG || u16::from_ne_bytes([m[4], m[5]]) != RTM_NEWLINK {
            return Ok(0);
        }
        let xdp = attrs(&m[NLMSG_HDR + IFINFOMSG..]).find(|(k, _)| *k == IFLA_XDP).map(|(_, v)| v);
        Ok(xdp
            .and_then(|x| attrs(x).find(|(k, v)| *k == IFLA_XDP_PROG_ID && v.len() == 4))
            .map_or(0, |(_, v)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]])))
    }

    /// Detaches the XDP program attached to `ifindex` with netlink (in the
    /// mode `flags`). The kernel refuses (`EBUSY`) when a live BPF link holds it.
    pub fn detach_xdp(&mut self, ifindex: u32, flags: u32) -> io::Result<()> {
        let mut inner = Vec::new();
        inner.extend_from_slice(&8u16.to_ne_bytes());
        inner.extend_from_slice(&IFLA_XDP_FD.to_ne_bytes());
        inner.extend_from_slice(&(-1i32).to_ne_bytes());
        inner.extend_from_slice(&8u16.to_ne_bytes());
        inner.extend_from_slice(&IFLA_XDP_FLAGS.to_ne_bytes());
        inner.extend_from_slice(&flags.to_ne_bytes());
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + inner.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&(IFLA_XDP | NLA_F_NESTED).to_ne_bytes());
        a.extend_from_slice(&inner);
        let m = self.link_request(RTM_SETLINK, NLM_F_ACK, ifindex, &a)?;
        check_ack(&m)
    }
}

/// An `NLMSG_ERROR` answer as an error (0: an acknowledgement).
fn check_ack(m: &[u8]) -> io::Result<()> {
    if m.len() >= NLMSG_HDR + 4 && u16::from_ne_bytes([m[4], m[5]]) == NLMSG_ERROR {
        let errno = -i32::from_ne_bytes([m[16], m[17], m[18], m[19]]);
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
    }
    Ok(())
}

/// The attributes (`struct nlattr`) in `b`: (type without flags, value).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        if len < 4 || len > b.len() {
            return None;
        }
        let item = (u16::from_ne_bytes([b[2], b[3]]) & 0x3fff, &b[4..len]);
        b = &b[((len + 3) & !3).min(b.len())..];
        Some(item)
    })
}

/// Parses one datagram of a neighbour dump into `out`; true once the dump is done.
pub fn parse_dump(mut b: &[u8], seq: u32, ifindex: u32, out: &mut Vec<(Ipv4Addr, Mac)>) -> io::Result<bool> {
    let u16_at = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    while b.len() >= NLMSG_HDR {
        let len = u32_at(b, 0) as usize;
        if len < NLMSG_HDR || len > b.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed netlink message"));
        }
        let (kind, msg) = (u16_at(b, 4), &b[..len]);
        if u32_at(b, 8) == seq {
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR if len >= NLMSG_HDR + 4 => {
                    let errno = -(u32_at(msg, NLMSG_HDR) as i32);
                    return if errno == 0 { Ok(true) } else { Err(io::Error::from_raw_os_error(errno)) };
                }
                RTM_NEWNEIGH if len >= NLMSG_HDR + NDMSG => {
                    let nd = &msg[NLMSG_HDR..];
                    let (family, index, state) = (nd[0], u32_at(nd, 4), u16_at(nd, 8));
                    if i32::from(family) == libc::AF_INET && index == ifindex && state & NUD_VALID != 0 {
                        let (mut dst, mut mac) = (None, None);
                        let mut a = &nd[NDMSG..];
                        while a.len() >= 4 {
                            let (alen, akind) = (usize::from(u16_at(a, 0)), u16_at(a, 2));
                            if alen < 4 || alen > a.len() {
                                break;
                            }
                            let v = &a[4..alen];
                            match (akind & 0x3fff, v.len()) {
                                (NDA_DST, 4) => dst = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                                (NDA_LLADDR, 6) => mac = <Mac>::try_from(v).ok(),
                                _ => {}
                            }
                            a = &a[((alen + 3) & !3).min(a.len())..];
                        }
                        if let (Some(d), Some(m)) = (dst, mac) {
                            out.push((d, m));
                        }
                    }
                }
                _ => {}
            }
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neigh(seq: u32, ifindex: u32, state: u16, ip: [u8; 4], mac: Option<[u8; 6]>) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDR + NDMSG];
        m[4..6].copy_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
        m[8..12].copy_from_slice(&seq.to_ne_bytes());
        m[16] = libc::AF_INET as u8;
        m[20..24].copy_from_slice(&ifindex.to_ne_bytes());
        m[24..26].copy_from_slice(&state.to_ne_bytes());
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&NDA_DST.to_ne_bytes());
        m.extend_from_slice(&ip);
        if let Some(mac) = mac {
            m.extend_from_slice(&10u16.to_ne_bytes());
            m.extend_from_slice(&NDA_LLADDR.to_ne_bytes());
            m.extend_from_slice(&mac);
            m.extend_from_slice(&[0, 0]);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn a_dump_yields_the_interfaces_resolved_neighbours_only() {
        let mut b = neigh(7, 3, 0x02, [10, 0, 0, 2], Some([1, 2, 3, 4, 5, 6]));
        b.extend(neigh(7, 4, 0x02, [10, 0, 0, 3], Some([1; 6]))); // another interface
        b.extend(neigh(7, 3, 0x01, [10, 0, 0, 4], None)); // incomplete
        b.extend(neigh(7, 3, 0x04, [10, 0, 0, 5], Some([2; 6]))); // stale: still usable
        let mut out = Vec::new();
        assert!(!parse_dump(&b, 7, 3, &mut out).unwrap());
        assert_eq!(out, vec![([10, 0, 0, 2].into(), [1, 2, 3, 4, 5, 6]), ([10, 0, 0, 5].into(), [2; 6])]);
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        done[8..12].copy_from_slice(&7u32.to_ne_bytes());
        assert!(parse_dump(&done, 7, 3, &mut out).unwrap());
        // Truncated or garbage input: an error or nothing, never a panic.
        for n in 0..b.len() {
            let _ = parse_dump(&b[..n], 7, 3, &mut Vec::new());
        }
        let mut junk = b.clone();
        for (i, x) in junk.iter_mut().enumerate() {
            *x ^= (i * 13) as u8;
        }
        let _ = parse_dump(&junk, 7, 3, &mut Vec::new());
    }
}

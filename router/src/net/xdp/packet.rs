//! Ethernet / IPv4 / UDP framing of the `xdp` backend: the headers the
//! kernel's UDP stack would write, written here (safe code only).
//!
//! IPv6 is refused by the backend at start; a received frame that is not an
//! unfragmented IPv4 UDP datagram with a valid IP header checksum is rejected.
//! The UDP checksum of received datagrams is not verified: on veth (and with
//! checksum offload on NICs) a locally sent datagram carries only the partial
//! pseudo-header sum; the media above is authenticated anyway.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// IPv4 header length without options.
pub const IPV4_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// All three.
pub const HEADERS: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
const ETH_P_IP: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
const TTL: u8 = 64;

/// A MAC address.
pub type Mac = [u8; 6];

/// One's complement sum of `data` (as big-endian 16-bit words, an odd last
/// byte padded with zero) added to `sum`, not folded.
//= https://www.rfc-editor.org/rfc/rfc1071#section-4.1
pub fn sum(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

/// Folds a [`sum`] to 16 bits and complements it.
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes Ethernet, IPv4 and UDP headers for `payload_len` bytes of payload
/// already at `frame[HEADERS..HEADERS + payload_len]`; returns the frame
/// length. `frame` must hold them (the caller checks against the MTU).
//= https://www.rfc-editor.org/rfc/rfc768
pub fn write_headers(
    frame: &mut [u8],
    (src_mac, dst_mac): (Mac, Mac),
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ip_id: u16,
    payload_len: usize,
) -> usize {
    let udp_len = (UDP_LEN + payload_len) as u16;
    let total = IPV4_LEN as u16 + udp_len;
    let eth = &mut frame[..ETH_LEN];
    eth[0..6].copy_from_slice(&dst_mac);
    eth[6..12].copy_from_slice(&src_mac);
    eth[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
    let ip = &mut frame[ETH_LEN..ETH_LEN + IPV4_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF: the size was checked against the MTU
    ip[8] = TTL;
    ip[9] = IPPROTO_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let c = fold(sum(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let off = ETH_LEN + IPV4_LEN;
    let udp = &mut frame[off..off + UDP_LEN];
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    // Pseudo-header: addresses, protocol, UDP length; then header and payload.
    let mut s = sum(0, &src.ip().octets());
    s = sum(s, &dst.ip().octets());
    s += u64::from(IPPROTO_UDP) + u64::from(udp_len);
    s = sum(s, &frame[off..off + UDP_LEN + payload_len]);
    let mut c = fold(s);
    if c == 0 {
        c = 0xffff; // 0 means "no checksum"
    }
    frame[off + 6..off + 8].copy_from_slice(&c.to_be_bytes());
    HEADERS + payload_len
}

/// A received IPv4 UDP datagram inside a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Sender.
    pub source: SocketAddrV4,
    /// Addressee.
    pub destination: SocketAddrV4,
    /// The payload's place in the frame.
    pub payload: Range<usize>,
}

/// Parses an Ethernet frame holding an unfragmented IPv4 UDP datagram;
/// `None` for anything else or anything inconsistent.
pub fn parse(frame: &[u8]) -> Option<Received> {
    if frame.len() < HEADERS || u16::from_be_bytes([frame[12], frame[13]]) != ETH_P_IP {
        return None;
    }
    let ip = &frame[ETH_LEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IPV4_LEN || ip.len() < ihl + UDP_LEN || ip[9] != IPPROTO_UDP {
        return None;
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 || fold(sum(0, &ip[..ihl])) != 0 {
        return None; // a fragment, or a bad header checksum
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let udp = &ip[ihl..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if total > ip.len() || total < ihl + UDP_LEN || udp_len < UDP_LEN || ihl + udp_len > total {
        return None;
    }
    let addr = |at: usize, port: usize| {
        SocketAddrV4::new(
            Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]),
            u16::from_be_bytes([udp[port], udp[port + 1]]),
        )
    };
    let start = ETH_LEN + ihl + UDP_LEN;
    Some(Received { source: addr(12, 0), destination: addr(16, 2), payload: start..start + udp_len - UDP_LEN })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; HEADERS + payload.len()];
        f[HEADERS..].copy_from_slice(payload);
        let src = "10.9.0.1:4000".parse().unwrap();
        let dst = "10.9.0.2:5000".parse().unwrap();
        let n = write_headers(&mut f, ([1; 6], [2; 6]), src, dst, 7, payload.len());
        assert_eq!(n, f.len());
        f
    }

    #[test]
    fn written_headers_parse_back_and_both_checksums_verify() {
        for len in [0usize, 1, 2, 3, 5, 1200, 1201] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let f = frame(&payload);
            let r = parse(&f).expect("parses");
            assert_eq!(r.source, "10.9.0.1:4000".parse().unwrap());
            assert_eq!(r.destination, "10.9.0.2:5000".parse().unwrap());
            assert_eq!(&f[r.payload], &payload[..]);
            assert_eq!(fold(sum(0, &f[ETH_LEN..ETH_LEN + IPV4_LEN])), 0, "IP header checksum");
            // The UDP checksum over pseudo-header + datagram folds to zero.
            let mut s = sum(0, &f[26..34]);
            s += 17 + (UDP_LEN + len) as u64;
            s = sum(s, &f[34..]);
            assert_eq!(fold(s), 0, "UDP checksum, payload {len}");
        }
    }

    #[test]
    fn checksum_matches_rfc1071s_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        assert_eq!(!fold(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
    }

    #[test]
    fn malformed_frames_are_rejected_without_panicking() {
        let good = frame(b"hello");
        assert!(parse(&good).is_some());
        for n in 0..good.len() - 5 {
            assert!(parse(&good[..n]).is_none(), "truncated to {n}");
        }
        let mut bad = good.clone();
        bad[ETH_LEN + 8] ^= 1; // TTL: header checksum no longer matches
        assert!(parse(&bad).is_none());
        let mut frag = good.clone();
        frag[ETH_LEN + 6] = 0x20; // more fragments
        assert!(parse(&frag).is_none());
        let mut long = good.clone();
        long[ETH_LEN + UDP_LEN + IPV4_LEN - 4] = 0xff; // UDP length past the datagram
        assert!(parse(&long).is_none());
        let mut arp = good;
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(parse(&arp).is_none());
        // Every byte flipped in turn: never a panic.
        let base = frame(&[9u8; 40]);
        for i in 0..base.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut f = base.clone();
                f[i] ^= x;
                let _ = parse(&f);
            }
        }
    }
}

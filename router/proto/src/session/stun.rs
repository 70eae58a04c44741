//! STUN framing (RFC 8489 §5, §14): the message header, attributes, and
//! the address attributes corecast uses (XOR-MAPPED-ADDRESS, ALTERNATE-SERVER).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{attr, SessionError, HEADER_LEN, MAGIC_COOKIE, MAX_LEN};

/// STUN message class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Request.
    Request,
    /// Indication.
    Indication,
    /// Success response.
    Success,
    /// Error response.
    Error,
}

/// A raw STUN message: class, method, transaction id and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunMessage {
    /// Message class.
    pub class: Class,
    /// 12-bit method (Binding is 1).
    pub method: u16,
    /// Transaction id.
    pub txid: [u8; 12],
    /// Attributes in order, `(type, value)`.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl StunMessage {
    /// Parses a STUN message.
    pub fn parse(b: &[u8]) -> Result<StunMessage, SessionError> {
        if b.len() > MAX_LEN {
            return Err(SessionError::TooLarge);
        }
        if b.len() < HEADER_LEN {
            return Err(SessionError::Truncated);
        }
        let ty = u16::from_be_bytes([b[0], b[1]]);
        if ty & 0xC000 != 0 {
            return Err(SessionError::NotStun);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if u32::from_be_bytes([b[4], b[5], b[6], b[7]]) != MAGIC_COOKIE || !len.is_multiple_of(4) {
            return Err(SessionError::NotStun);
        }
        if b.len() != HEADER_LEN + len {
            return Err(SessionError::Truncated);
        }
        let class = match ((ty >> 7) & 2) | ((ty >> 4) & 1) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::Success,
            _ => Class::Error,
        };
        let method = (ty & 0x000F) | ((ty & 0x00E0) >> 1) | ((ty & 0x3E00) >> 2);
        let mut txid = [0u8; 12];
        txid.copy_from_slice(&b[8..20]);
        let mut attrs = Vec::new();
        let mut p = HEADER_LEN;
        while p < b.len() {
            if p + 4 > b.len() {
                return Err(SessionError::Truncated);
            }
            let t = u16::from_be_bytes([b[p], b[p + 1]]);
            let l = u16::from_be_bytes([b[p + 2], b[p + 3]]) as usize;
            let s = p + 4;
            if s + l > b.len() {
                return Err(SessionError::Truncated);
            }
            attrs.push((t, b[s..s + l].to_vec()));
            p = s + l.div_ceil(4) * 4;
        }
        Ok(StunMessage { class, method, txid, attrs })
    }

    /// Serializes the message.
    pub fn to_vec(&self) -> Vec<u8> {
        let c = match self.class {
            Class::Request => 0u16,
            Class::Indication => 1,
            Class::Success => 2,
            Class::Error => 3,
        };
        let m = self.method & 0x0FFF;
        let ty = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7);
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.txid);
        for (t, v) in &self.attrs {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        let len = (out.len() - HEADER_LEN) as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// The value of the first attribute of type `t`.
    pub(super) fn get(&self, t: u16) -> Option<&[u8]> {
        self.attrs.iter().find(|(ty, _)| *ty == t).map(|(_, v)| v.as_slice())
    }
}

pub(super) fn xor_addr(a: SocketAddr, txid: &[u8; 12]) -> Vec<u8> {
    let mut v = vec![0u8];
    let port = a.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match a.ip() {
        IpAddr::V4(ip) => {
            v.push(1);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
        }
        IpAddr::V6(ip) => {
            v.push(2);
            v.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let o = ip.octets();
            v.extend((0..16).map(|i| o[i] ^ key[i]));
        }
    }
    v
}

pub(super) fn parse_xor_addr(v: &[u8], txid: &[u8; 12], t: u16) -> Result<SocketAddr, SessionError> {
    let e = SessionError::Attribute(t);
    if v.len() < 4 {
        return Err(e);
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (v[1], v.len()) {
        (1, 8) => {
            let ip = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC_COOKIE;
            Ok(SocketAddr::new(Ipv4Addr::from(ip).into(), port))
        }
        (2, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let mut o = [0u8; 16];
            for i in 0..16 {
                o[i] = v[4 + i] ^ key[i];
            }
            Ok(SocketAddr::new(Ipv6Addr::from(o).into(), port))
        }
        _ => Err(e),
    }
}

pub(super) fn plain_addr(a: SocketAddr) -> Vec<u8> {
    let mut v = vec![0u8];
    match a.ip() {
        IpAddr::V4(ip) => {
            v.push(1);
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            v.push(2);
            v.extend_from_slice(&a.port().to_be_bytes());
            v.extend_from_slice(&ip.octets());
        }
    }
    v
}

pub(super) fn parse_plain_addr(v: &[u8]) -> Result<SocketAddr, SessionError> {
    let e = SessionError::Attribute(attr::ALTERNATE_SERVER);
    if v.len() < 4 {
        return Err(e);
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    match (v[1], v.len()) {
        (1, 8) => Ok(SocketAddr::new(Ipv4Addr::new(v[4], v[5], v[6], v[7]).into(), port)),
        (2, 20) => {
            let o: [u8; 16] = v[4..20].try_into().map_err(|_| e)?;
            Ok(SocketAddr::new(Ipv6Addr::from(o).into(), port))
        }
        _ => Err(e),
    }
}

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

/// Why bytes are not a well-formed STUN message (framing only: header and
/// attribute boundaries, RFC 8489 §5 and §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the 20-byte header.
    #[error("STUN header truncated")]
    Truncated,
    /// The two top bits of the message type are not zero.
    #[error("not a STUN message (top bits set)")]
    NotStun,
    /// The magic cookie is not 0x2112A442.
    #[error("bad STUN magic cookie")]
    BadCookie,
    /// The length field is not a multiple of 4 (attributes are padded to 4 bytes).
    #[error("STUN length not a multiple of 4")]
    Unaligned,
    /// The datagram is not exactly the header plus the length it announces.
    #[error("STUN length {announced} does not match the {actual} bytes after the header")]
    LengthMismatch {
        /// Length field.
        announced: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// An attribute header or value runs past the end of the message.
    #[error("STUN attribute at offset {0} overruns the message")]
    AttrOverrun(usize),
}

impl From<FrameError> for SessionError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::NotStun | FrameError::BadCookie | FrameError::Unaligned => SessionError::NotStun,
            FrameError::Truncated | FrameError::LengthMismatch { .. } | FrameError::AttrOverrun(_) => {
                SessionError::Truncated
            }
        }
    }
}

/// A STUN message borrowed from its datagram: the header decoded, the
/// attributes walked lazily with [`Frame::attrs`]. Parsing checks the header
/// and that the length field matches the datagram; [`Attrs`] checks each
/// attribute's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Message class.
    pub class: Class,
    /// 12-bit method (Binding is 1).
    pub method: u16,
    /// Transaction id.
    pub txid: [u8; 12],
    bytes: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Checks the header of `b` (one whole STUN message) and decodes it.
    pub fn parse(b: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        if b.len() < HEADER_LEN {
            return Err(FrameError::Truncated);
        }
        let ty = u16::from_be_bytes([b[0], b[1]]);
        if ty & 0xC000 != 0 {
            return Err(FrameError::NotStun);
        }
        if u32::from_be_bytes([b[4], b[5], b[6], b[7]]) != MAGIC_COOKIE {
            return Err(FrameError::BadCookie);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if !len.is_multiple_of(4) {
            return Err(FrameError::Unaligned);
        }
        if b.len() != HEADER_LEN + len {
            return Err(FrameError::LengthMismatch { announced: len, actual: b.len() - HEADER_LEN });
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
        Ok(Frame { class, method, txid, bytes: b })
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The attributes in order.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs { b: self.bytes, p: HEADER_LEN }
    }
}

/// One attribute of a [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttr<'a> {
    /// Attribute type.
    pub ty: u16,
    /// Value, without padding.
    pub value: &'a [u8],
    /// Offset of the attribute's 4-byte header in the message.
    pub offset: usize,
}

/// Iterator over a [`Frame`]'s attributes; yields one error and stops if an
/// attribute overruns the message.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<RawAttr<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (b, p) = (self.b, self.p);
        if p >= b.len() {
            return None;
        }
        self.p = b.len();
        if p + 4 > b.len() {
            return Some(Err(FrameError::AttrOverrun(p)));
        }
        let ty = u16::from_be_bytes([b[p], b[p + 1]]);
        let l = u16::from_be_bytes([b[p + 2], b[p + 3]]) as usize;
        let s = p + 4;
        // The message length is a multiple of 4 and attributes start
        // aligned, so a value that fits leaves room for its padding.
        if s + l > b.len() {
            return Some(Err(FrameError::AttrOverrun(p)));
        }
        self.p = s + l.div_ceil(4) * 4;
        Some(Ok(RawAttr { ty, value: &b[s..s + l], offset: p }))
    }
}

/// Appends a STUN header with a zero length field.
pub(crate) fn put_header(out: &mut Vec<u8>, class: Class, method: u16, txid: &[u8; 12]) {
    let c = match class {
        Class::Request => 0u16,
        Class::Indication => 1,
        Class::Success => 2,
        Class::Error => 3,
    };
    let m = method & 0x0FFF;
    let ty = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7);
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(txid);
}

/// Sets the length field of the message starting at `start` in `out` to
/// `len` bytes after its header.
pub(crate) fn set_len(out: &mut [u8], start: usize, len: usize) {
    out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Appends an attribute (zero-padded) to the message starting at `start` in
/// `out`, and updates its length field.
pub(crate) fn put_attr(out: &mut Vec<u8>, start: usize, ty: u16, value: &[u8]) {
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(start + (out.len() - start).div_ceil(4) * 4, 0);
    let len = out.len() - start - HEADER_LEN;
    set_len(out, start, len);
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
        let f = Frame::parse(b)?;
        let attrs = f.attrs().map(|a| a.map(|a| (a.ty, a.value.to_vec()))).collect::<Result<_, _>>()?;
        Ok(StunMessage { class: f.class, method: f.method, txid: f.txid, attrs })
    }

    /// Serializes the message.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        put_header(&mut out, self.class, self.method, &self.txid);
        for (t, v) in &self.attrs {
            put_attr(&mut out, 0, *t, v);
        }
        out
    }

    /// The value of the first attribute of type `t`.
    pub(super) fn get(&self, t: u16) -> Option<&[u8]> {
        self.attrs.iter().find(|(ty, _)| *ty == t).map(|(_, v)| v.as_slice())
    }
}

pub(super) fn xor_addr(a: SocketAddr, txid: &[u8; 12]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    put_xor_addr(&mut v, a, txid);
    v
}

/// Appends the value of an XOR-MAPPED-ADDRESS (RFC 8489 §14.2) for `a`.
pub(crate) fn put_xor_addr(v: &mut Vec<u8>, a: SocketAddr, txid: &[u8; 12]) {
    v.push(0);
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
}

pub(crate) fn parse_xor_addr(v: &[u8], txid: &[u8; 12], t: u16) -> Result<SocketAddr, SessionError> {
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

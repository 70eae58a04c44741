//! Source description (RFC 3550 §6.5).

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::Ssrc;

/// One SDES chunk: a source and its `(item type, text)` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    /// Source.
    pub ssrc: Ssrc,
    /// Items (type 1 = CNAME, ...), each at most 255 bytes.
    pub items: Vec<(u8, Vec<u8>)>,
}

/// Parses the body (after the common header) of an SDES packet with `count` chunks.
pub(super) fn parse(body: &[u8], count: usize) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::with_capacity(count);
    let mut o = 0;
    for _ in 0..count {
        if o + 4 > body.len() {
            return Err(RtcpError::Malformed);
        }
        let ssrc = Ssrc(u32_at(body, o));
        o += 4;
        let mut items = Vec::new();
        loop {
            let t = *body.get(o).ok_or(RtcpError::Malformed)?;
            if t == 0 {
                o += 1;
                // skip to the next 32-bit boundary
                o = o.div_ceil(4) * 4;
                break;
            }
            let l = *body.get(o + 1).ok_or(RtcpError::Malformed)? as usize;
            let s = o + 2;
            if s + l > body.len() {
                return Err(RtcpError::Malformed);
            }
            items.push((t, body[s..s + l].to_vec()));
            o = s + l;
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

/// Appends an SDES packet carrying `chunks`, header included.
pub(super) fn write(chunks: &[SdesChunk], out: &mut Vec<u8>) -> Result<(), RtcpError> {
    if chunks.len() > 31 {
        return Err(RtcpError::Range);
    }
    let at = header(out, chunks.len() as u8, pt::SDES);
    for c in chunks {
        out.extend_from_slice(&c.ssrc.0.to_be_bytes());
        for (t, v) in &c.items {
            if *t == 0 || v.len() > 255 {
                return Err(RtcpError::Range);
            }
            out.push(*t);
            out.push(v.len() as u8);
            out.extend_from_slice(v);
        }
        out.push(0);
        while !(out.len() - at).is_multiple_of(4) {
            out.push(0);
        }
    }
    finish(out, at)
}

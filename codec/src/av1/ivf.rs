//! The IVF container's reader (what `corecast-client --save-ivf` writes and `--ivf` reads):
//! a 32-byte (or longer) `DKIF` header with fourcc `AV01`, then frames, each a 12-byte header
//! (size, u32 LE; timestamp, u64 LE) and the temporal unit.

use std::io;

/// Parses IVF bytes into frames; a malformed file is a clear error (never a panic: the bytes
/// may come from anywhere, `fuzz/fuzz_targets/ivf.rs`).
pub fn parse_ivf(b: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("IVF: {m}"));
    if b.len() < 32 || &b[0..4] != b"DKIF" {
        return Err(bad("no DKIF header"));
    }
    if &b[8..12] != b"AV01" {
        return Err(bad("not AV1 (fourcc is not AV01)"));
    }
    let hdr = usize::from(u16::from_le_bytes([b[6], b[7]]));
    if hdr < 32 || hdr > b.len() {
        return Err(bad("bad header length"));
    }
    let mut at = hdr;
    let mut out = Vec::new();
    while at < b.len() {
        if b.len() - at < 12 {
            return Err(bad("truncated frame header"));
        }
        let n = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        at += 12;
        if b.len() - at < n {
            return Err(bad("truncated frame"));
        }
        out.push(b[at..at + n].to_vec());
        at += n;
    }
    Ok(out)
}

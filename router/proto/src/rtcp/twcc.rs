//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1): transport-layer
//! feedback (RTPFB, PT 205), FMT 15.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|  FMT=15 |    PT=205     |           length              |
//! |                     SSRC of packet sender                     |
//! |                      SSRC of media source                     |
//! |      base sequence number     |      packet status count      |
//! |                 reference time                | fb pkt. count |
//! |          packet chunk         |         packet chunk          |
//! .                              ...                              .
//! |         packet chunk          |  recv delta   |  recv delta   |
//! .                              ...                              .
//! |           recv delta          |  recv delta   | padding       |
//! ```
//!
//! [`TransportFeedback`] is the message as data: one entry per transport-wide
//! sequence number from the base on, either not received or received with a
//! receive delta in 250 µs ticks (relative to the reference time for the first
//! received packet, to the previous received packet after that). The status
//! chunks are not part of the model: the writer chooses them the way libwebrtc
//! does (run-length chunks for runs, 2-bit status vectors of 7 symbols
//! otherwise, 1-bit vectors of 14 when no delta in them is large), and the
//! parser accepts any valid choice. Padding is written as RFC 3550 padding
//! (the P bit and a count in the last byte), as libwebrtc does; a parser also
//! accepts up to 3 bytes of zero padding without the P bit.
//!
//! The receiver side that builds these messages from packet arrivals is
//! [`super::TwccRecorder`].

use super::{finish, header, pt, u32_at, RtcpError};
use crate::ids::{SeqNo, Ssrc};

/// RTPFB format of transport-wide feedback.
pub const TWCC_FMT: u8 = 15;
/// The unit of receive deltas, in microseconds.
pub const TWCC_DELTA_TICK_US: i64 = 250;
/// The unit of the reference time, in microseconds.
pub const TWCC_REFERENCE_TIME_UNIT_US: i64 = 64_000;
/// Smallest reference time on the wire (24-bit signed).
pub const TWCC_REFERENCE_TIME_MIN: i32 = -(1 << 23);
/// Largest reference time on the wire (24-bit signed).
pub const TWCC_REFERENCE_TIME_MAX: i32 = (1 << 23) - 1;

/// Packet status symbols (§3.1.1).
const NOT_RECEIVED: u8 = 0;
const SMALL_DELTA: u8 = 1;
const LARGE_DELTA: u8 = 2;

/// Longest run a run-length chunk holds (13 bits).
const MAX_RUN: usize = 0x1fff;
/// Symbols in a 1-bit status vector chunk.
const ONE_BIT_CAPACITY: usize = 14;
/// Symbols in a 2-bit status vector chunk.
const TWO_BIT_CAPACITY: usize = 7;

/// Transport-wide congestion control feedback (RTPFB FMT 15).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransportFeedback {
    /// Sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Media source (libwebrtc sends the SSRC of one of the media streams; receivers ignore it).
    pub media_ssrc: Ssrc,
    /// Transport-wide sequence number of the first entry of [`Self::deltas`].
    pub base_seq: SeqNo,
    /// Reference time in multiples of 64 ms, 24-bit signed
    /// ([`TWCC_REFERENCE_TIME_MIN`]..=[`TWCC_REFERENCE_TIME_MAX`]); its epoch is the receiver's own.
    pub reference_time: i32,
    /// Feedback packet count: incremented (mod 256) for each feedback sent.
    pub fb_count: u8,
    /// One entry per sequence number from `base_seq` on (1..=65535 of them):
    /// `None` when not received, `Some(delta)` in 250 µs ticks when received.
    /// Deltas in 0..=255 are written in one byte, the others in two.
    pub deltas: Vec<Option<i16>>,
}

/// The status symbol of an entry.
fn symbol(d: Option<i16>) -> u8 {
    match d {
        None => NOT_RECEIVED,
        Some(0..=255) => SMALL_DELTA,
        Some(_) => LARGE_DELTA,
    }
}

/// Bytes a receive delta of this symbol takes.
fn delta_len(sym: u8) -> usize {
    match sym {
        SMALL_DELTA => 1,
        LARGE_DELTA => 2,
        _ => 0,
    }
}

impl TransportFeedback {
    /// Every entry's sequence number and arrival time, in µs since the
    /// receiver's epoch (`reference_time` × 64 ms plus the running sum of the
    /// deltas); `None` for packets not received.
    pub fn arrivals(&self) -> impl Iterator<Item = (SeqNo, Option<i64>)> + '_ {
        let mut t = i64::from(self.reference_time) * TWCC_REFERENCE_TIME_UNIT_US;
        self.deltas.iter().enumerate().map(move |(i, d)| {
            let at = d.map(|d| {
                t += i64::from(d) * TWCC_DELTA_TICK_US;
                t
            });
            (self.base_seq.wrapping_add(i as u16), at)
        })
    }

    /// Number of entries received.
    pub fn received(&self) -> usize {
        self.deltas.iter().filter(|d| d.is_some()).count()
    }

    /// Parses the feedback control information after the two SSRCs.
    pub(super) fn parse(sender_ssrc: Ssrc, media_ssrc: Ssrc, fci: &[u8]) -> Result<TransportFeedback, RtcpError> {
        if fci.len() < 8 {
            return Err(RtcpError::Malformed);
        }
        let base_seq = SeqNo(u16::from_be_bytes([fci[0], fci[1]]));
        let count = u16::from_be_bytes([fci[2], fci[3]]) as usize;
        if count == 0 {
            // libwebrtc rejects empty feedback too.
            return Err(RtcpError::Malformed);
        }
        let word = u32_at(fci, 4);
        // The top 24 bits, sign-extended by the arithmetic shift.
        let reference_time = (word as i32) >> 8;
        let fb_count = word as u8;

        let mut symbols: Vec<u8> = Vec::with_capacity(count);
        let mut p = 8;
        while symbols.len() < count {
            let c = fci.get(p..p + 2).ok_or(RtcpError::Malformed)?;
            let c = u16::from_be_bytes([c[0], c[1]]);
            p += 2;
            let left = count - symbols.len();
            if c & 0x8000 == 0 {
                // Run length chunk: T=0, S (2 bits), run length (13 bits).
                let sym = ((c >> 13) & 3) as u8;
                let run = (c as usize & MAX_RUN).min(left);
                if sym == 3 && run > 0 {
                    return Err(RtcpError::Malformed);
                }
                symbols.extend(std::iter::repeat_n(sym, run));
            } else if c & 0x4000 == 0 {
                // 1-bit status vector: 14 symbols, not received / small delta.
                symbols.extend((0..ONE_BIT_CAPACITY.min(left)).map(|i| ((c >> (13 - i)) & 1) as u8));
            } else {
                // 2-bit status vector: 7 symbols.
                for i in 0..TWO_BIT_CAPACITY.min(left) {
                    let sym = ((c >> (12 - 2 * i)) & 3) as u8;
                    if sym == 3 {
                        return Err(RtcpError::Malformed);
                    }
                    symbols.push(sym);
                }
            }
        }

        let mut deltas = Vec::with_capacity(count);
        for sym in symbols {
            deltas.push(match sym {
                SMALL_DELTA => {
                    let b = *fci.get(p).ok_or(RtcpError::Malformed)?;
                    p += 1;
                    Some(i16::from(b))
                }
                LARGE_DELTA => {
                    let b = fci.get(p..p + 2).ok_or(RtcpError::Malformed)?;
                    p += 2;
                    Some(i16::from_be_bytes([b[0], b[1]]))
                }
                _ => None,
            });
        }
        // Zero padding to the 32-bit boundary, when the P bit was not used.
        if fci.len() - p > 3 {
            return Err(RtcpError::Malformed);
        }
        Ok(TransportFeedback { sender_ssrc, media_ssrc, base_seq, reference_time, fb_count, deltas })
    }

    /// Appends the packet, header included. Fails with [`RtcpError::Range`]
    /// (writing nothing) when there are no entries or more than 65535, or
    /// the reference time does not fit in 24 bits.
    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let count = u16::try_from(self.deltas.len()).map_err(|_| RtcpError::Range)?;
        if count == 0 || !(TWCC_REFERENCE_TIME_MIN..=TWCC_REFERENCE_TIME_MAX).contains(&self.reference_time) {
            return Err(RtcpError::Range);
        }
        let at = header(out, TWCC_FMT, pt::RTPFB);
        out.extend_from_slice(&self.sender_ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.media_ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.base_seq.0.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        let word = ((self.reference_time as u32) << 8) | u32::from(self.fb_count);
        out.extend_from_slice(&word.to_be_bytes());

        let mut chunks = Chunker::default();
        for &d in &self.deltas {
            let sym = symbol(d);
            if !chunks.can_add(sym) {
                let c = chunks.emit();
                out.extend_from_slice(&c.to_be_bytes());
            }
            chunks.add(sym);
        }
        out.extend_from_slice(&chunks.encode_last().to_be_bytes());

        for d in self.deltas.iter().flatten() {
            match symbol(Some(*d)) {
                SMALL_DELTA => out.push(*d as u8),
                _ => out.extend_from_slice(&d.to_be_bytes()),
            }
        }
        let pad = (4 - (out.len() - at) % 4) % 4;
        if pad > 0 {
            out[at] |= 0x20;
            out.extend(std::iter::repeat_n(0, pad - 1));
            out.push(pad as u8);
        }
        finish(out, at).inspect_err(|_| out.truncate(at))
    }
}

/// Packs status symbols into chunks the way libwebrtc's `LastChunk` does:
/// symbols accumulate until the next one does not fit in any chunk kind,
/// then the most compact chunk for what is held is emitted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunker {
    /// The first symbols held (all of them while at most 14).
    syms: [u8; ONE_BIT_CAPACITY],
    size: usize,
    all_same: bool,
    has_large: bool,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker { syms: [0; ONE_BIT_CAPACITY], size: 0, all_same: true, has_large: false }
    }
}

impl Chunker {
    /// True when `sym` can join the symbols held without emitting a chunk first.
    pub(super) fn can_add(&self, sym: u8) -> bool {
        self.size < TWO_BIT_CAPACITY
            || (self.size < ONE_BIT_CAPACITY && !self.has_large && sym != LARGE_DELTA)
            || (self.size < MAX_RUN && self.all_same && self.syms[0] == sym)
    }

    /// Holds one more symbol; the caller has checked [`Chunker::can_add`].
    pub(super) fn add(&mut self, sym: u8) {
        if self.size < ONE_BIT_CAPACITY {
            self.syms[self.size] = sym;
        }
        self.all_same = self.all_same && sym == self.syms[0];
        self.has_large |= sym == LARGE_DELTA;
        self.size += 1;
    }

    /// Emits a full chunk, keeping what it does not cover.
    pub(super) fn emit(&mut self) -> u16 {
        if self.all_same {
            let c = self.run_length();
            *self = Chunker::default();
            return c;
        }
        if self.size == ONE_BIT_CAPACITY {
            let c = self.one_bit();
            *self = Chunker::default();
            return c;
        }
        // Between 7 and 13 symbols, a large delta among them or next: a
        // 2-bit vector of the first 7, the rest kept.
        let c = self.two_bit(TWO_BIT_CAPACITY);
        let rest = self.size.saturating_sub(TWO_BIT_CAPACITY).min(TWO_BIT_CAPACITY);
        let kept: [u8; TWO_BIT_CAPACITY] = std::array::from_fn(|i| self.syms[TWO_BIT_CAPACITY + i]);
        *self = Chunker::default();
        for &s in &kept[..rest] {
            self.add(s);
        }
        c
    }

    /// The chunk for all the symbols held (at least one), at the end of the list.
    pub(super) fn encode_last(&self) -> u16 {
        if self.all_same {
            self.run_length()
        } else if self.size <= TWO_BIT_CAPACITY {
            self.two_bit(self.size)
        } else {
            self.one_bit()
        }
    }

    /// Symbols held.
    pub(super) fn len(&self) -> usize {
        self.size
    }

    fn run_length(&self) -> u16 {
        (u16::from(self.syms[0]) << 13) | self.size as u16
    }

    fn one_bit(&self) -> u16 {
        let n = self.size.min(ONE_BIT_CAPACITY);
        (0..n).fold(0x8000, |c, i| c | (u16::from(self.syms[i] & 1) << (13 - i)))
    }

    fn two_bit(&self, n: usize) -> u16 {
        (0..n.min(TWO_BIT_CAPACITY)).fold(0xc000, |c, i| c | (u16::from(self.syms[i] & 3) << (12 - 2 * i)))
    }
}

/// Builds a feedback message incrementally while tracking its exact size on
/// the wire, so a writer can stop before a size limit.
#[derive(Debug, Clone)]
pub(super) struct FeedbackSizer {
    chunks: Chunker,
    emitted: usize,
    delta_bytes: usize,
}

impl FeedbackSizer {
    pub(super) fn new() -> FeedbackSizer {
        FeedbackSizer { chunks: Chunker::default(), emitted: 0, delta_bytes: 0 }
    }

    /// Size of the packet, header and padding included, with `d` added.
    pub(super) fn size_with(&self, d: Option<i16>) -> usize {
        let mut s = self.clone();
        s.add(d);
        s.size()
    }

    /// Accounts for one more entry.
    pub(super) fn add(&mut self, d: Option<i16>) {
        let sym = symbol(d);
        if !self.chunks.can_add(sym) {
            self.chunks.emit();
            self.emitted += 1;
        }
        self.chunks.add(sym);
        self.delta_bytes += delta_len(sym);
    }

    /// Size of the packet so far, header and padding included.
    pub(super) fn size(&self) -> usize {
        let chunks = self.emitted + usize::from(self.chunks.len() > 0);
        (20 + 2 * chunks + self.delta_bytes).next_multiple_of(4)
    }
}

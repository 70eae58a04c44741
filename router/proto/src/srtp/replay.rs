//! Packet-index bookkeeping: RFC 3711 §3.3.1 index estimation (the rollover
//! counter guess of appendix A) and the sliding replay window of §3.3.2,
//! plus the small per-SSRC table a context keeps them in.

use super::SrtpError;

/// How many packets behind the newest one a window still accepts.
pub(crate) const WINDOW: u64 = 128;

/// The largest SRTP packet index (48 bits: ROC << 16 | SEQ).
const MAX_RTP_INDEX: u64 = (1 << 48) - 1;

/// Guesses the 48-bit packet index of sequence number `seq` given the highest
/// index seen so far (RFC 3711 §3.3.1, appendix A): the index closest to
/// `highest` whose low 16 bits are `seq`. `None` if that would lie before
/// index 0 or past the 48-bit space.
#[inline]
pub(crate) fn estimate_rtp_index(highest: u64, seq: u16) -> Option<u64> {
    let highest_seq = highest as u16;
    let delta = seq.wrapping_sub(highest_seq) as i16;
    let index = highest.checked_add_signed(i64::from(delta))?;
    (index <= MAX_RTP_INDEX).then_some(index)
}

/// A sliding window over packet indices: the highest index accepted and a
/// bitmap of the [`WINDOW`] indices at and below it (bit `n` is
/// `highest - n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    highest: u64,
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first accepted index is `first`.
    pub(crate) fn starting_at(first: u64) -> ReplayWindow {
        ReplayWindow { highest: first, seen: 1 }
    }

    /// The highest index accepted so far.
    #[inline]
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `index` may be accepted: newer than anything seen, or within
    /// the window and not seen yet. Changes nothing.
    #[inline]
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= WINDOW || self.seen & (1u128 << behind) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    /// Records `index` as accepted (after [`ReplayWindow::check`] passed and
    /// the packet authenticated).
    #[inline]
    pub(crate) fn accept(&mut self, index: u64) {
        if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= WINDOW { 0 } else { self.seen << ahead };
            self.seen |= 1;
            self.highest = index;
        } else {
            let behind = self.highest - index;
            if behind < WINDOW {
                self.seen |= 1u128 << behind;
            }
        }
    }
}

/// What a context remembers about one SSRC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamState {
    /// SRTP: indices sent or received (the ROC is `highest >> 16`).
    pub(crate) rtp: Option<ReplayWindow>,
    /// SRTCP: indices sent or received (31 bits).
    pub(crate) rtcp: Option<ReplayWindow>,
}

/// How many SSRCs a table keeps inline (a leg's audio and video), before
/// the rest go to a vector.
const INLINE: usize = 2;

/// SSRC → [`StreamState`], searched linearly (a leg has a handful of
/// SSRCs), capped at `cap` entries. The first [`INLINE`] live in the table
/// itself, next to the context's keys: a packet on a leg whose state went
/// cold in the cache misses no separate heap line for its stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamTable {
    inline: [(u32, StreamState); INLINE],
    inline_len: usize,
    more: Vec<(u32, StreamState)>,
    cap: usize,
}

impl StreamTable {
    /// An empty table for at most `cap` SSRCs.
    pub(crate) fn new(cap: usize) -> StreamTable {
        StreamTable { inline: [(0, StreamState::default()); INLINE], inline_len: 0, more: Vec::new(), cap }
    }

    #[inline]
    fn position(&self, ssrc: u32) -> Option<usize> {
        match self.inline[..self.inline_len].iter().position(|(s, _)| *s == ssrc) {
            Some(i) => Some(i),
            None => self.more.iter().position(|(s, _)| *s == ssrc).map(|i| INLINE + i),
        }
    }

    #[inline]
    fn at(&mut self, pos: usize) -> &mut StreamState {
        match pos.checked_sub(INLINE) {
            None => &mut self.inline[pos].1,
            Some(i) => &mut self.more[i].1,
        }
    }

    /// The state of `ssrc`, if any.
    #[inline]
    pub(crate) fn get(&self, ssrc: u32) -> Option<&StreamState> {
        match self.inline[..self.inline_len].iter().find(|(s, _)| *s == ssrc) {
            Some((_, st)) => Some(st),
            None => self.more.iter().find(|(s, _)| *s == ssrc).map(|(_, st)| st),
        }
    }

    /// Whether a new SSRC could be added.
    #[inline]
    pub(crate) fn has_room_for(&self, ssrc: u32) -> bool {
        self.len() < self.cap || self.get(ssrc).is_some()
    }

    /// The state of `ssrc`, created empty if there is room.
    #[inline]
    pub(crate) fn get_or_insert(&mut self, ssrc: u32) -> Result<&mut StreamState, SrtpError> {
        if let Some(pos) = self.position(ssrc) {
            return Ok(self.at(pos));
        }
        if self.len() >= self.cap {
            return Err(SrtpError::TooManyStreams);
        }
        let entry = (ssrc, StreamState::default());
        if self.inline_len < INLINE {
            self.inline[self.inline_len] = entry;
            self.inline_len += 1;
            Ok(&mut self.inline[self.inline_len - 1].1)
        } else {
            self.more.push(entry);
            let last = self.more.len() - 1;
            Ok(&mut self.more[last].1)
        }
    }

    /// How many SSRCs are tracked.
    pub(crate) fn len(&self) -> usize {
        self.inline_len + self.more.len()
    }
}

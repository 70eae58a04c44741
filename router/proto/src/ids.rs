//! Protocol identifier newtypes.

/// RTP synchronization source identifier (RFC 3550 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl std::fmt::Display for Ssrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// What a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MediaKind {
    /// Audio: forwarded to SD receivers too.
    Audio,
    /// Video: SD receivers get the composite instead.
    Video,
    /// Not declared: classified by payload type (see `corecast-core`).
    #[default]
    Unknown,
}

impl MediaKind {
    /// Wire code (0 audio, 1 video, 2 unknown).
    pub fn code(self) -> u8 {
        match self {
            MediaKind::Audio => 0,
            MediaKind::Video => 1,
            MediaKind::Unknown => 2,
        }
    }
    /// From the wire code.
    pub fn from_code(c: u8) -> Option<MediaKind> {
        match c {
            0 => Some(MediaKind::Audio),
            1 => Some(MediaKind::Video),
            2 => Some(MediaKind::Unknown),
            _ => None,
        }
    }
}

/// RTP payload type (7 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pt(pub u8);

/// RTP timestamp in the media clock of its stream (wraps at 2^32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MediaTime(pub u32);

impl MediaTime {
    /// Signed distance `other - self`, interpreting wrap-around as RFC 3550 does.
    pub fn delta(self, other: MediaTime) -> i32 {
        other.0.wrapping_sub(self.0) as i32
    }
}

/// 16-bit RTP sequence number with wrap-around arithmetic (RFC 3550 §A.1).
///
/// Comparison is serial-number arithmetic (RFC 1982): `a` is *newer* than `b`
/// when `a - b (mod 2^16)` is in `1..2^15`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// The next sequence number.
    pub fn next(self) -> SeqNo {
        SeqNo(self.0.wrapping_add(1))
    }
    /// `self + n` modulo 2^16.
    pub fn wrapping_add(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }
    /// Signed distance from `self` to `other` (`other - self`), in `-32768..=32767`.
    pub fn delta(self, other: SeqNo) -> i16 {
        other.0.wrapping_sub(self.0) as i16
    }
    /// True when `self` comes after `other` in serial-number order.
    pub fn is_newer_than(self, other: SeqNo) -> bool {
        let d = self.0.wrapping_sub(other.0);
        d != 0 && d < 0x8000
    }
}

/// Extends 16-bit sequence numbers to 64-bit ones across wrap-arounds
/// (the "cycles" counter of RFC 3550 §A.1, without the probation logic).
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    /// Returns the extended value for `seq`, tracking the highest seen.
    /// Packets older than the highest (reordered) get the extension that
    /// puts them closest to it.
    pub fn extend(&mut self, seq: SeqNo) -> u64 {
        let Some(last) = self.last else {
            let v = seq.0 as u64 + (1 << 16);
            self.last = Some(v);
            return v;
        };
        let d = SeqNo(last as u16).delta(seq) as i64;
        let v = (last as i64 + d).max(0) as u64;
        if v > last {
            self.last = Some(v);
        }
        v
    }
    /// Highest extended sequence number seen so far.
    pub fn highest(&self) -> Option<u64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraparound() {
        assert_eq!(SeqNo(65535).next(), SeqNo(0));
        assert!(SeqNo(0).is_newer_than(SeqNo(65535)));
        assert!(!SeqNo(65535).is_newer_than(SeqNo(0)));
        assert_eq!(SeqNo(65530).delta(SeqNo(5)), 11);
        assert_eq!(SeqNo(5).delta(SeqNo(65530)), -11);
        assert!(!SeqNo(7).is_newer_than(SeqNo(7)));
        assert_eq!(MediaTime(u32::MAX - 9).delta(MediaTime(10)), 20);
    }

    #[test]
    fn extender_across_wrap() {
        let mut e = SeqExtender::default();
        let a = e.extend(SeqNo(65534));
        let b = e.extend(SeqNo(65535));
        let c = e.extend(SeqNo(0));
        let d = e.extend(SeqNo(1));
        let late = e.extend(SeqNo(65535));
        assert_eq!([b - a, c - b, d - c], [1, 1, 1]);
        assert_eq!(late, b);
        assert_eq!(e.highest(), Some(d));
    }

    proptest! {
        #[test]
        fn newer_is_antisymmetric(a in any::<u16>(), b in any::<u16>()) {
            let (a, b) = (SeqNo(a), SeqNo(b));
            if a != b && a.delta(b) != i16::MIN {
                prop_assert!(a.is_newer_than(b) != b.is_newer_than(a));
            }
        }

        #[test]
        fn add_then_delta(a in any::<u16>(), n in 0u16..0x8000) {
            prop_assert_eq!(SeqNo(a).delta(SeqNo(a).wrapping_add(n)), n as i16);
        }

        #[test]
        fn extender_monotonic_for_increasing_stream(start in any::<u16>(), steps in proptest::collection::vec(1u16..1000, 1..200)) {
            let mut e = SeqExtender::default();
            let mut s = SeqNo(start);
            let mut prev = e.extend(s);
            for st in steps {
                s = s.wrapping_add(st);
                let v = e.extend(s);
                prop_assert_eq!(v - prev, st as u64);
                prev = v;
            }
        }
    }
}

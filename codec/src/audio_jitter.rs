//! A small reorder (jitter) buffer for one audio source of the mixer:
//! Opus payloads by RTP sequence number, taken out one packet at a time in
//! sequence order. It holds at most [`SLOTS`] packets (640 ms of 20 ms
//! frames); how long a source waits before it plays out is the audio
//! mixer's business (`audio_mix`), not the buffer's.
//!
//! Sequence numbers are compared with wrap-around (RFC 3550 §A.1 in spirit:
//! the signed 16-bit distance). A packet behind the play-out point is late
//! and dropped; one more than [`SLOTS`] ahead of it or behind it (a sender
//! that restarted, or a gap longer than the buffer) starts the buffer over.
//! Payload buffers are kept and reused, so storing a packet allocates only
//! while a slot grows to the largest payload it has held.

/// Packets the buffer holds.
pub const SLOTS: usize = 32;

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Stored for play-out.
    Stored,
    /// Already stored: dropped.
    Duplicate,
    /// Behind the play-out point (late, or a duplicate of one played): dropped.
    Late,
    /// Too far from the play-out point: the buffer started over at this packet.
    Reset,
}

/// The next packet in sequence order ([`JitterBuffer::pop`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// The packet's payload.
    Packet(&'a [u8]),
    /// The packet is missing but later ones are here: conceal it. `fec` is
    /// the following packet's payload when it is here (Opus in-band FEC can
    /// rebuild the lost frame from it).
    Lost {
        /// The payload of the packet after the lost one, if stored.
        fec: Option<&'a [u8]>,
    },
    /// Nothing stored at or after the play-out point.
    Empty,
}

#[derive(Debug, Default)]
struct Slot {
    seq: u16,
    full: bool,
    data: Vec<u8>,
}

/// See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    slots: Vec<Slot>,
    /// Sequence number played out next (`None` before the first packet).
    next: Option<u16>,
    stored: usize,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer::new()
    }
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new() -> JitterBuffer {
        JitterBuffer { slots: (0..SLOTS).map(|_| Slot::default()).collect(), next: None, stored: 0 }
    }

    /// Packets stored.
    pub fn len(&self) -> usize {
        self.stored
    }

    /// Nothing stored.
    pub fn is_empty(&self) -> bool {
        self.stored == 0
    }

    /// Stores the packet `seq` with `payload`.
    pub fn push(&mut self, seq: u16, payload: &[u8]) -> Push {
        let next = *self.next.get_or_insert(seq);
        let d = seq.wrapping_sub(next) as i16;
        let outcome = if d < 0 && d >= -(SLOTS as i16) {
            return Push::Late;
        } else if d < 0 || d >= SLOTS as i16 {
            self.clear();
            self.next = Some(seq);
            Push::Reset
        } else {
            Push::Stored
        };
        let slot = &mut self.slots[usize::from(seq) % SLOTS];
        if slot.full && slot.seq == seq {
            return Push::Duplicate;
        }
        if !slot.full {
            self.stored += 1;
        }
        slot.seq = seq;
        slot.full = true;
        slot.data.clear();
        slot.data.extend_from_slice(payload);
        outcome
    }

    /// Takes the next packet in sequence order (see [`Next`]); a packet or
    /// a loss moves the play-out point on by one.
    pub fn pop(&mut self) -> Next<'_> {
        let Some(next) = self.next else { return Next::Empty };
        if self.stored == 0 {
            return Next::Empty;
        }
        self.next = Some(next.wrapping_add(1));
        let i = usize::from(next) % SLOTS;
        if self.slots[i].full && self.slots[i].seq == next {
            self.slots[i].full = false;
            self.stored -= 1;
            return Next::Packet(&self.slots[i].data);
        }
        let after = next.wrapping_add(1);
        let s = &self.slots[usize::from(after) % SLOTS];
        Next::Lost { fec: (s.full && s.seq == after).then_some(&s.data[..]) }
    }

    /// Drops everything; the next packet pushed sets the play-out point.
    pub fn clear(&mut self) {
        for s in &mut self.slots {
            s.full = false;
        }
        self.stored = 0;
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut JitterBuffer) -> Vec<Option<u8>> {
        let mut v = Vec::new();
        loop {
            match b.pop() {
                Next::Packet(p) => v.push(Some(p[0])),
                Next::Lost { .. } => v.push(None),
                Next::Empty => return v,
            }
        }
    }

    #[test]
    fn reorders_and_reports_a_gap_as_lost() {
        let mut b = JitterBuffer::new();
        for s in [10u16, 12, 11, 14] {
            assert_eq!(b.push(s, &[s as u8]), Push::Stored);
        }
        assert_eq!(drain(&mut b), vec![Some(10), Some(11), Some(12), None, Some(14)]);
    }

    #[test]
    fn a_loss_offers_the_next_packet_for_fec() {
        let mut b = JitterBuffer::new();
        b.push(1, &[1]);
        b.push(3, &[3]);
        assert_eq!(b.pop(), Next::Packet(&[1]));
        assert_eq!(b.pop(), Next::Lost { fec: Some(&[3][..]) });
        assert_eq!(b.pop(), Next::Packet(&[3]));
        assert_eq!(b.pop(), Next::Empty);
    }

    #[test]
    fn late_duplicate_and_far_packets() {
        let mut b = JitterBuffer::new();
        b.push(100, &[0]);
        b.push(101, &[1]);
        assert_eq!(b.push(101, &[1]), Push::Duplicate);
        assert!(matches!(b.pop(), Next::Packet(_)));
        assert_eq!(b.push(100, &[0]), Push::Late);
        assert_eq!(b.push(101 + SLOTS as u16, &[9]), Push::Reset);
        assert_eq!((b.len(), drain(&mut b)), (1, vec![Some(9)]));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut b = JitterBuffer::new();
        for s in [65534u16, 0, 65535, 1] {
            assert_eq!(b.push(s, &[s as u8]), Push::Stored);
        }
        assert_eq!(drain(&mut b), vec![Some(254), Some(255), Some(0), Some(1)]);
    }
}

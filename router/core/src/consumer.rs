//! Consumers: one receiver's state for one producer, kept only where the
//! receiver's copy of the stream differs from "as received".

use bytes::Bytes;
use std::time::Instant;

use crate::picture_id::PictureIds;
use corecast_proto::{SeqNo, Ssrc};

use crate::framerate::{next_layer, Frame};

/// How one receiver gets one producer's stream when that differs from "as
/// received": the stream is paused (an SD receiver does not get raw video),
/// or it resumed after a pause, or frames of upper temporal layers are
/// skipped (a receiver with a frame-rate cap), and its sequence numbers are
/// shifted so that the receiver sees no gap (mediasoup's SeqManager does
/// the same).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consumer {
    pub ssrc: Ssrc,
    pub paused: bool,
    /// Outgoing = incoming + offset (mod 2^16).
    pub offset: u16,
    /// Last sequence number sent to this receiver.
    pub last_out: Option<SeqNo>,
    /// A receiver with a frame-rate cap: the highest temporal layer it gets
    /// (`None`: not decided yet, the base layer only). See `framerate`.
    pub layer: Option<u8>,
    /// A simulcast source (`ssrc` is its group's): the layer the receiver
    /// gets now (`None`: none yet, or paused: it starts at a keyframe),
    /// the layer it is to get (`None`: the best there is), the outgoing
    /// timestamp = incoming + `ts_offset`, and the last timestamp sent
    /// with when (see `simulcast`).
    pub layer_on: Option<Ssrc>,
    pub target: Option<Ssrc>,
    /// The layer it got was dropped to move down (`simulcast::allocate`);
    /// the target's keyframe ends the move.
    pub dropped: bool,
    pub ts_offset: u32,
    pub last_ts: Option<(u32, Instant)>,
    /// An SVC stream (see `svc`): the highest spatial layer the receiver is
    /// to get (`None`: every one) and the one it gets now (`None`: none yet).
    pub spatial_target: Option<u8>,
    pub spatial_on: Option<u8>,
    /// A VP8 simulcast group: the shift of its picture ids (`picture_id`).
    pub pictures: PictureIds,
    /// The last shifts and the first outgoing number each applied to (a
    /// ring), so that a NACK for a packet sent before the shift last
    /// changed is mapped back with the shift it was sent with.
    shifts: [Shift; OFFSETS],
    shifts_len: u8,
    shifts_next: u8,
}

/// How a run of outgoing packets, from `out` on, relates to what came in:
/// incoming = outgoing − `offset`, of stream `source` (a simulcast layer;
/// else the consumer's own SSRC), whose timestamps were moved by `ts_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shift {
    pub out: u16,
    pub offset: u16,
    pub source: Ssrc,
    pub ts_offset: u32,
    /// VP8 picture ids' shift (`picture_id`): PictureID, TL0PICIDX.
    pub pictures: (u16, u8),
}

impl Shift {
    /// No shift: packet `out` of `source` as it came.
    pub fn unshifted(out: u16, source: Ssrc) -> Shift {
        Shift { out, offset: 0, source, ts_offset: 0, pictures: (0, 0) }
    }

    /// Whether a packet sent with it was rewritten beyond its sequence number.
    pub fn rewrites(&self) -> bool {
        self.ts_offset != 0 || self.pictures != (0, 0)
    }
}

/// Shifts remembered per consumer: at 30 frames/s capped to T0, one change
/// per kept frame, so 16 cover two seconds (the retransmission buffer
/// keeps one).
const OFFSETS: usize = 16;

impl Consumer {
    pub(crate) fn new(ssrc: Ssrc, paused: bool, last_out: Option<SeqNo>) -> Consumer {
        Consumer {
            ssrc,
            paused,
            offset: 0,
            last_out,
            layer: None,
            layer_on: None,
            target: None,
            dropped: false,
            ts_offset: 0,
            last_ts: None,
            spatial_target: None,
            spatial_on: None,
            pictures: PictureIds::default(),
            shifts: [Shift::unshifted(0, ssrc); OFFSETS],
            shifts_len: 0,
            shifts_next: 0,
        }
    }

    /// The stream packets come from now: the simulcast layer, else the consumer's own SSRC.
    #[inline]
    fn source(&self) -> Ssrc {
        self.layer_on.unwrap_or(self.ssrc)
    }

    /// Records that packet `out` went out with the current shift.
    #[inline]
    pub(crate) fn note_offset(&mut self, out: SeqNo) {
        let last = (usize::from(self.shifts_next) + OFFSETS - 1) % OFFSETS;
        let now = Shift {
            out: out.0,
            offset: self.offset,
            source: self.source(),
            ts_offset: self.ts_offset,
            pictures: (self.pictures.picture_offset, self.pictures.tl0_offset),
        };
        let same = |s: &Shift| {
            s.offset == now.offset
                && s.source == now.source
                && s.ts_offset == now.ts_offset
                && s.pictures == now.pictures
        };
        if self.shifts_len > 0 && same(&self.shifts[last]) {
            return;
        }
        self.shifts[usize::from(self.shifts_next)] = now;
        self.shifts_next = ((usize::from(self.shifts_next) + 1) % OFFSETS) as u8;
        self.shifts_len = (self.shifts_len + 1).min(OFFSETS as u8);
    }

    /// The shift packet `out` was sent with (the current one when it is
    /// older than what is remembered).
    pub fn shift_of(&self, out: SeqNo) -> Shift {
        let n = usize::from(self.shifts_len);
        let newest_first = (1..=n).map(|k| self.shifts[(usize::from(self.shifts_next) + OFFSETS - k) % OFFSETS]);
        newest_first.into_iter().find(|s| out.0.wrapping_sub(s.out) as i16 >= 0).unwrap_or(Shift {
            out: out.0,
            offset: self.offset,
            source: self.source(),
            ts_offset: self.ts_offset,
            pictures: (self.pictures.picture_offset, self.pictures.tl0_offset),
        })
    }

    /// Whether a packet sent with shift `s` is of a simulcast layer the
    /// receiver has moved off (or is moving off: dropped while it waits for
    /// the target's keyframe): its decoder starts again at that keyframe,
    /// so repairing it is of no use.
    #[inline]
    pub fn left_behind(&self, s: &Shift) -> bool {
        (self.layer_on.is_some() || self.dropped) && self.layer_on != Some(s.source)
    }

    /// The producer's number of the packet this receiver got as `out`: the
    /// offset it was sent with taken off.
    #[cfg(test)]
    pub fn incoming(&self, out: SeqNo) -> SeqNo {
        SeqNo(out.0.wrapping_sub(self.shift_of(out).offset))
    }

    /// One packet the receiver does not get although its stream goes on:
    /// the packets after it move down by one (no gap), and the stream is
    /// not paused (resuming would ask the producer for a keyframe). A
    /// paused stream is left alone: it resumes where the receiver left off.
    pub fn skip(&mut self) {
        if !self.paused {
            self.offset = self.offset.wrapping_sub(1);
        }
    }
}

/// What a receiver gets of one packet.
#[derive(Debug)]
pub(crate) enum Consumed {
    /// Send these bytes (the received buffer itself unless the stream is shifted).
    Send(Bytes),
    /// Send these bytes; the stream just resumed (the receiver needs a keyframe).
    Resumed(Bytes),
    /// Nothing for this receiver.
    Nothing,
}

/// One receiver's consumers. Empty on the fast path: every stream as received.
#[derive(Debug, Default)]
pub(crate) struct Consumers(Vec<Consumer>);

impl Consumers {
    pub fn iter(&self) -> impl Iterator<Item = &Consumer> {
        self.0.iter()
    }

    pub fn get(&self, ssrc: Ssrc) -> Option<&Consumer> {
        self.0.iter().find(|c| c.ssrc == ssrc)
    }

    /// The consumer of `ssrc`, made (not paused, nothing sent yet) if there is none.
    pub fn entry(&mut self, ssrc: Ssrc) -> &mut Consumer {
        let i = match self.0.iter().position(|c| c.ssrc == ssrc) {
            Some(i) => i,
            None => {
                self.0.push(Consumer::new(ssrc, false, None));
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    /// A receiver with a frame-rate cap of `max_fps`: whether it gets this
    /// packet of `ssrc`, a stream with temporal layers (`frame`). At the
    /// first packet of each frame its layer follows the cap (see
    /// [`next_layer`]); a packet of a frame above its layer is skipped
    /// ([`Consumer::skip`]), so that every packet of such a frame is.
    /// A packet it gets goes on to [`on_packet`](Self::on_packet).
    pub fn on_layered(&mut self, ssrc: Ssrc, frame: &Frame, max_fps: u8) -> bool {
        let c = self.entry(ssrc);
        if frame.starts {
            c.layer = next_layer(c.layer, frame.rates.target(max_fps), frame.tid);
        }
        if frame.layer() <= c.layer.unwrap_or(0) {
            return true;
        }
        c.skip();
        false
    }

    /// Decides what this receiver gets of packet `seq` of `ssrc`.
    ///
    /// `want`: the fan-out decision says the receiver gets the stream now;
    /// `keep_state`: remember where a stream the receiver does not get
    /// stopped (`prev_seq`, the previous packet's number), so that it
    /// resumes without a gap.
    #[inline]
    pub fn on_packet(
        &mut self,
        ssrc: Ssrc,
        seq: SeqNo,
        prev_seq: Option<SeqNo>,
        want: bool,
        keep_state: bool,
        contents: &Bytes,
    ) -> Consumed {
        let Some(c) = self.0.iter_mut().find(|c| c.ssrc == ssrc) else {
            if want {
                return Consumed::Send(contents.clone());
            }
            if keep_state {
                self.0.push(Consumer::new(ssrc, true, prev_seq));
            }
            return Consumed::Nothing;
        };
        if !want {
            c.paused = true;
            return Consumed::Nothing;
        }
        let resumed = c.paused;
        if resumed {
            // Resume where the receiver's sequence left off.
            if let Some(last) = c.last_out {
                c.offset = last.next().0.wrapping_sub(seq.0);
            }
            c.paused = false;
        }
        let out_seq = seq.wrapping_add(c.offset);
        c.last_out = Some(out_seq);
        c.note_offset(out_seq);
        let bytes = if c.offset == 0 {
            contents.clone()
        } else {
            let mut v = contents.to_vec();
            corecast_proto::rtp::set_seq(&mut v, out_seq);
            Bytes::from(v)
        };
        if resumed {
            Consumed::Resumed(bytes)
        } else {
            Consumed::Send(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framerate::LayerRates;

    fn seq_of(c: &Consumed) -> Option<(u16, bool)> {
        let (b, resumed) = match c {
            Consumed::Send(b) => (b, false),
            Consumed::Resumed(b) => (b, true),
            Consumed::Nothing => return None,
        };
        Some((u16::from_be_bytes([b[2], b[3]]), resumed))
    }

    fn packet(seq: u16) -> Bytes {
        let mut b = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA];
        corecast_proto::rtp::set_seq(&mut b, SeqNo(seq));
        Bytes::from(b)
    }

    /// Rates of an L1T3 stream at 30 frames/s.
    const L1T3: LayerRates = LayerRates { cumulative_mfps: [7500, 15_000, 30_000, 30_000], highest: 2, measured: true };

    #[test]
    fn skipped_frames_close_the_gap_and_a_pause_still_resumes_with_a_keyframe() {
        let mut cs = Consumers::default();
        let s = Ssrc(1);
        let frame = |tid: u8, starts: bool| Frame { tid: Some(tid), starts, rates: L1T3 };
        let mut out = Vec::new();
        // T0 (2 packets), T2 (2), T1 (2), T0 (1) to a receiver capped at 8 frames/s: T0 only.
        let stream = [(0, true), (0, false), (2, true), (2, false), (1, true), (1, false), (0, true)];
        for (i, (tid, starts)) in stream.into_iter().enumerate() {
            let seq = 100 + i as u16;
            if cs.on_layered(s, &frame(tid, starts), 8) {
                out.push(seq_of(&cs.on_packet(s, SeqNo(seq), None, true, true, &packet(seq))).unwrap());
            }
        }
        assert_eq!(out, vec![(100, false), (101, false), (102, false)], "no gap, nothing resumed");
        let c = *cs.get(s).unwrap();
        assert!(!c.paused);
        assert_eq!(c.offset, 0u16.wrapping_sub(4));
        assert_eq!(c.incoming(SeqNo(101)), SeqNo(101), "sent before the skips");
        assert_eq!(c.incoming(SeqNo(102)), SeqNo(106), "sent after them");
        // A pause (the fan-out withholds the stream), then a resume: where the receiver left off, as a resume.
        assert!(seq_of(&cs.on_packet(s, SeqNo(107), Some(SeqNo(106)), false, true, &packet(107))).is_none());
        let mut paused = *cs.get(s).unwrap();
        assert!(paused.paused);
        paused.skip();
        assert_eq!(paused.offset, c.offset, "a paused stream does not shift");
        assert!(cs.on_layered(s, &frame(0, true), 8));
        assert_eq!(seq_of(&cs.on_packet(s, SeqNo(108), Some(SeqNo(107)), true, true, &packet(108))), Some((103, true)));
    }
}

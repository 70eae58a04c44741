//! Frame-rate caps by temporal layer: a receiver that asks for at most
//! `max_fps` frames per second (a WHEP viewer of a screen share) gets only
//! the temporal layers of a scalable stream (VP8 or AV1 sent with
//! `scalabilityMode` L1T2 or L1T3) whose frames add up to no more than
//! that, and always the base layer T0: what mediasoup's SVC consumer and
//! Jitsi do with temporal layers.
//!
//! - [`TemporalLayers`], one per producer: the temporal layer of each
//!   frame (decided once per RTP timestamp: the first packet whose payload
//!   tells it; packets that do not, such as an AV1 fragment's
//!   continuation, take their frame's), and the measured frame rate of
//!   each layer;
//! - [`next_layer`], per receiver and producer: the highest layer it gets,
//!   lowered at the next frame, raised only at a T0 frame (in the L1T2 and
//!   L1T3 patterns a frame references only frames of its layer or lower
//!   that come after the last T0, so from a T0 on every frame it gets
//!   decodes);
//! - the consumer (`consumer.rs`) drops every packet of a frame above that
//!   layer and shifts the receiver's sequence numbers over it, without
//!   pausing the stream: the receiver sees no gap, so it neither NACKs nor
//!   asks for a keyframe.
//!
//! Rates are measured on media time (the RTP timestamps, 90 kHz for video),
//! not arrival time: frames of each layer counted over windows of at least
//! one second that start and end at a T0 frame, so that a window holds
//! whole periods of the layer pattern (T0 T2 T1 T2 at 30 fps measures
//! exactly 7.5, 7.5 and 15 frames/s). Until a first window closes a capped
//! receiver gets T0 only. A stream without temporal layers (a VP8
//! descriptor without the T bit, AV1 OBUs without extension headers) is all
//! T0: it is forwarded whole, it cannot be thinned.
//!
//! Kept simple, on purpose:
//! - RTX is not thinned (its payload starts with the original sequence
//!   number, not a descriptor): WebRTC legs get no RTX, and a native
//!   receiver gets the publisher's RTX stream as received;
//! - a receiver's NACK is mapped back with the offset each packet was sent
//!   with (the consumer keeps its last 16 offset changes, `rtcp_route` and
//!   `retransmit` use them); a NACK for a packet older than that is mapped
//!   with the current offset;
//! - the parse runs for every VP8/AV1 video packet, capped receiver or
//!   not, so that the rates are known when a capped receiver arrives (a few
//!   header bytes, no allocation); the state is boxed in the producer.

use corecast_proto::MediaTime;

/// Temporal layers told apart: ids above are counted as the highest (VP8
/// has 2 bits of TID; browsers send at most 3 layers).
pub(crate) const LAYERS: usize = 4;

/// Media time per rate window: one second of the 90 kHz video clock.
const WINDOW: u32 = 90_000;

/// A window longer than this (a pause, a timestamp jump) is discarded, not measured.
const LONGEST_WINDOW: u32 = 10 * WINDOW;

/// Frames of earlier timestamps remembered, for their late packets.
const RECENT: usize = 4;

/// The measured frame rates of a producer's layers, as a receiver's layer
/// choice needs them (copied out of the producer with each frame).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LayerRates {
    /// Frames per second of layers `0..=t` together, in thousandths, for each `t`.
    pub cumulative_mfps: [u32; LAYERS],
    /// The highest layer seen so far.
    pub highest: u8,
    /// A window closed: the rates are known.
    pub measured: bool,
}

impl LayerRates {
    /// The highest layer whose frames, with those of the layers below,
    /// come to at most `max_fps` per second; 0 (the base layer, whatever
    /// its rate) when none does or nothing was measured yet.
    pub fn target(&self, max_fps: u8) -> u8 {
        if !self.measured {
            return 0;
        }
        let cap = u32::from(max_fps) * 1000;
        (0..=self.highest.min(LAYERS as u8 - 1))
            .take_while(|&t| self.cumulative_mfps[usize::from(t)] <= cap)
            .last()
            .unwrap_or(0)
    }
}

/// What a receiver needs to know of one packet of a layered stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The frame's temporal layer (`None`: no packet of it told yet; taken as 0).
    pub tid: Option<u8>,
    /// The packet is the first of a new frame (a newer timestamp): where a
    /// receiver may change layers.
    pub starts: bool,
    /// The producer's rates at this packet.
    pub rates: LayerRates,
}

impl Frame {
    /// The layer the frame is forwarded as.
    #[inline]
    pub fn layer(&self) -> u8 {
        self.tid.unwrap_or(0)
    }
}

/// One producer's temporal layers: which frame is which, and how many
/// frames per second each layer has.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemporalLayers {
    /// The newest frame: its timestamp and, once a packet told it, its layer.
    frame: Option<(MediaTime, Option<u8>)>,
    /// The frames before it, newest first.
    recent: [Option<(MediaTime, Option<u8>)>; RECENT],
    /// Timestamp of the T0 frame the current window started at.
    window_start: Option<MediaTime>,
    /// Frames of each layer in the current window.
    counts: [u32; LAYERS],
    rates: LayerRates,
}

impl TemporalLayers {
    /// Takes one packet of timestamp `ts` whose payload says layer `tid`
    /// (`None`: it cannot tell) and says which frame it belongs to.
    pub fn on_packet(&mut self, ts: MediaTime, tid: Option<u8>) -> Frame {
        let tid = tid.map(|t| t.min(LAYERS as u8 - 1));
        let (frame_tid, starts) = match &mut self.frame {
            Some((cur, known)) if *cur == ts => {
                if known.is_none() && tid.is_some() {
                    *known = tid;
                    note(&mut self.rates, tid);
                }
                (*known, false)
            }
            // A late packet (reordered, retransmitted) of an earlier frame keeps that frame's layer.
            Some((cur, _)) if cur.delta(ts) < 0 => {
                let earlier = self.recent.iter().flatten().find(|(t, _)| *t == ts).and_then(|(_, l)| *l);
                (earlier.or(tid), false)
            }
            _ => {
                self.start_frame(ts, tid);
                (tid, true)
            }
        };
        Frame { tid: frame_tid, starts, rates: self.rates }
    }

    /// The rates as measured so far.
    #[cfg(test)]
    pub fn rates(&self) -> LayerRates {
        self.rates
    }

    /// A newer timestamp: the previous frame is counted, and a T0 frame
    /// may close the rate window.
    fn start_frame(&mut self, ts: MediaTime, tid: Option<u8>) {
        if let Some(prev) = self.frame.replace((ts, tid)) {
            self.counts[usize::from(prev.1.unwrap_or(0))] += 1;
            self.recent.rotate_right(1);
            self.recent[0] = Some(prev);
        }
        note(&mut self.rates, tid);
        if tid != Some(0) {
            return;
        }
        let Some(start) = self.window_start else {
            self.window_start = Some(ts);
            self.counts = [0; LAYERS];
            return;
        };
        let span = ts.0.wrapping_sub(start.0);
        if span < WINDOW {
            return;
        }
        if span <= LONGEST_WINDOW {
            let mut frames = 0u64;
            for (c, r) in self.counts.iter().zip(self.rates.cumulative_mfps.iter_mut()) {
                frames += u64::from(*c);
                *r = u32::try_from(frames * u64::from(WINDOW) * 1000 / u64::from(span)).unwrap_or(u32::MAX);
            }
            self.rates.measured = true;
        }
        self.window_start = Some(ts);
        self.counts = [0; LAYERS];
    }
}

/// Records that layer `tid` exists.
fn note(rates: &mut LayerRates, tid: Option<u8>) {
    if let Some(t) = tid {
        rates.highest = rates.highest.max(t);
    }
}

/// The layer a receiver gets from this frame on: `current` (`None`:
/// nothing decided yet, T0 only), the layer its cap allows (`target`), the
/// frame's layer. Down at once; up (or the first decision) only at a frame
/// known to be T0, which references nothing above it.
#[inline]
pub(crate) fn next_layer(current: Option<u8>, target: u8, frame_tid: Option<u8>) -> Option<u8> {
    match current {
        Some(c) if target <= c => Some(target),
        _ if frame_tid == Some(0) => Some(target),
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The L1T3 pattern's layer of frame `i`: T0 T2 T1 T2.
    pub(crate) fn l1t3(i: u32) -> u8 {
        [0, 2, 1, 2][(i % 4) as usize]
    }

    #[test]
    fn l1t3_at_30_fps_measures_exact_rates() {
        let mut l = TemporalLayers::default();
        for i in 0..100u32 {
            // Two packets per frame: the second cannot tell its layer (an AV1 continuation).
            let f = l.on_packet(MediaTime(1000 + i * 3000), Some(l1t3(i)));
            assert!(f.starts);
            let g = l.on_packet(MediaTime(1000 + i * 3000), None);
            assert_eq!((g.tid, g.starts), (Some(l1t3(i)), false));
        }
        let r = l.rates();
        assert!(r.measured);
        assert_eq!(r.highest, 2);
        assert_eq!(&r.cumulative_mfps[..3], &[7500, 15_000, 30_000]);
        assert_eq!(
            (r.target(7), r.target(8), r.target(15), r.target(16), r.target(29), r.target(30)),
            (0, 0, 1, 1, 1, 2)
        );
        assert_eq!(r.target(60), 2);
    }

    #[test]
    fn nothing_measured_means_the_base_layer() {
        let mut l = TemporalLayers::default();
        for i in 0..20u32 {
            l.on_packet(MediaTime(i * 3000), Some(l1t3(i)));
        }
        assert!(!l.rates().measured, "less than a second of media");
        assert_eq!(l.rates().target(60), 0);
    }

    #[test]
    fn a_frame_takes_the_layer_of_its_first_packet_that_tells_it() {
        let mut l = TemporalLayers::default();
        let a = l.on_packet(MediaTime(0), None);
        assert_eq!((a.tid, a.starts, a.layer()), (None, true, 0));
        assert_eq!(l.on_packet(MediaTime(0), Some(2)).tid, Some(2));
        assert_eq!(l.on_packet(MediaTime(0), Some(1)).tid, Some(2), "decided once");
        assert_eq!(l.on_packet(MediaTime(3000), Some(1)).tid, Some(1));
        // A late packet of the earlier frame keeps its layer, and starts nothing.
        let late = l.on_packet(MediaTime(0), None);
        assert_eq!((late.tid, late.starts), (Some(2), false));
        let unknown = l.on_packet(MediaTime(u32::MAX - 5), Some(1));
        assert_eq!((unknown.tid, unknown.starts), (Some(1), false), "too old to remember: its own layer");
    }

    #[test]
    fn timestamps_wrap() {
        let mut l = TemporalLayers::default();
        let base = u32::MAX - 40 * 3000;
        for i in 0..100u32 {
            assert!(l.on_packet(MediaTime(base.wrapping_add(i * 3000)), Some(l1t3(i))).starts);
        }
        assert_eq!(&l.rates().cumulative_mfps[..3], &[7500, 15_000, 30_000]);
    }

    #[test]
    fn one_layer_is_all_base() {
        let mut l = TemporalLayers::default();
        for i in 0..100u32 {
            l.on_packet(MediaTime(i * 3000), Some(0));
        }
        let r = l.rates();
        assert_eq!((r.highest, r.cumulative_mfps[0], r.target(1)), (0, 30_000, 0));
    }

    #[test]
    fn switching_is_down_at_once_and_up_at_t0() {
        assert_eq!(next_layer(None, 2, Some(1)), None, "first decision waits for a T0");
        assert_eq!(next_layer(None, 2, None), None);
        assert_eq!(next_layer(None, 2, Some(0)), Some(2));
        assert_eq!(next_layer(None, 0, Some(2)), None, "T0 only either way");
        assert_eq!(next_layer(Some(2), 0, Some(2)), Some(0), "down at any frame");
        assert_eq!(next_layer(Some(0), 1, Some(2)), Some(0), "up waits");
        assert_eq!(next_layer(Some(0), 1, Some(1)), Some(0));
        assert_eq!(next_layer(Some(0), 1, Some(0)), Some(1));
    }
}

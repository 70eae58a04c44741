//! Consumers: one receiver's state for one producer, kept only where the
//! receiver's copy of the stream differs from "as received".

use bytes::Bytes;
use corecast_proto::{SeqNo, Ssrc};

/// How one receiver gets one producer's stream when that differs from "as
/// received": the stream is paused (an SD receiver does not get raw video),
/// or it resumed after a pause and its sequence numbers are shifted so that
/// the receiver sees no gap (mediasoup's SeqManager does the same).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consumer {
    pub ssrc: Ssrc,
    pub paused: bool,
    /// Outgoing = incoming + offset (mod 2^16).
    pub offset: u16,
    /// Last sequence number sent to this receiver.
    pub last_out: Option<SeqNo>,
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
    pub fn get(&self, ssrc: Ssrc) -> Option<&Consumer> {
        self.0.iter().find(|c| c.ssrc == ssrc)
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
                self.0.push(Consumer { ssrc, paused: true, offset: 0, last_out: prev_seq });
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

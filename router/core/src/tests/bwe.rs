//! The router's own bandwidth estimate for a WebRTC receiver, end to end:
//! the router numbers what it sends the browser (transport-cc), the browser
//! side (the same `TwccRecorder` the router uses for publishers) sends
//! feedback from the arrivals, and the receiver's estimate follows; the
//! start-up probe goes out as padding-only RTX. Synthetic time.

use std::time::Duration;

use corecast_proto::rtcp::TwccRecorder;

use super::webrtc::{identity, video, Peer};
use super::*;

/// The transport-wide number (the legs' id 3) the router put on a packet.
fn twcc_seq(q: &RtpPacket) -> u16 {
    let (_, d) = q.extensions.iter().find(|(id, _)| *id == 3).expect("numbered");
    u16::from_be_bytes([d[0], d[1]])
}

/// A native publisher (1) and a browser receiver (2) in `call(40)`.
struct Link {
    h: H,
    b: Peer,
    rec: TwccRecorder,
    next_seq: u16,
    next_twcc: Option<u16>,
    /// Padding-only packets (probes) the browser got.
    probes: usize,
}

impl Link {
    fn new() -> Link {
        let mut h = H::new();
        h.r.set_dtls_identity(identity());
        h.join(addr(1), call(40), 1, 0x1111);
        let b = Peer::join(&mut h, 2, call(40), 2, false, None);
        h.take();
        Link { h, b, rec: TwccRecorder::new(), next_seq: 0, next_twcc: None, probes: 0 }
    }

    /// `ms` milliseconds of video at 100 packets/s (about 0.85 Mbit/s); the
    /// browser gets each packet `delay(i)` after it was sent and sends
    /// feedback as a browser does (every 50 ms), at once.
    fn run(&mut self, ms: u64, delay: impl Fn(u64) -> Duration) {
        for i in 0..ms / 10 {
            self.h.now += Duration::from_millis(10);
            if i % 10 == 0 {
                // The router's timers (its rate windows: what the receiver needs).
                self.h.r.handle_input(self.h.now, Input::Timeout);
                self.h.drain();
            }
            self.h.input(addr(1), video(0x1111, self.next_seq, 45));
            self.next_seq = self.next_seq.wrapping_add(1);
            let now = self.h.now;
            let to_b = self.b.addr;
            for t in self.h.take().into_iter().filter(|t| t.destination == to_b && classify(&t.contents) == Kind::Rtp) {
                let q = self.b.open_rtp(&t.contents);
                let seq = twcc_seq(&q);
                // Every send is numbered, one after the other (media and probes alike).
                assert_eq!(seq, self.next_twcc.unwrap_or(seq));
                self.next_twcc = Some(seq.wrapping_add(1));
                if q.payload.is_empty() && q.padding > 0 {
                    assert_eq!((q.pt, q.ssrc), (Pt(36), Ssrc(crate::webrtc::rtx_ssrc(0x1111))), "on the RTX stream");
                    self.probes += 1;
                }
                self.rec.record(seq, now + delay(i));
            }
            let mut fb = Vec::new();
            if self.rec.poll_feedback(now + delay(i), 0xB0B, 0x1111, &mut fb) {
                let sealed = self.b.seal_rtcp(&fb);
                self.h.input(self.b.addr, sealed);
            }
        }
    }

    fn estimate(&self) -> Option<u64> {
        self.h.r.calls[&call(40)].participants[1].estimate()
    }
}

#[test]
fn a_receivers_transport_wide_feedback_sets_its_estimate() {
    let mut l = Link::new();
    // A steady 20 ms path.
    l.run(1000, |_| Duration::from_millis(20));
    assert!(l.h.r.stats().twcc_feedback >= 15, "{}", l.h.r.stats().twcc_feedback);
    assert_eq!(l.estimate(), None, "not acted on before it settles");
    l.run(3000, |_| Duration::from_millis(20));
    let p = &l.h.r.calls[&call(40)].participants[1];
    let bwe = p.bwe.as_ref().expect("made at the first feedback");
    assert!(bwe.settled());
    // What gets through (about 0.85 Mbit/s) without queues growing: at least that, at most 1.5 × that.
    let acked = bwe.acked_bps().unwrap();
    assert!((800_000..=900_000).contains(&acked), "{acked}");
    let e = l.estimate().unwrap();
    assert!(e >= acked && e <= acked * 3 / 2 + 10_000, "{e} for {acked}");
    // It got there from what got through: no probe was needed.
    assert_eq!(l.probes, 0);
    // A REMB below it caps it.
    let remb = corecast_proto::rtcp::Remb { sender_ssrc: Ssrc(0xB0B), bitrate_bps: 400_000, ssrcs: vec![Ssrc(0x1111)] };
    let bytes = rtcp::write_compound(&[RtcpPacket::Remb(remb)]).unwrap();
    let sealed = l.b.seal_rtcp(&bytes);
    l.h.input(l.b.addr, sealed);
    assert_eq!(l.estimate(), Some(400_000));
}

#[test]
fn a_growing_queue_brings_the_estimate_down() {
    let mut l = Link::new();
    l.run(4000, |_| Duration::from_millis(20));
    let before = l.estimate().unwrap();
    // The path's queue grows 2 ms per packet (the link carries 10 ms of sending in 12).
    let grow = |i: u64| Duration::from_millis(20 + 2 * i);
    l.run(1500, grow);
    let after = l.estimate().unwrap();
    assert!(after < before * 9 / 10, "{before} → {after}");
    let bwe = l.h.r.calls[&call(40)].participants[1].bwe.as_ref().unwrap();
    assert!(after <= bwe.acked_bps().unwrap(), "below what gets through");
    assert_eq!(l.probes, 0, "no probing while overusing");
    // The queue stops growing (a steady 320 ms path): once the link has been
    // quiet a while, the estimate being short of what the receiver needs, the
    // router probes with padding-only RTX (each probe packet numbered, see `run`),
    // and only then: the additive increase near the capacity seen is slow.
    l.run(4000, |_| Duration::from_millis(320));
    assert!(l.probes >= 5, "{}", l.probes);
    assert_eq!(l.h.r.stats().probes_sent as usize, l.probes);
    // The link took the probe at once (its packets arrived together): the
    // estimate is back at what the receiver needs.
    let need = crate::quality::wanted_bps(&l.h.r.calls[&call(40)], ParticipantId(2));
    assert!(need > 800_000 && l.estimate().unwrap() >= need, "{:?} for {need}", l.estimate());
}

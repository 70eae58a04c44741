//! The router's own bandwidth estimate for a WebRTC receiver, end to end:
//! the router numbers what it sends the browser (transport-cc), the browser
//! side (the same `TwccRecorder` the router uses for publishers) sends
//! feedback from the arrivals along a path whose delay the test sets, and
//! the receiver's estimate follows: it settles at what gets through, a REMB
//! caps it, a growing queue brings it down, padding-only RTX probes bring
//! it back; with simulcast, the layer the browser gets follows it.
//! Synthetic time.

use std::time::Duration;

use corecast_proto::rtcp::TwccRecorder;

use super::webrtc::{identity, video, Peer};
use super::*;

/// The transport-wide number (the legs' id 3) the router put on a packet.
pub(super) fn twcc_seq(q: &RtpPacket) -> u16 {
    let (_, d) = q.extensions.iter().find(|(id, _)| *id == 3).expect("numbered");
    u16::from_be_bytes([d[0], d[1]])
}

/// A native publisher (1) and a browser receiver (2) in `call(40)`.
pub(super) struct Link {
    pub(super) h: H,
    pub(super) b: Peer,
    rec: TwccRecorder,
    pub(super) next_seq: u16,
    pub(super) next_twcc: Option<u16>,
    /// Padding-only packets (probes) the browser got.
    probes: usize,
    /// The publisher sends VP8 simulcast (layers [`LAYERS`]) instead of one AV1 stream.
    simulcast: bool,
    /// The simulcast layer of each media packet the browser got in the last `run`.
    layers_got: Vec<u8>,
}

/// Simulcast layers (low to high) and their payload sizes per 10 ms (about 90,
/// 250 and 740 kbit/s).
const LAYERS: [u32; 3] = [11, 12, 13];
const SIZES: [usize; 3] = [100, 300, 900];

/// A VP8 packet of layer `k`, round `n`: its payload's third byte says the layer.
fn vp8(k: usize, n: u16, key: bool) -> Vec<u8> {
    let mut payload = vec![k as u8; SIZES[k]];
    payload[0] = 0x10; // S=1, PID 0: the start of a frame
    payload[1] = if key { 0x00 } else { 0x01 }; // P=0: a keyframe
    RtpPacket {
        pt: Pt(96),
        seq: SeqNo(1000 * (k as u16 + 1) + n),
        ssrc: Ssrc(LAYERS[k]),
        timestamp: corecast_proto::MediaTime(3000 * u32::from(n)),
        payload,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

impl Link {
    pub(super) fn new() -> Link {
        let mut h = H::new();
        h.r.set_dtls_identity(identity());
        h.join(addr(1), call(40), 1, 0x1111);
        let b = Peer::join(&mut h, 2, call(40), 2, false, None);
        h.take();
        Link::of(h, b, false)
    }

    /// The publisher sends three VP8 layers; the browser's video m-line is VP8 (96, RTX 97).
    fn simulcast() -> Link {
        let mut h = H::new();
        h.r.set_dtls_identity(identity());
        let tok = h.token(call(40), 1, Role::Publisher);
        let ssrcs = LAYERS.iter().map(|s| (Ssrc(*s), MediaKind::Video)).collect();
        assert!(matches!(h.join_with(addr(1), tok, ssrcs), SessionMessage::JoinAck { .. }));
        h.session(addr(1), SessionMessage::Simulcast { txid: [1; 12], layers: LAYERS.map(Ssrc).to_vec() });
        let vp8_line = |leg: &mut crate::webrtc::WebRtcLeg| {
            leg.media[1].codec = crate::webrtc::Codec::Vp8;
            leg.media[1].payload_type = 96;
            leg.media[1].rtx_payload_type = Some(97);
        };
        let config = dimpl::Config::builder().build().unwrap();
        let mut b = Peer::open_edited(&mut h, 2, (call(40), 2, false, None), config, vp8_line);
        b.connect_ice(&mut h);
        b.handshake(&mut h);
        h.take();
        Link::of(h, b, true)
    }

    fn of(h: H, b: Peer, simulcast: bool) -> Link {
        let rec = TwccRecorder::new();
        Link { h, b, rec, next_seq: 0, next_twcc: None, probes: 0, simulcast, layers_got: Vec::new() }
    }

    /// `ms` milliseconds of video at 100 packets/s (about 0.85 Mbit/s); the
    /// browser gets each packet `delay(i)` after it was sent and sends
    /// feedback as a browser does (every 50 ms), at once.
    pub(super) fn run(&mut self, ms: u64, delay: impl Fn(u64) -> Duration) {
        for i in 0..ms / 10 {
            self.h.now += Duration::from_millis(10);
            if i.is_multiple_of(10) {
                // The router's timers (its rate windows: what the receiver needs).
                self.h.r.handle_input(self.h.now, Input::Timeout);
                self.h.drain();
            }
            if self.simulcast {
                // Highest layer first; keyframes on every layer each 250 ms.
                let key = self.next_seq.is_multiple_of(25);
                for k in (0..3).rev() {
                    self.h.input(addr(1), vp8(k, self.next_seq, key));
                }
            } else {
                self.h.input(addr(1), video(0x1111, self.next_seq, 45));
            }
            self.next_seq = self.next_seq.wrapping_add(1);
            let now = self.h.now;
            let to_b = self.b.addr;
            if i == 0 {
                self.layers_got.clear();
            }
            let (group, rtx_pt) = if self.simulcast { (LAYERS[0], 97) } else { (0x1111, 36) };
            for t in self.h.take().into_iter().filter(|t| t.destination == to_b && classify(&t.contents) == Kind::Rtp) {
                let q = self.b.open_rtp(&t.contents);
                let seq = twcc_seq(&q);
                // Every send is numbered, one after the other (media and probes alike).
                assert_eq!(seq, self.next_twcc.unwrap_or(seq));
                self.next_twcc = Some(seq.wrapping_add(1));
                if q.payload.is_empty() && q.padding > 0 {
                    let rtx = (Pt(rtx_pt), Ssrc(crate::webrtc::rtx_ssrc(group)));
                    assert_eq!((q.pt, q.ssrc), rtx, "on the RTX stream of the video as sent");
                    self.probes += 1;
                } else if self.simulcast && q.payload.len() > 2 {
                    assert_eq!(q.ssrc, Ssrc(group), "under the group's SSRC");
                    self.layers_got.push(q.payload[2]);
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

    pub(super) fn estimate(&self) -> Option<u64> {
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
    let need = crate::simulcast::need_bps(&l.h.r.calls[&call(40)], ParticipantId(2), crate::simulcast::Need::Best);
    assert!(need > 800_000 && l.estimate().unwrap() >= need, "{:?} for {need}", l.estimate());
}

#[test]
fn the_estimate_moves_a_browser_between_simulcast_layers() {
    let mut l = Link::simulcast();
    l.run(4000, |_| Duration::from_millis(20));
    assert!(l.estimate().is_some());
    let top = l.layers_got[l.layers_got.len() - 50..].iter().all(|k| *k == 2);
    assert!(top, "the top layer fits the link: {:?}", &l.layers_got[l.layers_got.len() - 50..]);
    // The path's queue grows 2 ms per 10 ms: the estimate falls below the
    // top layer, and the browser moves down at a lower layer's keyframe.
    l.run(2000, |i| Duration::from_millis(20 + 2 * i));
    let e = l.estimate().unwrap();
    assert!(e < 700_000, "{e}");
    let last = &l.layers_got[l.layers_got.len() - 20..];
    assert!(last.iter().all(|k| *k < 2), "{e}: {last:?}");
    // The queue stops growing (a steady 420 ms path): once the link has been
    // quiet 2 s, probes find the room again (each result asking for the next
    // at twice it) and the browser is back on the top layer.
    l.run(8000, |_| Duration::from_millis(420));
    let back = l.layers_got.iter().position(|k| *k == 2).expect("back on the top layer");
    assert!(back <= 500, "within 5 s: after {back} packets");
    assert!(l.layers_got[back..].iter().all(|k| *k == 2));
    assert!(l.probes > 0);
}

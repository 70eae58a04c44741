//! RED (RFC 2198) for Opus on synthetic time: a WebRTC leg that negotiated
//! RED gets each audio packet with the previous one as redundancy while its
//! link loses packets (its receiver reports say so), plainly otherwise; a
//! leg without RED always plainly.

use bytes::BytesMut;

use super::webrtc::{identity, Peer};
use super::*;
use crate::webrtc::WebRtcLeg;

fn opus(seq: u16) -> Vec<u8> {
    let payload = vec![seq as u8; 20 + usize::from(seq % 3)];
    RtpPacket {
        pt: Pt(111),
        seq: SeqNo(seq),
        timestamp: corecast_proto::MediaTime(u32::from(seq) * 960),
        ssrc: Ssrc(0x1111),
        payload,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

/// A native publisher of Opus (SSRC 0x1111) at addr(1) and a WebRTC
/// subscriber at addr(2) (RED on its audio line when `red`).
fn call_with_leg(h: &mut H, red: bool) -> Peer {
    h.r.set_dtls_identity(identity());
    let tok = h.token(call(4), 1, Role::Publisher);
    h.join_with(addr(1), tok, vec![(Ssrc(0x1111), MediaKind::Audio)]);
    let config = dimpl::Config::builder().build().unwrap();
    let edit = |leg: &mut WebRtcLeg| leg.media[0].red_payload_type = red.then_some(63);
    let mut b = Peer::open_edited(h, 2, (call(4), 2, false, None), config, edit);
    b.connect_ice(h);
    b.handshake(h);
    h.take();
    b
}

/// The leg reports `fraction_lost` (in 1/256) on the audio.
fn report(h: &mut H, b: &mut Peer, fraction_lost: u8) {
    let mut out = BytesMut::new();
    b.tx.as_mut().unwrap().protect_rtcp(&rr(0x22, 0x1111, fraction_lost), &mut out).unwrap();
    h.input(b.addr, out.to_vec());
    h.take();
}

/// Sends packets `seqs` and returns what the leg got: (payload type, payload).
fn got(h: &mut H, b: &mut Peer, seqs: std::ops::Range<u16>) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    for s in seqs {
        h.input(addr(1), opus(s));
        let to = b.addr;
        for t in h.take().into_iter().filter(|t| t.destination == to) {
            let q = b.open_rtp(&t.contents);
            v.push((q.pt.0, q.payload));
        }
    }
    v
}

#[test]
fn a_lossy_leg_that_negotiated_red_gets_the_previous_packet_as_redundancy() {
    let mut h = H::new();
    let mut b = call_with_leg(&mut h, true);
    assert!(got(&mut h, &mut b, 1..4).iter().all(|(pt, _)| *pt == 111), "no loss reported: plain Opus");
    report(&mut h, &mut b, 20);
    let red = got(&mut h, &mut b, 4..7);
    assert_eq!(red.len(), 3);
    for (i, (pt, payload)) in red.iter().enumerate() {
        let seq = 4 + i as u16;
        let (prev, this) =
            (vec![(seq - 1) as u8; 20 + usize::from((seq - 1) % 3)], vec![seq as u8; 20 + usize::from(seq % 3)]);
        assert_eq!(*pt, 63);
        let word = (960u32 << 10) | prev.len() as u32;
        let mut want = vec![0x80 | 111];
        want.extend_from_slice(&word.to_be_bytes()[1..]);
        want.push(111);
        want.extend_from_slice(&prev);
        want.extend_from_slice(&this);
        assert_eq!(*payload, want, "packet {seq}: the previous payload, then its own");
    }
    // A gap: the next packet's predecessor is not the one kept, so it goes plainly.
    assert_eq!(got(&mut h, &mut b, 9..10)[0].0, 111);
    assert_eq!(h.r.stats().red_sent, 3);
    report(&mut h, &mut b, 0);
    assert!(got(&mut h, &mut b, 10..13).iter().all(|(pt, _)| *pt == 111), "the loss is gone: plain again");
}

#[test]
fn a_leg_without_red_gets_plain_opus_whatever_it_loses() {
    let mut h = H::new();
    let mut b = call_with_leg(&mut h, false);
    report(&mut h, &mut b, 60);
    assert!(got(&mut h, &mut b, 1..5).iter().all(|(pt, _)| *pt == 111));
    assert_eq!(h.r.stats().red_sent, 0);
}

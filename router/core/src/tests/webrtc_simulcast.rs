//! Simulcast from a browser (`webrtc::rid`): layers on SSRCs it never
//! announced, learned from the RID extension, their RTX streams from the
//! repaired-RID one; receivers get one layer as one stream.

use super::webrtc::{identity, Peer};
use super::*;

const RID_EXT: u8 = 10;
const REPAIRED_RID_EXT: u8 = 11;

/// An AV1 packet (the browser's payload type 35) of the layer `rid` on
/// `ssrc`, the first of a keyframe or not.
fn layer(ssrc: u32, seq: u16, rid: &str, key: bool) -> Vec<u8> {
    let mut payload = vec![ssrc as u8; 200];
    payload[0] = if key { 0x18 } else { 0x10 }; // AV1 aggregation header: N (a new sequence) on keyframes
    RtpPacket {
        pt: Pt(35),
        seq: SeqNo(seq),
        ssrc: Ssrc(ssrc),
        extensions: vec![(RID_EXT, rid.as_bytes().to_vec())],
        payload,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

/// A browser publisher (participant 1, peer 1) sending video layers
/// q, h, f (lowest first) by RID, and a native receiver (2) at addr 2.
fn browser_simulcast(h: &mut H) -> Peer {
    h.r.set_dtls_identity(identity());
    let config = dimpl::Config::builder().build().unwrap();
    let mut a = Peer::open_edited(h, 1, (call(1), 1, true, None), config, |leg| {
        let video = &mut leg.media[1];
        video.rids = vec!["q".into(), "h".into(), "f".into()];
        video.remote_ssrcs.clear();
        video.remote_rtx.clear();
        leg.extensions.rid = Some(RID_EXT);
        leg.extensions.repaired_rid = Some(REPAIRED_RID_EXT);
    });
    a.connect_ice(h);
    a.handshake(h);
    h.join(addr(2), call(1), 2, 0x2222);
    h.take();
    a
}

fn to_native(t: &[Transmit]) -> Vec<RtpPacket> {
    t.iter()
        .filter(|t| t.destination == addr(2) && classify(&t.contents) == Kind::Rtp)
        .map(|t| RtpPacket::parse(&t.contents).unwrap())
        .collect()
}

#[test]
fn a_browsers_rid_layers_become_one_stream_and_its_rtx_repairs_them() {
    let mut h = H::with(retransmitting());
    let mut a = browser_simulcast(&mut h);
    h.events.clear();
    // The best layer first: the receiver starts on it; the others are learned too.
    for (ssrc, rid) in [(0x30, "f"), (0x20, "h"), (0x10, "q")] {
        let p = a.seal(&layer(ssrc, 100, rid, true));
        h.input(a.addr, p);
    }
    let added = h.events.iter().filter(|e| matches!(e, Event::ProducerAdded { .. })).count();
    assert_eq!(added, 3, "three layers learned");
    let got = to_native(&h.take());
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].ssrc, got[0].seq, got[0].payload[1]), (Ssrc(0x30), SeqNo(100), 0x30), "the f layer");
    // Packet 101 of f is lost on the way; 102 comes, then 101 as RTX on a
    // stream the browser never announced, naming f as what it repairs.
    for (ssrc, rid) in [(0x30, "f"), (0x20, "h"), (0x10, "q")] {
        let p = a.seal(&layer(ssrc, 102, rid, false));
        h.input(a.addr, p);
    }
    let original = layer(0x30, 101, "f", false);
    let hdr = RtpHeader::parse(&original).unwrap();
    let mut payload = 101u16.to_be_bytes().to_vec();
    payload.extend_from_slice(hdr.payload(&original));
    let rtx = RtpPacket {
        pt: Pt(36),
        seq: SeqNo(7),
        ssrc: Ssrc(0x31),
        extensions: vec![(REPAIRED_RID_EXT, b"f".to_vec())],
        payload,
        ..Default::default()
    };
    let p = a.seal(&rtx.to_vec().unwrap());
    h.input(a.addr, p);
    let got = to_native(&h.take());
    let seqs: Vec<(Ssrc, SeqNo)> = got.iter().map(|p| (p.ssrc, p.seq)).collect();
    assert_eq!(seqs, vec![(Ssrc(0x30), SeqNo(102)), (Ssrc(0x30), SeqNo(101))], "the repair, as the original");
    assert_eq!(got[1].payload, hdr.payload(&original));
    assert_eq!(h.r.stats().rtx_received, 1);
    assert_eq!(h.r.stats().layers_skipped, 4, "h and q, twice");
}

#[test]
fn a_packet_naming_no_layer_of_the_offer_is_not_learned() {
    let mut h = H::with(retransmitting());
    let mut a = browser_simulcast(&mut h);
    h.events.clear();
    let p = a.seal(&layer(0x40, 1, "x", true));
    h.input(a.addr, p);
    let mut no_rid = layer(0x41, 1, "f", true);
    no_rid[0] &= !0x10; // the extension bit cleared: no RID
    let p = a.seal(&no_rid);
    h.input(a.addr, p);
    assert!(!h.events.iter().any(|e| matches!(e, Event::ProducerAdded { .. })));
    assert!(to_native(&h.take()).is_empty());
    assert_eq!(h.r.stats().dropped_ssrc_not_owned, 2);
}

//! VP8 picture ids across a simulcast switch (`picture_id`): each layer
//! numbers its frames on its own; a receiver moved between layers sees
//! PictureID and TL0PICIDX go on by one, as its sequence numbers do, and a
//! retransmission carries them as the receiver first got them.

use super::*;

use corecast_proto::MediaTime;

const LAYERS: [u32; 3] = [11, 12, 13];
const SIZES: [usize; 3] = [100, 300, 900];
/// Each layer's first PictureID (15 bits; the high one wraps) and TL0PICIDX.
const PICTURE: [u16; 3] = [100, 20_000, 32_765];
const TL0: [u8; 3] = [5, 200, 250];

/// Round `n` of layer `k`: PictureID and TL0PICIDX the layer's first plus
/// `n` (every frame a base-layer one), the first packet of a keyframe or not.
fn vp8(k: usize, n: u16, key: bool) -> Vec<u8> {
    let pid = PICTURE[k].wrapping_add(n) & 0x7FFF;
    let mut payload = vec![k as u8; SIZES[k]];
    // X, S; I, L; M + PictureID; TL0PICIDX; the VP8 header's P bit (0: keyframe).
    payload[..6].copy_from_slice(&[0x90, 0xC0, 0x80 | (pid >> 8) as u8, pid as u8, TL0[k].wrapping_add(n as u8), 0]);
    payload[5] = if key { 0x00 } else { 0x01 };
    RtpPacket {
        pt: Pt(96),
        seq: SeqNo(1000 * (k as u16 + 1) + n),
        ssrc: Ssrc(LAYERS[k]),
        timestamp: MediaTime(3000 * u32::from(n)),
        payload,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

fn round(h: &mut H, n: u16, keys: &[usize]) {
    for k in (0..3).rev() {
        h.input(addr(0), vp8(k, n, keys.contains(&k)));
    }
}

/// (sequence number, PictureID, TL0PICIDX, layer) of what `to` got.
fn ids_to(t: &[Transmit], to: SocketAddr) -> Vec<(u16, u16, u8, u8)> {
    t.iter()
        .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
        .map(|t| {
            let h = RtpHeader::parse(&t.contents).unwrap();
            let p = h.payload(&t.contents);
            (h.seq.0, (u16::from(p[2] & 0x7F) << 8) | u16::from(p[3]), p[4], p[6])
        })
        .collect()
}

#[test]
fn picture_ids_go_on_by_one_across_a_switch_and_resends_carry_them_as_sent() {
    let mut h = H::with(retransmitting());
    let tok = h.token(call(1), 1, Role::Publisher);
    let ssrcs = LAYERS.iter().map(|s| (Ssrc(*s), MediaKind::Video)).collect();
    assert!(matches!(h.join_with(addr(0), tok, ssrcs), SessionMessage::JoinAck { .. }));
    h.join_av(addr(2), 3);
    h.session(addr(0), SessionMessage::Simulcast { txid: [1; 12], layers: LAYERS.map(Ssrc).to_vec() });
    h.take();
    // The high layer (the best heard) first, its ids as they come.
    for r in 0..6 {
        round(&mut h, r, if r == 0 { &[0, 1, 2] } else { &[] });
    }
    h.advance(Duration::from_millis(500));
    let mut got = ids_to(&h.take(), addr(2));
    // About 11, 37 and 88 kbit/s: 75 kbit/s fits the middle layer (over 70% of the high one).
    let remb = RtcpPacket::Remb(rtcp::Remb { sender_ssrc: Ssrc(300), bitrate_bps: 75_000, ssrcs: vec![] });
    h.input(addr(2), rtcp::write_compound(&[remb]).unwrap());
    round(&mut h, 6, &[]);
    round(&mut h, 7, &[1]);
    round(&mut h, 8, &[]);
    got.extend(ids_to(&h.take(), addr(2)));
    let layers: Vec<u8> = got.iter().map(|g| g.3).collect();
    assert_eq!(
        layers,
        vec![2, 2, 2, 2, 2, 2, 2, 2, 1, 1],
        "the high layer (round 7's first), then the middle one from its keyframe"
    );
    // Sequence numbers, PictureIDs (across the 15-bit wrap) and TL0PICIDX all go on by one.
    for w in got.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "{got:?}");
        assert_eq!(w[1].1, (w[0].1 + 1) & 0x7FFF, "{got:?}");
        assert_eq!(w[1].2, w[0].2.wrapping_add(1), "{got:?}");
    }
    assert_eq!(got[0].1, 32_765);
    // A NACK for the middle layer's keyframe: resent with the ids it was sent with.
    let key = got[8];
    h.advance(Duration::from_millis(100));
    let nack = rtcp::Nack::from_lost(Ssrc(300), Ssrc(11), &[SeqNo(key.0)]);
    h.input(addr(2), rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap());
    assert_eq!(ids_to(&h.take(), addr(2)), vec![key]);
}

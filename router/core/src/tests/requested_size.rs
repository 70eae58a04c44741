//! Requested size (a WHEP viewer's `max_height`): of a simulcast source a
//! receiver gets the best layer whose keyframes say it is at most that
//! high, whatever its estimate would allow above it; the lowest when none
//! is; layers of unknown size are not held back.

use super::simulcast::{got, plis_to, remb, round, vp8, LAYERS};
use super::*;
use corecast_proto::session::SessionMessage;

use crate::simulcast::{need_bps, Need};

/// Layer `k`'s keyframe for round `n`, its VP8 header giving `size`.
fn sized_key(k: usize, n: u16, (width, height): (u16, u16)) -> Vec<u8> {
    let mut p = vp8(k, n, true);
    let payload = 12; // the RTP header: no CSRCs, no extensions
    p[payload + 4..payload + 7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    p[payload + 7..payload + 9].copy_from_slice(&width.to_le_bytes());
    p[payload + 9..payload + 11].copy_from_slice(&height.to_le_bytes());
    p
}

const SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];

/// The simulcast call (publisher 1, receivers 2 at addr 1 and 3 at addr
/// 2), receiver 3 asking for at most `max_height`; the layers measured,
/// their keyframes (round 0) sized as [`SIZES`] when `sized`.
fn call_with_cap(max_height: u16, sized: bool) -> H {
    let mut h = super::simulcast::simulcast_call();
    let c = h.r.calls.get_mut(&call(1)).unwrap();
    let i = c.index_of(ParticipantId(3)).unwrap();
    c.participants[i].max_height = Some(max_height);
    send_layers(&mut h, sized);
    h
}

/// The publisher's three layers for a while (keyframes first, sized as
/// [`SIZES`] when `sized`), then a rate sweep; what went out is dropped.
fn send_layers(h: &mut H, sized: bool) {
    for k in (0..3).rev() {
        h.input(addr(0), if sized { sized_key(k, 0, SIZES[k]) } else { vp8(k, 0, true) });
    }
    for n in 1..6 {
        round(h, n, &[]);
    }
    h.advance(Duration::from_millis(500));
    h.take();
}

/// The layers (0..3) `to` got in `rounds`, layer `key` sending a keyframe in the first
/// (the rounds go top layer first: a switch shows as the old layer, then the new).
fn layers_after_key(h: &mut H, rounds: std::ops::Range<u16>, key: usize, to: SocketAddr) -> Vec<u8> {
    let start = rounds.start;
    for n in rounds {
        let keys = [key];
        round(h, n, if n == start { &keys } else { &[] });
    }
    got(&h.take(), to).iter().map(|p| p.3).collect()
}

#[test]
fn the_best_layer_at_most_the_requested_height() {
    let mut h = call_with_cap(360, true);
    // The capped receiver's layer goes down to the middle one (640x360) at
    // its keyframe, asked for at once; the other stays on the top layer.
    round(&mut h, 6, &[]);
    let t = h.take();
    assert_eq!(plis_to(&t, addr(0)), vec![LAYERS[1]]);
    assert_eq!(layers_after_key(&mut h, 7..10, 1, addr(2)), vec![2, 1, 1, 1], "moved at the keyframe");
    round(&mut h, 10, &[]);
    let t = h.take();
    assert_eq!(got(&t, addr(2)).iter().map(|p| p.3).collect::<Vec<_>>(), vec![1]);
    assert_eq!(got(&t, addr(1)).iter().map(|p| p.3).collect::<Vec<_>>(), vec![2], "the uncapped one: the top");

    // An estimate with room for the top layer changes nothing for it...
    h.input(addr(2), remb(300, 10_000_000));
    sweep(&mut h, 11..14);
    assert_eq!(layers_after_key(&mut h, 14..16, 2, addr(2)), vec![1, 1]);
    // ... nor does probing aim above the size: what it would take at best is the middle layer.
    let c = &h.r.calls[&call(1)];
    let (low, middle, top) = (rate(&h, 0), rate(&h, 1), rate(&h, 2));
    assert!(0 < low && low < middle && middle < top, "{low} {middle} {top}");
    assert_eq!(need_bps(c, ParticipantId(3), Need::Best), middle);
    assert_eq!(need_bps(c, ParticipantId(2), Need::Best), top);
    assert_eq!(need_bps(c, ParticipantId(3), Need::Least), low);

    // ... and one below it still moves it down.
    h.input(addr(2), remb(300, low + low / 2));
    sweep(&mut h, 16..19);
    assert_eq!(layers_after_key(&mut h, 19..22, 0, addr(2)), vec![0, 0, 0]);
}

/// Rounds `rounds` (no keyframes), then a rate sweep: what was sent.
fn sweep(h: &mut H, rounds: std::ops::Range<u16>) -> Vec<Transmit> {
    for n in rounds {
        round(h, n, &[]);
    }
    h.advance(Duration::from_millis(500));
    h.take()
}

#[test]
fn below_every_layer_the_lowest() {
    let mut h = call_with_cap(120, true);
    round(&mut h, 6, &[]);
    assert_eq!(plis_to(&h.take(), addr(0)), vec![LAYERS[0]]);
    assert_eq!(layers_after_key(&mut h, 7..10, 0, addr(2)), vec![2, 0, 0, 0]);
}

#[test]
fn layers_of_unknown_size_are_not_held_back() {
    let mut h = call_with_cap(360, false);
    round(&mut h, 6, &[]);
    assert_eq!(plis_to(&h.take(), addr(0)), Vec::<u32>::new());
    assert_eq!(layers_after_key(&mut h, 7..10, 1, addr(2)), vec![2, 2, 2]);
}

#[test]
fn a_layer_that_grows_past_the_size_is_left() {
    let mut h = call_with_cap(360, true);
    assert_eq!(layers_after_key(&mut h, 6..9, 1, addr(2)), vec![2, 1, 1, 1]);
    // The middle layer now sends 960x540 (its keyframe says so): at the
    // next sweep the receiver goes to the low layer.
    h.input(addr(0), sized_key(1, 9, (960, 540)));
    sweep(&mut h, 10..13);
    round(&mut h, 13, &[]);
    assert_eq!(plis_to(&h.take(), addr(0)), vec![LAYERS[0]]);
    assert_eq!(layers_after_key(&mut h, 14..16, 0, addr(2)), vec![1, 0, 0]);
}

/// Layer `k`'s measured bitrate.
fn rate(h: &H, k: usize) -> u64 {
    h.r.calls[&call(1)].producers().find(|p| p.ssrc == Ssrc(LAYERS[k])).unwrap().bitrate_bps
}

#[test]
fn a_native_receiver_asks_with_a_session_message() {
    let mut h = super::simulcast::simulcast_call();
    // Receiver 3 (at addr 2) asks for at most 360 lines, signed with its join key.
    h.session(addr(2), SessionMessage::MaxHeight { txid: [1; 12], height: 360 });
    let of3 = |h: &H| h.r.calls[&call(1)].participants.iter().find(|p| p.id == ParticipantId(3)).unwrap().max_height;
    assert_eq!(of3(&h), Some(360));
    send_layers(&mut h, true);
    round(&mut h, 6, &[]);
    assert_eq!(plis_to(&h.take(), addr(0)), vec![LAYERS[1]]);
    assert_eq!(layers_after_key(&mut h, 7..10, 1, addr(2)), vec![2, 1, 1, 1], "the middle layer from its keyframe");
    // 0: no limit again: the top layer (no estimate holds it back).
    h.session(addr(2), SessionMessage::MaxHeight { txid: [2; 12], height: 0 });
    assert_eq!(of3(&h), None);
    sweep(&mut h, 10..13);
    assert_eq!(layers_after_key(&mut h, 13..15, 2, addr(2)), vec![2, 2]);
}

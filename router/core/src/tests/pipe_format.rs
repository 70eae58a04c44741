//! A browser publisher's packets behind a pipe: its payload types and
//! header-extension ids (its SDP's, not the native client's) are announced
//! with its producers, so receivers on another router or another worker
//! get what receivers on the publisher's own worker get: the spatial
//! layers and Dependency Descriptor of its AV1 SVC (over a link between
//! routers), the keyframe-timed layer switches of its VP8 simulcast (over a
//! pipe between workers).

use std::collections::VecDeque;

use corecast_proto::pipe_seal::PipeKey;
use corecast_proto::MediaTime;

use super::simulcast::{contiguous, remb};
use super::svc::{l2t1, DD_EXT};
use super::webrtc::{identity, Peer, VIDEO_SSRC};
use super::*;
use crate::webrtc::Codec;

/// Router `i`'s media address (0: the call's home, 1: a leaf).
fn router_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 5000))
}

/// Opens the link for `call(1)` between the two routers (1's uplink to 0).
fn link(hs: &mut [H; 2]) {
    let key = PipeKey::new([0x42; 32]);
    for (i, h) in hs.iter_mut().enumerate() {
        let open = Command::OpenPipe { call: call(1), peer: router_addr(1 - i), uplink: i == 1, key: key.clone() };
        h.r.handle_input(h.now, Input::Command(open));
        h.drain();
    }
    carry(hs);
}

/// Delivers what each router sent the other until neither sends more;
/// everything else stays in each router's transmits.
fn carry(hs: &mut [H; 2]) {
    loop {
        let mut moved = false;
        for i in 0..2 {
            let sent = std::mem::take(&mut hs[i].transmits);
            let (to_peer, rest): (Vec<Transmit>, Vec<Transmit>) =
                sent.into_iter().partition(|t| t.destination == router_addr(1 - i));
            hs[i].transmits = rest;
            for t in to_peer {
                hs[1 - i].input(router_addr(i), t.contents.to_vec());
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// Browser viewer `i` of participant 1 on `h`, its AV1 under payload type
/// 41; `dd`: it negotiated the Dependency Descriptor (under 7, with
/// `extmap-allow-mixed`).
fn av1_viewer(h: &mut H, i: u16, dd: bool) -> Peer {
    let config = dimpl::Config::builder().build().unwrap();
    let mut v = Peer::open_edited(h, i, (call(1), u64::from(i), false, Some(1)), config, |leg| {
        leg.media[1].payload_type = 41;
        leg.media[1].rtx_payload_type = Some(42);
        if dd {
            leg.extensions.dependency_descriptor = Some(7);
            leg.extensions.allow_mixed = true;
        }
    });
    v.connect_ice(h);
    v.handshake(h);
    v
}

/// One packet of the SVC stream as a viewer opened it: its number, spatial
/// layer, payload type, marker, and the descriptor's template id (if it
/// carries one under the viewer's id) and whether it has the structure.
type Seen = (u16, u8, Pt, bool, Option<(u8, bool)>);

/// What viewer `v` got of the SVC stream from `t`.
fn seen(v: &mut Peer, t: &[Transmit]) -> Vec<Seen> {
    let to = v.addr;
    t.iter()
        .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
        .map(|t| v.open_rtp(&t.contents))
        .filter(|q| q.ssrc == Ssrc(VIDEO_SSRC))
        .map(|q| {
            let dd = q.extensions.iter().find(|e| e.0 == 7).map(|e| corecast_proto::dd::parse(&e.1).unwrap());
            (q.seq.0, q.payload[0], q.pt, q.marker, dd.map(|d| (d.template_id, d.structure.is_some())))
        })
        .collect()
}

/// A browser publishes AV1 L2T1 (its payload type 35, the descriptor under
/// its id 12: the native client's are 45 and none) on the home router;
/// browser viewers with and without the descriptor watch it on the home
/// and on a leaf. Each leaf viewer gets what its twin on the home gets: the
/// one with the descriptor both spatial layers with the descriptor under
/// its own id, the one without the base layer only (all a browser decodes
/// of two spatial layers without it), both under their own payload type.
#[test]
fn browser_viewers_behind_a_link_get_a_browsers_svc_as_viewers_on_its_router_do() {
    let mut hs = [H::with(retransmitting()), H::with(retransmitting())];
    for h in &mut hs {
        h.r.set_dtls_identity(identity());
    }
    let config = dimpl::Config::builder().build().unwrap();
    let mut a = Peer::open_edited(&mut hs[0], 1, (call(1), 1, true, None), config, |leg| {
        leg.extensions.dependency_descriptor = Some(DD_EXT);
    });
    a.connect_ice(&mut hs[0]);
    a.handshake(&mut hs[0]);
    // Viewers 2 (descriptor) and 3 (none) on the home, their twins 4 and 5 on the leaf.
    let mut home = [av1_viewer(&mut hs[0], 2, true), av1_viewer(&mut hs[0], 3, false)];
    let mut leaf = [av1_viewer(&mut hs[1], 4, true), av1_viewer(&mut hs[1], 5, false)];
    link(&mut hs);
    for h in &mut hs {
        h.take();
    }
    for unit in 0..30u16 {
        for s in 0..2 {
            let p = a.seal(&l2t1(unit, s, unit == 0));
            hs[0].input(a.addr, p);
            carry(&mut hs);
        }
    }
    let (t0, t1) = (hs[0].take(), hs[1].take());
    for ((at_home, on_leaf), dd) in home.iter_mut().zip(&mut leaf).zip([true, false]) {
        let (here, there) = (seen(at_home, &t0), seen(on_leaf, &t1));
        assert_eq!(there, here, "the leaf's viewer gets what the home's does (descriptor: {dd})");
        let layers: Vec<u8> = there.iter().map(|p| p.1).collect();
        let expected: Vec<u8> = (0..30).flat_map(|_| if dd { vec![0, 1] } else { vec![0] }).collect();
        assert_eq!(layers, expected, "S0 and S1 with the descriptor, S0 alone without it");
        assert!(contiguous(&there.iter().map(|p| p.0).collect::<Vec<_>>()), "no gap");
        assert!(there.iter().all(|p| p.2 == Pt(41)), "under the viewer's own payload type");
        for (i, p) in there.iter().enumerate() {
            let descriptor = dd.then_some((p.1, i == 0));
            assert_eq!(p.4, descriptor, "the publisher's descriptor where negotiated, the structure first");
        }
    }
    // A WHEP answer on the leaf for the publisher names its streams and
    // prefers its codec, as one on its own router does.
    let pid = ParticipantId(1);
    assert_eq!(hs[1].r.video_codec_of(call(1), pid), Some(Codec::Av1), "the leaf knows the codec it sends");
    assert_eq!(hs[0].r.video_codec_of(call(1), pid), Some(Codec::Av1));
    let leaf_streams = hs[1].r.streams_of(call(1), pid).unwrap();
    assert!(leaf_streams.contains(&(Ssrc(VIDEO_SSRC), MediaKind::Video)), "{leaf_streams:?}");
    assert_eq!(hs[1].r.streams_of(call(1), ParticipantId(99)), None, "nobody of that id");
}

/// The RID header extension's id on the simulcast publisher's leg.
const RID_EXT: u8 = 10;
/// The layers' SSRCs (q, h, f: lowest first) and their payload sizes.
const LAYERS: [u32; 3] = [0x10, 0x20, 0x30];
const SIZES: [usize; 3] = [100, 300, 900];

/// A VP8 packet (the browser's payload type 100: the native client's VP8
/// is 96) of layer `k` (q, h, f) by its RID, round `n` on the layer's own
/// clock, the first of a keyframe or not; its payload's third byte is `k`.
fn vp8_layer(k: usize, n: u16, key: bool) -> Vec<u8> {
    let mut payload = vec![k as u8; SIZES[k]];
    payload[0] = 0x10; // S=1: the start of a frame
    payload[1] = if key { 0x00 } else { 0x01 }; // P=0: a keyframe
    RtpPacket {
        pt: Pt(100),
        seq: SeqNo(1000 * (k as u16 + 1) + n),
        ssrc: Ssrc(LAYERS[k]),
        timestamp: MediaTime(0x1000_0000 * (k as u32 + 1) + 3000 * u32::from(n)),
        extensions: vec![(RID_EXT, ["q", "h", "f"][k].as_bytes().to_vec())],
        payload,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

/// Feeds `input` to worker `w` and every pipe message on to the other, in
/// order (as the driver's rings do); what each transmits and tells stays with it.
fn feed(hs: &mut [H; 2], w: usize, input: Input) {
    let mut work = VecDeque::from([(w, input)]);
    while let Some((i, inp)) = work.pop_front() {
        let h = &mut hs[i];
        h.r.handle_input(h.now, inp);
        loop {
            match h.r.poll_output() {
                Output::Transmit(t) => h.transmits.push(t),
                Output::Pipe(p) => {
                    work.push_back((p.worker, Input::Pipe { from_worker: i, call: p.call, message: p.message }))
                }
                Output::Event(e) => h.events.push(e),
                Output::Timeout(_) => break,
            }
        }
    }
}

/// Native participant `pid` at `a` (video SSRC `ssrc`) joins `c` through
/// worker 0, following its redirect; the worker that admitted it.
fn join_spread(hs: &mut [H; 2], c: CallId, pid: u64, a: SocketAddr, ssrc: u32) -> usize {
    let tok = hs[0].token(c, pid, Role::Publisher);
    let mut at = 0;
    for _ in 0..2 {
        let ssrcs = vec![(Ssrc(ssrc), MediaKind::Video)];
        let m = SessionMessage::Join { txid: [1; 12], token: tok.clone(), ssrcs, quality: Quality::Hd, srtp: false };
        feed(hs, at, Input::Receive { source: a, contents: Bytes::from(signed(&m, &tok)) });
        let reply = hs[at].transmits.iter().rposition(|t| t.destination == a).expect("a reply");
        match SessionMessage::parse(&hs[at].transmits.remove(reply).contents).unwrap() {
            SessionMessage::JoinAck { .. } => return at,
            SessionMessage::JoinError { code: JoinErrorCode::TryAlternate, alternate: Some(alt), .. } => {
                at = usize::from(alt == addr(501));
            }
            m => panic!("{m:?}"),
        }
    }
    panic!("redirected twice");
}

/// A browser sends VP8 simulcast (its payload type 100, layers learned by
/// RID) on the call's owning worker; native receiver 2 is on that worker,
/// receiver 3 was spread to the other. Both start on the best layer at its
/// keyframe and, their estimates lowered, move to the middle layer at its
/// keyframe (asked of the browser at once): receiver 3 gets exactly what
/// receiver 2 does.
#[test]
fn a_receiver_on_another_worker_switches_a_browsers_simulcast_at_its_keyframes() {
    let addrs = vec![addr(500), addr(501)];
    let cfg = |index| RouterConfig {
        placement: Placement { index, addresses: addrs.clone() },
        max_receivers_per_worker: 2,
        ..retransmitting()
    };
    let mut hs = [H::with(cfg(0)), H::with(cfg(1))];
    let now = hs[0].now.max(hs[1].now);
    for h in &mut hs {
        h.now = now;
    }
    let c = (0u8..=255).map(call).find(|c| Placement::worker_for(c, 2) == 0).unwrap();
    hs[0].r.set_dtls_identity(identity());
    let config = dimpl::Config::builder().build().unwrap();
    let mut a = Peer::open_edited(&mut hs[0], 1, (c, 1, true, None), config, |leg| {
        let video = &mut leg.media[1];
        (video.codec, video.payload_type, video.rtx_payload_type) = (Codec::Vp8, 100, Some(101));
        video.rids = vec!["q".into(), "h".into(), "f".into()];
        video.remote_ssrcs.clear();
        video.remote_rtx.clear();
        leg.extensions.rid = Some(RID_EXT);
    });
    a.connect_ice(&mut hs[0]);
    a.handshake(&mut hs[0]);
    assert_eq!(join_spread(&mut hs, c, 2, addr(2), 0x2222), 0);
    assert_eq!(join_spread(&mut hs, c, 3, addr(3), 0x3333), 1, "spread to the other worker");
    // Rounds `from..to`, the best layer first (receivers start on it), the
    // first with keyframes on the layers in `keys`; what both workers sent.
    let rounds = |hs: &mut [H; 2], a: &mut Peer, (from, to): (u16, u16), keys: &[usize]| -> Vec<Transmit> {
        for n in from..to {
            for k in (0..3).rev() {
                let key = keys.contains(&k) && n == from;
                feed(hs, 0, Input::Receive { source: a.addr, contents: Bytes::from(a.seal(&vp8_layer(k, n, key))) });
            }
        }
        hs.iter_mut().flat_map(|h| h.take()).collect()
    };
    let mut got = rounds(&mut hs, &mut a, (0, 6), &[0, 1, 2]);
    // A rate sweep measures the layers (about 11, 37 and 88 kbit/s).
    for w in 0..2 {
        hs[w].now += Duration::from_millis(500);
        feed(&mut hs, w, Input::Timeout);
    }
    feed(&mut hs, 0, Input::Receive { source: addr(2), contents: Bytes::from(remb(0x2222, 75_000)) });
    feed(&mut hs, 1, Input::Receive { source: addr(3), contents: Bytes::from(remb(0x3333, 75_000)) });
    got.extend(rounds(&mut hs, &mut a, (6, 7), &[]));
    let publisher = a.addr;
    let plis: Vec<Ssrc> = got
        .iter()
        .filter(|t| t.destination == publisher && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| a.open_rtcp(&t.contents))
        .filter_map(|p| match p {
            RtcpPacket::Pli(p) => Some(p.media_ssrc),
            _ => None,
        })
        .collect();
    assert!(plis.contains(&Ssrc(LAYERS[1])), "the middle layer's keyframe is asked for: {plis:?}");
    got.extend(rounds(&mut hs, &mut a, (7, 9), &[1]));
    let (here, there) = (super::simulcast::got(&got, addr(2)), super::simulcast::got(&got, addr(3)));
    assert_eq!(there, here, "the receiver on the other worker gets what the one on the publisher's does");
    let layers: Vec<u8> = there.iter().map(|p| p.3).collect();
    // f from round 0 (its keyframe) to 7 (sent before h's keyframe), then h.
    assert_eq!(layers, [2, 2, 2, 2, 2, 2, 2, 2, 1, 1]);
    assert!(there.iter().all(|p| p.0 == LAYERS[2]), "one stream, under the group's SSRC");
    assert!(contiguous(&there.iter().map(|p| p.1).collect::<Vec<_>>()), "no gap at the switch");
    assert_eq!(hs[1].r.stats().layer_switches, 1);
}

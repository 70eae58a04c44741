//! Layers read from the Dependency Descriptor: a browser's AV1 (or VP9)
//! video whose payload the router cannot read (encrypted end to end, say)
//! is still thinned for a receiver with a frame-rate cap (temporal layers)
//! or a lower estimate, or by the overload protection (spatial layers),
//! gap-free.

use super::webrtc::{identity, Peer, VIDEO_SSRC};
use super::*;

pub(super) const DD_EXT: u8 = 12;

/// The Dependency Descriptor of frame `n` of an L1T3 stream (temporal
/// layers 0, 2, 1, 2, ...; one packet per frame), the first with the
/// template structure: templates 0, 1, 2 for T0, T1, T2 (offset 0, three
/// decode targets).
fn dd(n: u16) -> Vec<u8> {
    let tid = [0u8, 2, 1, 2][usize::from(n % 4)];
    // start and end of frame, the template id, the frame number.
    let mut v = vec![0xC0 | tid, (n >> 8) as u8, n as u8];
    if n == 0 {
        v.extend(structure(&[1, 1, 3], 3, &[]));
    }
    v
}

/// A descriptor's extended fields with a template structure (offset 0, no
/// active targets, no custom fields): templates by `next_layer_idc`, `dts`
/// decode targets (indications all 0, no frame diffs, no chains), and each
/// spatial layer's (width, height) if `resolutions` has them.
fn structure(next_layer_idc: &[u32], dts: u32, resolutions: &[(u32, u32)]) -> Vec<u8> {
    let mut f: Vec<(u32, usize)> = vec![(1, 1), (0, 4), (0, 6), (dts - 1, 5)];
    f.extend(next_layer_idc.iter().map(|&i| (i, 2)));
    f.extend(std::iter::repeat_n((0, 2), next_layer_idc.len() * dts as usize));
    f.extend(std::iter::repeat_n((0, 1), next_layer_idc.len()));
    f.push((0, (32 - (dts + 1).leading_zeros()) as usize - 1)); // chain_cnt = 0, ns(dts + 1)
    f.push((u32::from(!resolutions.is_empty()), 1));
    f.extend(resolutions.iter().flat_map(|&(w, h)| [(w - 1, 16), (h - 1, 16)]));
    let mut out = Vec::new();
    for (at, bit) in f.iter().flat_map(|&(v, n)| (0..n).rev().map(move |i| (v >> i) & 1)).enumerate() {
        if at % 8 == 0 {
            out.push(0);
        }
        *out.last_mut().unwrap() |= (bit as u8) << (7 - at % 8);
    }
    out
}

/// Frame `n` from the browser: AV1 (its payload type 35) whose payload says
/// nothing readable (0xFF bytes), the descriptor in extension `DD_EXT`.
fn frame(n: u16) -> Vec<u8> {
    RtpPacket {
        pt: Pt(35),
        seq: SeqNo(n),
        ssrc: Ssrc(VIDEO_SSRC),
        timestamp: corecast_proto::MediaTime(3000 * u32::from(n)),
        extensions: vec![(DD_EXT, dd(n))],
        payload: vec![0xFF; 300],
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

/// A browser publisher (participant 1) whose leg negotiated the Dependency Descriptor, connected.
fn dd_publisher() -> (H, Peer) {
    dd_publisher_with(retransmitting())
}

/// [`dd_publisher`] on a router configured with `cfg`.
fn dd_publisher_with(cfg: RouterConfig) -> (H, Peer) {
    let mut h = H::with(cfg);
    h.r.set_dtls_identity(identity());
    let config = dimpl::Config::builder().build().unwrap();
    let mut a = Peer::open_edited(&mut h, 1, (call(1), 1, true, None), config, |leg| {
        leg.extensions.dependency_descriptor = Some(DD_EXT);
    });
    a.connect_ice(&mut h);
    a.handshake(&mut h);
    (h, a)
}

#[test]
fn a_frame_rate_cap_follows_the_dependency_descriptor_without_reading_the_payload() {
    let (mut h, mut a) = dd_publisher();
    h.join(addr(2), call(1), 2, 0x2222);
    h.join(addr(3), call(1), 3, 0x3333);
    let c = h.r.calls.get_mut(&call(1)).unwrap();
    let i = c.index_of(ParticipantId(2)).unwrap();
    c.participants[i].max_fps = Some(8);
    h.take();
    for n in 0..120u16 {
        let p = a.seal(&frame(n));
        h.input(a.addr, p);
    }
    let t = h.take();
    let seqs = |to| -> Vec<u16> {
        t.iter()
            .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
            .map(|t| RtpHeader::parse(&t.contents).unwrap().seq.0)
            .collect()
    };
    assert_eq!(seqs(addr(3)).len(), 120, "uncapped: every frame");
    let capped = seqs(addr(2));
    // T0 only (7.5 of 30 frames/s), the base layer from the start.
    assert_eq!(capped.len(), 30, "{capped:?}");
    assert!(capped.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "no gap: {capped:?}");
    assert_eq!(h.r.stats().frame_rate_dropped, 90);
}

#[test]
fn a_malformed_descriptor_falls_back_to_the_payload_and_drops_nothing() {
    let (mut h, mut a) = dd_publisher();
    h.join(addr(2), call(1), 2, 0x2222);
    h.take();
    for n in 0..10u16 {
        let mut f = RtpPacket::parse(&frame(n)).unwrap();
        f.extensions = vec![(DD_EXT, vec![0xFF; 2])]; // too short to be a descriptor
        let p = a.seal(&f.to_vec().unwrap());
        h.input(a.addr, p);
    }
    assert_eq!(h.take().iter().filter(|t| t.destination == addr(2)).count(), 10);
    assert_eq!(h.r.stats().dropped(), 0);
}

/// Frame `n` of an L2T1 stream (two spatial layers, both in every
/// temporal unit: S0 then S1), as [`spatial_frame`] makes it.
pub(super) fn l2t1(unit: u16, spatial: u8, key: bool) -> Vec<u8> {
    spatial_frame(2, unit, spatial, key)
}

/// Spatial layer `spatial`'s frame of temporal unit `unit` of an LnT1
/// stream of `layers` (2 or 3) spatial layers, all in every unit, S0
/// first: the descriptor (template k = Sk; the structure with S0 of
/// keyframe units), the payload 200, 800, 1000 bytes (S0, S1, S2) of its
/// spatial id.
fn spatial_frame(layers: u8, unit: u16, spatial: u8, key: bool) -> Vec<u8> {
    sized_spatial_frame(layers, unit, spatial, key, &[])
}

/// [`spatial_frame`] whose structure gives each spatial layer's size (`resolutions`; none if empty).
fn sized_spatial_frame(layers: u8, unit: u16, spatial: u8, key: bool, resolutions: &[(u32, u32)]) -> Vec<u8> {
    let n = unit * u16::from(layers) + u16::from(spatial);
    let mut dd = vec![0xC0 | spatial, (n >> 8) as u8, n as u8];
    if key && spatial == 0 {
        // `layers` decode targets; next_layer_idc 2 (next spatial) ..., 3 (end).
        let idc: &[u32] = if layers == 2 { &[2, 3] } else { &[2, 2, 3] };
        dd.extend(structure(idc, u32::from(layers), resolutions));
    }
    RtpPacket {
        pt: Pt(35),
        seq: SeqNo(n),
        ssrc: Ssrc(VIDEO_SSRC),
        timestamp: corecast_proto::MediaTime(3000 * u32::from(unit)),
        extensions: vec![(DD_EXT, dd)],
        payload: vec![spatial; [200, 800, 1000][usize::from(spatial)]],
        // The end of the temporal unit (its top layer's last packet).
        marker: spatial + 1 == layers,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

#[test]
fn each_receiver_gets_the_spatial_layers_its_estimate_allows_down_at_once_up_at_a_keyframe() {
    let (mut h, mut a) = dd_publisher();
    h.join(addr(2), call(1), 2, 0x2222);
    h.join(addr(3), call(1), 3, 0x3333);
    let mut unit = 0u16;
    // `key`: the first unit sent is a keyframe.
    let mut send = |h: &mut H, units: u16, key: bool| {
        for i in 0..units {
            for s in 0..2 {
                let p = a.seal(&l2t1(unit, s, (key && i == 0) || unit == 0));
                h.input(a.addr, p);
            }
            unit += 1;
            if unit.is_multiple_of(15) {
                h.advance(Duration::from_millis(500));
            }
        }
    };
    let got = |h: &mut H, to| -> Vec<(u16, u8)> {
        h.take()
            .iter()
            .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
            .map(|t| {
                let hd = RtpHeader::parse(&t.contents).unwrap();
                (hd.seq.0, hd.payload(&t.contents)[0])
            })
            .collect()
    };
    send(&mut h, 30, false);
    h.take();
    // About 60 and 200 kbit/s: 100 kbit/s is the base layer's only.
    let remb = |bps| {
        let p = RtcpPacket::Remb(rtcp::Remb { sender_ssrc: Ssrc(0x3333), bitrate_bps: bps, ssrcs: vec![] });
        rtcp::write_compound(&[p]).unwrap()
    };
    h.input(addr(3), remb(100_000));
    send(&mut h, 10, false);
    let to2 = h.transmits.iter().filter(|t| t.destination == addr(2) && classify(&t.contents) == Kind::Rtp).count();
    assert_eq!(to2, 20, "the other receiver keeps both layers");
    let low = got(&mut h, addr(3));
    assert!(low.iter().all(|p| p.1 == 0) && low.len() == 10, "S0 only, at once: {low:?}");
    // Up again: S1 waits for a keyframe.
    h.input(addr(3), remb(1_000_000));
    send(&mut h, 3, false);
    let before_key = got(&mut h, addr(3));
    assert!(before_key.iter().all(|p| p.1 == 0), "no S1 before a keyframe");
    send(&mut h, 2, true);
    let after = got(&mut h, addr(3));
    assert_eq!(after.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
    let mut all: Vec<u16> = low.iter().chain(&before_key).chain(&after).map(|p| p.0).collect();
    all.dedup();
    assert!(all.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "one stream without gaps: {all:?}");
}

/// A REMB from native receiver `ssrc`: its estimate, `bps`.
fn remb_from(ssrc: u32, bps: u64) -> Vec<u8> {
    let p = RtcpPacket::Remb(rtcp::Remb { sender_ssrc: Ssrc(ssrc), bitrate_bps: bps, ssrcs: vec![] });
    rtcp::write_compound(&[p]).unwrap()
}

#[test]
fn overload_holds_the_heaviest_svc_receiver_at_spatial_layer_0_and_its_layers_return_at_a_keyframe() {
    let (mut h, mut a) = dd_publisher_with(RouterConfig { hd_recovery: Duration::from_secs(4), ..retransmitting() });
    // Receivers 2 and 3 of publisher 1's L3T1 stream; 3 also gets 2's plain video: the heavier.
    h.join(addr(2), call(1), 2, 0x2222);
    h.join(addr(3), call(1), 3, 0x3333);
    let mut unit = 0u16;
    // `units` temporal units (30 a second; `key`: the first a keyframe), each with a packet of 2's video.
    let mut send = |h: &mut H, units: u16, key: bool| {
        for i in 0..units {
            for s in 0..3 {
                let p = a.seal(&spatial_frame(3, unit, s, (key && i == 0) || unit == 0));
                h.input(a.addr, p);
            }
            h.input(addr(2), rtp(0x2222, unit));
            unit += 1;
            if unit.is_multiple_of(15) {
                h.advance(Duration::from_millis(500));
            }
        }
    };
    // A load figure (and keepalives from the native participants, whom the test's seconds would time out).
    let load = |h: &mut H, busy_permille: u16| {
        for pid in [2, 3] {
            h.session(addr(pid), SessionMessage::Keepalive { txid: [0; 12] });
        }
        h.r.handle_input(h.now, Input::Load { busy_permille });
        h.drain();
    };
    // The SVC stream's packets to each receiver since the last call: (sequence number, spatial id).
    let got = |h: &mut H| -> [Vec<(u16, u8)>; 2] {
        let t = h.take();
        [addr(2), addr(3)].map(|to| {
            t.iter()
                .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
                .filter_map(|t| {
                    let hd = RtpHeader::parse(&t.contents).unwrap();
                    (hd.ssrc == Ssrc(VIDEO_SSRC)).then(|| (hd.seq.0, hd.payload(&t.contents)[0]))
                })
                .collect()
        })
    };
    let layers = |v: &[(u16, u8)]| -> [usize; 3] { [0, 1, 2].map(|s| v.iter().filter(|p| p.1 == s).count()) };
    send(&mut h, 60, true);
    load(&mut h, 800);
    let [to2, to3] = got(&mut h);
    assert_eq!((layers(&to2[90..]), layers(&to3[90..])), ([30; 3], [30; 3]), "no estimate: every layer");
    let mut stream3 = to3;
    // Over the budget: 3, the heavier, is held at S0 from the next frame on; 2 keeps every layer.
    load(&mut h, 950);
    assert_eq!(h.r.stats().overload_layers_lowered, 1);
    assert!(!h.events.iter().any(|e| matches!(e, Event::QualityChanged { .. })), "layers, not SD");
    send(&mut h, 30, false);
    load(&mut h, 800);
    let [to2, to3] = got(&mut h);
    assert_eq!((layers(&to2), layers(&to3)), ([30; 3], [30, 0, 0]));
    stream3.extend(to3);
    // An estimate with room for every layer, and a keyframe: still S0 while the load holds it.
    h.input(addr(3), remb_from(0x3333, 1_000_000));
    send(&mut h, 30, true);
    let [to2, to3] = got(&mut h);
    assert_eq!((layers(&to2), layers(&to3)), ([30; 3], [30, 0, 0]), "the estimate does not raise it");
    stream3.extend(to3);
    // Calm for `hd_recovery` (4 s from the first calm figure): the layers are let go ...
    for _ in 0..4 {
        load(&mut h, 300);
        send(&mut h, 30, false);
    }
    assert_eq!(h.r.stats().overload_restored, 0);
    let [to2, to3] = got(&mut h);
    assert_eq!((layers(&to2), layers(&to3)), ([120; 3], [120, 0, 0]));
    stream3.extend(to3);
    load(&mut h, 300);
    assert_eq!(h.r.stats().overload_restored, 1);
    // ... and come back at the next keyframe, not before.
    send(&mut h, 5, false);
    let [_, to3] = got(&mut h);
    assert_eq!(layers(&to3), [5, 0, 0], "S0 until a keyframe");
    stream3.extend(to3);
    send(&mut h, 2, true);
    let [to2, to3] = got(&mut h);
    assert_eq!(to2.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(to3.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2], "every layer again");
    stream3.extend(to3);
    let seqs: Vec<u16> = stream3.iter().map(|p| p.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "one stream without gaps: {seqs:?}");
    // Held from the lowering to the keyframe: 185 units, two upper-layer frames each, skipped.
    assert_eq!(h.r.stats().layers_skipped, 370);
    assert_eq!(h.r.stats().overload_layers_lowered, 1);
    assert_eq!(h.r.stats().dropped(), 0, "nothing dropped on the way");
}

#[test]
fn a_receiver_that_asked_for_small_video_gets_the_spatial_layers_within_its_size() {
    // L3T1 at 320x180, 640x360, 1280x720 (S0, S1, S2); receivers 2 (at
    // most 360 high) and 3 (no size asked); then the same stream with a
    // structure that gives no sizes.
    for (resolutions, capped) in [(&[(320, 180), (640, 360), (1280, 720)][..], [30, 30, 0]), (&[][..], [30; 3])] {
        let (mut h, mut a) = dd_publisher();
        h.join(addr(2), call(1), 2, 0x2222);
        h.join(addr(3), call(1), 3, 0x3333);
        let c = h.r.calls.get_mut(&call(1)).unwrap();
        let i = c.index_of(ParticipantId(2)).unwrap();
        c.participants[i].max_height = Some(400);
        for unit in 0..60u16 {
            if unit == 30 {
                h.take(); // what went before the second keyframe
            }
            for s in 0..3 {
                let p = a.seal(&sized_spatial_frame(3, unit, s, unit % 30 == 0, resolutions));
                h.input(a.addr, p);
            }
            if unit % 15 == 14 {
                h.advance(Duration::from_millis(500));
            }
        }
        let t = h.take();
        // Spatial ids of the stream's packets from the second keyframe on.
        let layers = |to| -> [usize; 3] {
            let ids = t.iter().filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp);
            let ids: Vec<u8> = ids.map(|t| RtpHeader::parse(&t.contents).unwrap().payload(&t.contents)[0]).collect();
            [0, 1, 2].map(|s| ids.iter().filter(|&&x| x == s).count())
        };
        assert_eq!(layers(addr(2)), capped, "the capped receiver, sizes {resolutions:?}");
        assert_eq!(layers(addr(3)), [30; 3], "the other receiver gets every layer");
    }
}

/// Browser viewers that asked for at most 400 lines (`max_height`) of an
/// L3T1 stream of 180, 360 and 720 lines: the one that negotiated the
/// Dependency Descriptor (with `extmap-allow-mixed`) gets S0 and S1 and the
/// publisher's descriptor on every packet under its own id (the template
/// structure's in the two-byte header form); the one that did not gets the
/// base layer only (all a browser decodes of several spatial layers
/// without the descriptor) and no descriptor. For each, the last packet of
/// each frame of its highest layer carries the marker bit (the end of its
/// temporal unit, which the publisher set on S2's), nothing else does.
#[test]
fn browser_viewers_get_the_spatial_layers_they_can_decode_with_marked_temporal_units() {
    let (mut h, mut a) = dd_publisher();
    let viewer = |h: &mut H, i: u16, dd: bool| {
        let config = dimpl::Config::builder().build().unwrap();
        let mut v = Peer::open_edited(h, i, (call(1), u64::from(i), false, Some(1)), config, |leg| {
            leg.max_height = Some(400);
            if dd {
                leg.extensions.dependency_descriptor = Some(7);
                leg.extensions.allow_mixed = true;
            }
        });
        v.connect_ice(h);
        v.handshake(h);
        v
    };
    let mut b = viewer(&mut h, 2, true);
    let mut c = viewer(&mut h, 3, false);
    let sizes = [(320, 180), (640, 360), (1280, 720)];
    for unit in 0..60u16 {
        if unit == 30 {
            h.take(); // what went before the second keyframe
        }
        for s in 0..3 {
            let p = a.seal(&sized_spatial_frame(3, unit, s, unit % 30 == 0, &sizes));
            h.input(a.addr, p);
        }
        if unit % 15 == 14 {
            h.advance(Duration::from_millis(500));
        }
    }
    let t = h.take();
    for (v, dd) in [(&mut b, true), (&mut c, false)] {
        let to = v.addr;
        let got: Vec<RtpPacket> = t
            .iter()
            .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
            .map(|t| v.open_rtp(&t.contents))
            .filter(|q| q.ssrc == Ssrc(VIDEO_SSRC))
            .collect();
        let top = if dd { 1 } else { 0 };
        assert_eq!(got.len(), 30 * (top + 1), "S0 to S{top} of 30 units");
        for q in &got {
            let spatial = q.payload[0];
            assert!(usize::from(spatial) <= top, "S{spatial}: above 400 lines, or more than S0 without the descriptor");
            assert_eq!(q.marker, usize::from(spatial) == top, "the marker ends the viewer's temporal unit");
            let desc = q.extensions.iter().find(|e| e.0 == 7).map(|e| corecast_proto::dd::parse(&e.1).unwrap());
            assert_eq!(desc.is_some(), dd, "the descriptor only where it was negotiated");
            if let Some(d) = desc {
                assert_eq!(d.structure.is_some(), q.seq == got[0].seq, "the keyframe's structure: {d:?}");
                assert_eq!(d.template_id, spatial);
            }
        }
    }
}

/// A WHEP leg's requested size changed while it plays
/// (`set_leg_preferences`, calls' JSON `PATCH` on the session): down to
/// the layers within it from the next allocation, up again (the cap
/// lifted with 0) at the next keyframe; an unknown session changes nothing.
#[test]
fn a_viewers_requested_size_changes_while_it_plays() {
    let (mut h, mut a) = dd_publisher();
    let config = dimpl::Config::builder().build().unwrap();
    let mut v = Peer::open_edited(&mut h, 2, (call(1), 2, false, Some(1)), config, |leg| {
        leg.extensions.dependency_descriptor = Some(7);
        leg.extensions.allow_mixed = true;
    });
    v.connect_ice(&mut h);
    v.handshake(&mut h);
    let sizes = [(320, 180), (640, 360), (1280, 720)];
    let (mut unit, mut plis) = (0u16, 0usize);
    // `key`: the first unit is a keyframe (the publisher sends none otherwise after the first).
    let mut layers = |h: &mut H, v: &mut Peer, units: u16, key: bool| -> [usize; 3] {
        let mut got = [0; 3];
        for k in 0..units {
            for s in 0..3 {
                let p = a.seal(&sized_spatial_frame(3, unit, s, unit == 0 || (key && k == 0), &sizes));
                h.input(a.addr, p);
            }
            unit += 1;
            if unit % 15 == 0 {
                h.advance(Duration::from_millis(500));
            }
            let to = v.addr;
            for t in h.take() {
                if t.destination == a.addr && classify(&t.contents) == Kind::Rtcp {
                    let pli = |p: &RtcpPacket| matches!(p, RtcpPacket::Pli(x) if x.media_ssrc == Ssrc(VIDEO_SSRC));
                    plis += a.open_rtcp(&t.contents).iter().filter(|p| pli(p)).count();
                }
                if t.destination != to || classify(&t.contents) != Kind::Rtp {
                    continue;
                }
                let q = v.open_rtp(&t.contents);
                if q.ssrc == Ssrc(VIDEO_SSRC) {
                    got[usize::from(q.payload[0])] += 1;
                }
            }
        }
        got
    };
    assert_eq!(layers(&mut h, &mut v, 15, false), [15; 3], "no size asked: every layer");
    let prefs = |max_height| crate::LegPreferences { max_height: Some(max_height), ..Default::default() };
    assert!(!h.r.set_leg_preferences("no-such-leg", prefs(400)));
    assert!(h.r.set_leg_preferences(&v.router_ufrag, prefs(400)));
    // The next allocation (the rate sweep after 15 more units) lowers it at the next frame.
    assert_eq!(layers(&mut h, &mut v, 15, false), [15; 3]);
    assert_eq!(layers(&mut h, &mut v, 15, false), [15, 15, 0], "at most 400 lines: S0 and S1");
    assert!(h.r.set_leg_preferences(&v.router_ufrag, prefs(0)));
    assert_eq!(layers(&mut h, &mut v, 30, false), [30, 30, 0], "up only at a keyframe");
    assert_eq!(layers(&mut h, &mut v, 15, true), [15; 3], "every layer again from the keyframe");
    assert!(plis >= 1, "the move up asked the publisher for a keyframe");
}

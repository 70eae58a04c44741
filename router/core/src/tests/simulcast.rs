//! Simulcast (`simulcast`): one layer per receiver under the group's SSRC,
//! switches at keyframes, continuous numbering and timestamps, NACK and PLI
//! mapped back to the layer, and the estimate choosing the layer.

use super::*;

use corecast_proto::MediaTime;

/// Publisher 1 at addr 0: audio 10, video layers 11 (low), 12, 13 (high).
pub(super) const LAYERS: [u32; 3] = [11, 12, 13];
/// Each layer's payload size (so their measured bitrates rank as declared).
const SIZES: [usize; 3] = [100, 300, 900];

/// A VP8 packet of layer `k` (0..3): number `1000 · (k + 1) + n`, its
/// timestamp on the layer's own clock (a base of its own plus 3000 per
/// round `n`), the first of a keyframe or not.
pub(super) fn vp8(k: usize, n: u16, key: bool) -> Vec<u8> {
    let mut payload = vec![k as u8; SIZES[k]];
    payload[0] = 0x10; // S=1, PID 0: the start of a frame
    payload[1] = if key { 0x00 } else { 0x01 }; // P=0: a keyframe
    RtpPacket {
        pt: Pt(96),
        seq: SeqNo(1000 * (k as u16 + 1) + n),
        ssrc: Ssrc(LAYERS[k]),
        timestamp: MediaTime(layer_ts(k, n)),
        payload,
        ..Default::default()
    }
    .to_vec()
    .unwrap()
}

fn layer_ts(k: usize, n: u16) -> u32 {
    0x1000_0000u32.wrapping_mul(k as u32 + 1).wrapping_add(3000 * u32::from(n))
}

/// The call: the simulcast publisher and receivers 2 and 3 (join_av).
pub(super) fn simulcast_call() -> H {
    simulcast_call_declaring(LAYERS.map(Ssrc).to_vec())
}

/// [`simulcast_call`] with the layers declared as `layers`.
fn simulcast_call_declaring(layers: Vec<Ssrc>) -> H {
    let mut h = H::with(retransmitting());
    let tok = h.token(call(1), 1, Role::Publisher);
    let mut ssrcs = vec![(Ssrc(10), MediaKind::Audio)];
    ssrcs.extend(LAYERS.iter().map(|s| (Ssrc(*s), MediaKind::Video)));
    assert!(matches!(h.join_with(addr(0), tok, ssrcs), SessionMessage::JoinAck { .. }));
    h.join_av(addr(1), 2);
    h.join_av(addr(2), 3);
    h.session(addr(0), SessionMessage::Simulcast { txid: [1; 12], layers });
    h.take();
    h
}

/// Sends round `n` of every layer, keyframes on the layers in `keys`
/// (highest layer first: receivers start on it, the best one heard).
pub(super) fn round(h: &mut H, n: u16, keys: &[usize]) {
    for k in (0..3).rev() {
        h.input(addr(0), vp8(k, n, keys.contains(&k)));
    }
}

/// Rounds `0..n` (keyframes in round 0 on every layer), then a rate sweep
/// (the layers' bitrates are measured); what was sent so far is taken.
fn measured(h: &mut H, n: u16) {
    for r in 0..n {
        round(h, r, if r == 0 { &[0, 1, 2] } else { &[] });
    }
    h.advance(Duration::from_millis(500));
    h.take();
}

/// The RTP packets `to` got: (SSRC, number, timestamp, the payload's third byte: the layer).
pub(super) fn got(t: &[Transmit], to: SocketAddr) -> Vec<(u32, u16, u32, u8)> {
    t.iter()
        .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtp)
        .map(|t| {
            let h = RtpHeader::parse(&t.contents).unwrap();
            (h.ssrc.0, h.seq.0, h.timestamp.0, h.payload(&t.contents)[2])
        })
        .collect()
}

pub(super) fn plis_to(t: &[Transmit], to: SocketAddr) -> Vec<u32> {
    t.iter()
        .filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtcp)
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
        .filter_map(|p| match p {
            RtcpPacket::Pli(p) => Some(p.media_ssrc.0),
            _ => None,
        })
        .collect()
}

pub(super) fn remb(from: u32, bps: u64) -> Vec<u8> {
    rtcp::write_compound(&[RtcpPacket::Remb(rtcp::Remb { sender_ssrc: Ssrc(from), bitrate_bps: bps, ssrcs: vec![] })])
        .unwrap()
}

pub(super) fn contiguous(seqs: &[u16]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}

#[test]
fn each_receiver_gets_the_best_layer_as_one_stream_under_the_group_ssrc() {
    let mut h = simulcast_call();
    round(&mut h, 0, &[0, 1, 2]);
    for n in 1..6 {
        round(&mut h, n, &[]);
    }
    let t = h.take();
    for to in [addr(1), addr(2)] {
        let g = got(&t, to);
        assert_eq!(g.len(), 6, "one layer of six rounds");
        assert!(g.iter().all(|p| p.0 == 11 && p.3 == 2), "layer 13's packets under SSRC 11: {g:?}");
        assert!(contiguous(&g.iter().map(|p| p.1).collect::<Vec<_>>()));
    }
    assert_eq!(h.r.stats().layers_skipped, 2 * 12, "the other two layers, for both receivers");
    assert_eq!(h.r.stats().layer_switches, 0, "a start is not a switch");
}

#[test]
fn a_lower_estimate_moves_down_at_the_next_keyframe_and_a_higher_one_back_up() {
    let mut h = simulcast_call();
    measured(&mut h, 6);
    // About 11, 37 and 88 kbit/s: 75 kbit/s fits the middle layer (and is
    // over 70% of the high one, which goes on until the middle one's keyframe;
    // nor does the high one fit with the excess the layer a receiver gets is
    // kept with).
    h.input(addr(2), remb(300, 75_000));
    round(&mut h, 6, &[]);
    let t = h.take();
    assert_eq!(plis_to(&t, addr(0)), vec![12], "a keyframe of the middle layer is asked for at once");
    assert!(got(&t, addr(2)).iter().all(|p| p.3 == 2), "the high layer goes on until then");
    assert!(got(&t, addr(1)).iter().all(|p| p.3 == 2), "the other receiver is not moved");
    round(&mut h, 7, &[1]);
    round(&mut h, 8, &[]);
    let t = h.take();
    let g = got(&t, addr(2));
    // Round 7's high-layer packet (sent first), then the middle layer from its keyframe on.
    assert_eq!(g.iter().map(|p| p.3).collect::<Vec<_>>(), vec![2, 1, 1]);
    assert_eq!(h.r.stats().layer_switches, 1);
    // The whole stream the receiver saw: no gap at the switch.
    let mut all = Vec::new();
    let mut h2 = simulcast_call();
    for (n, keys) in [(0u16, vec![0, 1, 2]), (1, vec![]), (2, vec![])] {
        round(&mut h2, n, &keys);
    }
    all.extend(got(&h2.take(), addr(2)).iter().map(|p| p.1));
    h2.advance(Duration::from_millis(500));
    h2.input(addr(2), remb(300, 60_000));
    round(&mut h2, 3, &[]);
    round(&mut h2, 4, &[1]);
    round(&mut h2, 5, &[]);
    all.extend(got(&h2.take(), addr(2)).iter().map(|p| p.1));
    assert_eq!(all.len(), 6);
    assert!(contiguous(&all), "{all:?}");
    // Back up: the estimate lifts, the high layer's keyframe is asked for and taken.
    h.advance(Duration::from_millis(500));
    h.take();
    h.input(addr(2), remb(300, 1_000_000));
    round(&mut h, 9, &[]);
    assert_eq!(plis_to(&h.take(), addr(0)), vec![13]);
    round(&mut h, 10, &[2]);
    let g = got(&h.take(), addr(2));
    assert_eq!(g.iter().map(|p| p.3).collect::<Vec<_>>(), vec![2]);
    assert_eq!(h.r.stats().layer_switches, 2);
}

#[test]
fn an_estimate_below_every_layer_keeps_the_lowest_and_hd_until_even_that_does_not_fit() {
    let mut h = simulcast_call();
    measured(&mut h, 6);
    h.events.clear();
    let switches = h.r.stats().layer_switches;
    // 20 kbit/s: the low layer (12 kbit/s) fits, HD holds.
    for _ in 0..3 {
        h.input(addr(2), remb(300, 20_000));
    }
    round(&mut h, 6, &[0]);
    round(&mut h, 7, &[]);
    let g = got(&h.take(), addr(2));
    let layers: Vec<u8> = g.iter().map(|p| p.3).collect();
    // Far below the top layer: it stops at once (it would only fill the
    // link's queue), the low layer follows from its keyframe on, gap-free.
    assert_eq!(layers, vec![0, 0], "the low layer from its keyframe on, nothing of the top one meanwhile");
    assert_eq!(g[1].1, g[0].1.wrapping_add(1));
    assert_eq!(h.r.stats().layer_switches, switches + 1, "one move, counted at the keyframe");
    assert!(!h.events.iter().any(|e| matches!(e, Event::QualityChanged { .. })), "{:?}", h.events);
    // 5 kbit/s: not even the low layer: SD.
    for _ in 0..3 {
        h.input(addr(2), remb(300, 5_000));
    }
    assert!(h.events.iter().any(|e| matches!(e, Event::QualityChanged { quality: Quality::Sd, .. })));
}

#[test]
fn layers_declared_in_another_order_rank_by_their_bitrates() {
    // Highest first: the group is 13, and what each layer costs decides.
    let mut h = simulcast_call_declaring(vec![Ssrc(13), Ssrc(12), Ssrc(11)]);
    measured(&mut h, 6);
    h.input(addr(2), remb(300, 60_000));
    round(&mut h, 6, &[0, 1, 2]);
    round(&mut h, 7, &[]);
    let t = h.take();
    let layers = |to| got(&t, to).iter().map(|p| (p.0, p.3)).collect::<Vec<_>>();
    assert_eq!(layers(addr(1)), vec![(13, 2), (13, 2)], "no estimate: the costliest layer");
    assert_eq!(layers(addr(2)), vec![(13, 1), (13, 1)], "60 kbit/s: the middle one by cost");
}

#[test]
fn nacks_and_plis_about_the_group_reach_the_layer_it_gets_and_not_one_it_left() {
    let mut h = simulcast_call();
    round(&mut h, 0, &[0, 1, 2]);
    round(&mut h, 1, &[]);
    h.advance(Duration::from_millis(500));
    // About 4, 10 and 29 kbit/s: 22 kbit/s fits the middle layer.
    h.input(addr(2), remb(300, 22_000));
    round(&mut h, 2, &[1]);
    let g = got(&h.take(), addr(2));
    // Rounds 0 to 2 of the high layer, then round 2 of the middle one.
    assert_eq!(g.iter().map(|p| p.3).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
    let (hi, mid) = (g[1], g[3]);
    h.advance(Duration::from_millis(100));
    let nack = rtcp::Nack::from_lost(Ssrc(300), Ssrc(11), &[SeqNo(hi.1), SeqNo(mid.1)]);
    h.input(addr(2), rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap());
    let t = h.take();
    // The middle layer's packet, as the receiver got it (group SSRC, its
    // number, its timestamp); not the high layer's: the receiver moved off
    // it, its decoder starts again at the middle layer's keyframe.
    assert_eq!(got(&t, addr(2)), vec![mid], "as the receiver got it");
    assert_eq!(h.r.stats().nack_left_behind, 1);
    assert!(plis_to(&t, addr(0)).is_empty() && got(&t, addr(0)).is_empty(), "nothing upstream");
    // A PLI about the group goes to the layer the receiver gets.
    h.advance(Duration::from_millis(400));
    let pli = RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(300), media_ssrc: Ssrc(11) });
    h.input(addr(2), rtcp::write_compound(&[pli]).unwrap());
    assert_eq!(plis_to(&h.take(), addr(0)), vec![12]);
}

#[test]
fn timestamps_stay_on_the_group_clock_across_a_switch_when_the_layers_sent_reports() {
    let mut h = simulcast_call();
    // One wallclock instant, each layer's own RTP time for it.
    for (k, ssrc) in LAYERS.into_iter().enumerate() {
        let sr = rtcp::SenderReport {
            ssrc: Ssrc(ssrc),
            ntp_time: 0xE000_0000_0000_0000,
            rtp_time: layer_ts(k, 0),
            packet_count: 0,
            octet_count: 0,
            reports: vec![],
        };
        h.input(addr(0), rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).unwrap());
    }
    round(&mut h, 0, &[0, 1, 2]);
    round(&mut h, 1, &[]);
    h.advance(Duration::from_millis(500));
    h.input(addr(2), remb(300, 22_000));
    round(&mut h, 2, &[1]);
    let g = got(&h.take(), addr(2));
    let ts: Vec<u32> = g.iter().map(|p| p.2).collect();
    // Round n of any layer is layer 11's (the group's) time of round n: the
    // high layer's rounds 0 to 2, then the middle one's round 2 — one tick
    // after the high layer's, which the receiver got already (a decoder
    // drops a frame that is not after the last).
    assert_eq!(ts, vec![layer_ts(0, 0), layer_ts(0, 1), layer_ts(0, 2), layer_ts(0, 2) + 1]);
}

#[test]
fn without_reports_timestamps_go_on_by_the_time_between_packets() {
    let mut h = simulcast_call();
    round(&mut h, 0, &[0, 1, 2]);
    h.advance(Duration::from_millis(500));
    // About 2, 5 and 15 kbit/s: 8 kbit/s fits the middle layer.
    h.input(addr(2), remb(300, 8_000));
    h.take();
    h.advance(Duration::from_millis(100));
    h.input(addr(0), vp8(1, 1, true));
    let g = got(&h.take(), addr(2));
    assert_eq!(g.len(), 1);
    // The high layer's round 0 went out on its own clock (nothing to align it with);
    // the switch 600 ms later continues 54 000 ticks on.
    assert_eq!(g[0].2, layer_ts(2, 0).wrapping_add(54_000));
}

#[test]
fn a_declaration_the_router_cannot_take_is_dropped() {
    let mut h = simulcast_call();
    let before = h.r.stats().dropped_malformed;
    // Another participant's SSRC, audio, a layer already grouped, one SSRC.
    for layers in [vec![Ssrc(11), Ssrc(201)], vec![Ssrc(10), Ssrc(11)], vec![Ssrc(12), Ssrc(13)], vec![Ssrc(14)]] {
        h.session(addr(0), SessionMessage::Simulcast { txid: [1; 12], layers });
    }
    assert_eq!(h.r.stats().dropped_malformed, before + 4);
    // Unsigned: not the participant's.
    let m = SessionMessage::Simulcast { txid: [1; 12], layers: vec![Ssrc(201), Ssrc(200)] };
    h.input(addr(1), m.to_vec());
    assert_eq!(h.r.stats().dropped_bad_integrity, 1);
}

#[test]
fn a_client_that_joined_with_one_video_stream_adds_its_other_layers() {
    let mut h = H::with(retransmitting());
    h.join_av(addr(0), 1); // audio 100, video 101
    h.join_av(addr(1), 2);
    h.events.clear();
    let layers = vec![Ssrc(101), Ssrc(102), Ssrc(103)];
    h.session(addr(0), SessionMessage::Simulcast { txid: [1; 12], layers });
    let added: Vec<_> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ProducerAdded { ssrc, .. } => Some(ssrc.0),
            _ => None,
        })
        .collect();
    assert_eq!(added, vec![102, 103]);
    for (k, ssrc) in [(2usize, 103u32), (1, 102), (0, 101)] {
        let mut b = vp8(k, 0, true);
        corecast_proto::rtp::set_ssrc(&mut b, Ssrc(ssrc));
        h.input(addr(0), b);
    }
    let g = got(&h.take(), addr(1));
    assert_eq!(g.iter().map(|p| (p.0, p.3)).collect::<Vec<_>>(), vec![(101, 2)], "the top layer under 101");
}

#[test]
fn a_paused_source_starts_again_at_a_keyframe_of_its_layer() {
    let mut h = simulcast_call();
    round(&mut h, 0, &[0, 1, 2]);
    round(&mut h, 1, &[]);
    h.take();
    // Last-N 1: a publisher never ranked (it sends no audio level) is off the stage.
    h.session(addr(2), SessionMessage::LastN { txid: [2; 12], n: 1 });
    round(&mut h, 2, &[]);
    assert!(got(&h.take(), addr(2)).is_empty(), "paused");
    h.session(addr(2), SessionMessage::LastN { txid: [3; 12], n: 0 });
    h.take();
    round(&mut h, 3, &[]);
    let t = h.take();
    assert!(got(&t, addr(2)).is_empty(), "no packet before a keyframe");
    assert_eq!(plis_to(&t, addr(0)), vec![13]);
    round(&mut h, 4, &[2]);
    let g = got(&h.take(), addr(2));
    assert_eq!(g.len(), 1);
}

proptest! {
    /// Whatever the layers' numbers (near the wrap), the order of
    /// packets and where the switches fall, the receiver's numbers go up
    /// by one from packet to packet.
    #[test]
    fn numbers_stay_contiguous_over_switches_and_wrap_around(
        starts in proptest::array::uniform3(65_400u16..=65_535),
        plan in proptest::collection::vec((0usize..3, any::<bool>(), any::<bool>()), 1..120),
    ) {
        let mut h = simulcast_call();
        let mut seqs = [starts[0], starts[1], starts[2]];
        let mut rx = Vec::new();
        for (i, (k, key, retarget)) in plan.into_iter().enumerate() {
            if retarget {
                let bps = [20_000, 60_000, 1_000_000][i % 3];
                h.input(addr(2), remb(300, bps));
            }
            seqs[k] = seqs[k].wrapping_add(1);
            let mut b = vp8(k, 0, key);
            corecast_proto::rtp::set_seq(&mut b, SeqNo(seqs[k]));
            h.input(addr(0), b);
            if i % 10 == 9 {
                h.advance(Duration::from_millis(500));
            }
            rx.extend(got(&h.take(), addr(2)).into_iter().map(|p| p.1));
        }
        prop_assert!(contiguous(&rx), "{:?}", rx);
    }
}

/// A second of the call: a round of every layer each half second (so the
/// layers stay measured), keepalives from everyone, then load `busy` per mille.
fn second_under_load(h: &mut H, n: &mut u16, busy: u16) {
    for _ in 0..2 {
        round(h, *n, &[0, 1, 2]);
        *n += 1;
        h.advance(Duration::from_millis(500));
    }
    for a in 0..3 {
        h.session(addr(a), SessionMessage::Keepalive { txid: [0; 12] });
    }
    h.r.handle_input(h.now, Input::Load { busy_permille: busy });
    h.drain();
}

#[test]
fn overload_lowers_layers_before_it_moves_anyone_to_sd_and_restores_in_reverse() {
    let mut h = simulcast_call();
    let mut n = 0;
    let sd_moves = |h: &H| h.events.iter().filter(|e| matches!(e, Event::QualityChanged { .. })).count();
    second_under_load(&mut h, &mut n, 500);
    // Over the budget: receivers 2, then 3, held at the lowest layer; only then SD.
    second_under_load(&mut h, &mut n, 950);
    assert_eq!((h.r.stats().overload_layers_lowered, sd_moves(&h)), (1, 0));
    second_under_load(&mut h, &mut n, 950);
    assert_eq!((h.r.stats().overload_layers_lowered, sd_moves(&h)), (2, 0));
    h.take();
    round(&mut h, n, &[0, 1, 2]);
    n += 1;
    let t = h.take();
    for to in [addr(1), addr(2)] {
        assert_eq!(got(&t, to).last().map(|p| p.3), Some(0), "the lowest layer, from its keyframe on");
    }
    second_under_load(&mut h, &mut n, 950);
    assert_eq!((h.r.stats().overload_layers_lowered, h.r.stats().overload_shed), (2, 1), "then SD");
    // Calm: SD back first, then the layers, one every 5 s.
    for _ in 0..11 {
        second_under_load(&mut h, &mut n, 300);
    }
    assert_eq!(h.r.stats().overload_restored, 1);
    assert!(h.events.iter().any(|e| matches!(e, Event::QualityChanged { quality: Quality::Hd, .. })));
    for _ in 0..10 {
        second_under_load(&mut h, &mut n, 300);
    }
    assert_eq!(h.r.stats().overload_restored, 3);
    h.take();
    round(&mut h, n, &[0, 1, 2]);
    let t = h.take();
    for to in [addr(1), addr(2)] {
        assert_eq!(got(&t, to).first().map(|p| p.3), Some(2), "the top layer again");
    }
    assert_eq!(h.r.stats().dropped(), 0, "nothing dropped on the way");
}

/// A VP8 packet of layer `k` with temporal layers (L1T3 at 30 frames/s: T0,
/// T2, T1, T2, ...): frame `n`, one packet, the first a keyframe.
fn vp8_l1t3(k: usize, n: u16) -> Vec<u8> {
    let tid = [0u8, 2, 1, 2][usize::from(n % 4)];
    // X and S; T present; TID; then the payload header (P clear on the keyframe).
    let mut payload = vec![0x90, 0x20, tid << 6, u8::from(n != 0), k as u8];
    payload.resize(SIZES[k], 0);
    let pkt = RtpPacket {
        pt: Pt(96),
        seq: SeqNo(1000 * (k as u16 + 1) + n),
        ssrc: Ssrc(LAYERS[k]),
        timestamp: MediaTime(layer_ts(k, n)),
        payload,
        ..Default::default()
    };
    pkt.to_vec().unwrap()
}

#[test]
fn a_frame_rate_cap_thins_the_layer_a_receiver_gets_without_a_gap() {
    let mut h = simulcast_call();
    // Receiver 3 (a viewer of a screen share, say) takes at most 8 frames/s.
    let c = h.r.calls.get_mut(&call(1)).unwrap();
    let i = c.index_of(ParticipantId(3)).unwrap();
    c.participants[i].max_fps = Some(8);
    for n in 0..120u16 {
        for k in (0..3).rev() {
            h.input(addr(0), vp8_l1t3(k, n));
        }
        if n % 15 == 14 {
            h.advance(Duration::from_millis(500));
        }
    }
    let t = h.take();
    let full = got(&t, addr(1));
    let capped = got(&t, addr(2));
    assert_eq!(full.len(), 120, "every frame of the top layer");
    assert!(full.iter().chain(&capped).all(|p| p.0 == 11), "under the group's SSRC");
    let top = |p: &Transmit| RtpHeader::parse(&p.contents).ok().map(|h| h.payload(&p.contents)[4]);
    assert!(t.iter().filter(|p| classify(&p.contents) == Kind::Rtp).all(|p| top(p) == Some(2)), "the top layer");
    // T0 only (7.5 frames/s) once the layers' rates are known (after a second of media).
    assert!((30..=40).contains(&capped.len()), "{} frames", capped.len());
    assert!(contiguous(&capped.iter().map(|p| p.1).collect::<Vec<_>>()), "no gap");
    assert_eq!(h.r.stats().frame_rate_dropped as usize, 120 - capped.len());
}

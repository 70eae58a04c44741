//! The router's own RTCP reports on synthetic time (see `reports`): its RRs
//! to publishers from its own receive statistics, its SRs to receivers in
//! the publisher's clock with what it sent them, RTT per leg, and the first
//! SR, sent before the first packet claims its SSRC.

use super::net::{LinkConfig, Sim, Stream, NTP_START};
use super::*;
use crate::reports::from_compact;
use crate::ROUTER_SSRC;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The router's RR blocks about `ssrc` that reached client `c`, with when.
fn router_rrs(sim: &Sim, c: usize, ssrc: u32) -> Vec<(Instant, rtcp::ReportBlock)> {
    let rrs = sim.clients[c].rrs_in.iter().filter(|(_, rr)| rr.ssrc == ROUTER_SSRC);
    rrs.flat_map(|(t, rr)| rr.reports.iter().filter(|b| b.ssrc.0 == ssrc).map(move |b| (*t, *b))).collect()
}

/// `a` and `b` at most `tol` apart.
fn near(a: Instant, b: Instant, tol: Duration) -> bool {
    a.max(b) - a.min(b) <= tol
}

/// A publisher (pid 1) of 100 video packets/s (SSRC 101, SRs every second)
/// over `up`, and a subscriber (pid 2), for 6 s. Retransmission off: the
/// router's own NACKs would have the uplink's losses repaired (and not
/// reported as lost).
fn publisher_over(up: LinkConfig) -> Sim {
    let mut sim = Sim::new(RouterConfig { retransmission: false, ..RouterConfig::default() }, 5);
    let video = Stream::video(101, 100, 500).with_srs(Duration::from_secs(1));
    sim.add(1, Role::Publisher, vec![video], up, LinkConfig::default());
    sim.add(2, Role::Subscriber, vec![], LinkConfig::default(), LinkConfig::default());
    sim.run_for(Duration::from_secs(6));
    sim
}

#[test]
fn the_rr_to_a_publisher_reports_its_uplinks_loss_pattern() {
    // Every tenth packet lost on the uplink: 10 of the 100 of every second.
    let sim = publisher_over(LinkConfig { drop_every: 10, ..Default::default() });
    let rrs = router_rrs(&sim, 0, 101);
    let lost: Vec<u16> = sim.clients[0].up.lost_seqs.iter().filter(|l| l.0 == 101).map(|l| l.1).collect();
    let got: Vec<_> = rrs.iter().map(|(_, b)| (b.fraction_lost, b.cumulative_lost, b.ext_highest_seq)).collect();
    // One a second per leg, from a second after the join. The first covers
    // 1001..=1107 (10 of 107 lost: 23/256), every next one 100 packets, 10 lost:
    // 10·256/100 rounded down.
    assert_eq!(got, [(23, 10, 1107), (25, 20, 1207), (25, 30, 1307), (25, 40, 1407), (25, 50, 1507)]);
    for (_, b) in &rrs {
        let highest = b.ext_highest_seq as u16;
        let lost_so_far = lost.iter().filter(|&&l| highest.wrapping_sub(l) as i16 >= 0).count();
        assert_eq!(b.cumulative_lost, lost_so_far as i32, "every loss up to the highest number: {b:?}");
        assert_eq!(b.jitter, 0, "constant delay, timestamps that follow the send times");
    }
    assert_eq!(sim.router.stats().dropped(), 0);
}

#[test]
fn the_rr_to_a_publisher_names_its_last_sr_and_how_long_the_router_held_it() {
    let sim = publisher_over(LinkConfig::default());
    let srs = &sim.clients[0].streams[0].srs;
    let rrs = router_rrs(&sim, 0, 101);
    assert_eq!(rrs.len(), 5);
    for (at, b) in &rrs {
        let Some((sent, _)) = srs.iter().find(|(_, sr)| (sr.ntp_time >> 16) as u32 == b.last_sr) else {
            panic!("LSR {:#x} names no SR the publisher sent", b.last_sr)
        };
        // The latest SR that reached the router (10 ms up) before the RR left it (10 ms down).
        let latest = srs.iter().filter(|(t, _)| *t + ms(20) <= *at).map(|(t, _)| *t).max().unwrap();
        assert_eq!(*sent, latest);
        // Sent, 10 ms up, held DLSR, 10 ms down: the RR's arrival (to 1/65536 s).
        let back = *sent + ms(20) + from_compact(b.delay_since_last_sr);
        assert!(near(back, *at, Duration::from_micros(16)), "{:?}", back.max(*at) - back.min(*at));
        assert_eq!(b.fraction_lost, 0);
    }
}

#[test]
fn jitter_follows_the_uplinks_jitter() {
    // Delay jitter uniform in [0, 6 ms) (below the 10 ms between packets, so
    // nothing is reordered): E|D| = 6/3 = 2 ms = 180 ticks at 90 kHz.
    let sim = publisher_over(LinkConfig { jitter: ms(6), ..Default::default() });
    let jitter: Vec<u32> = router_rrs(&sim, 0, 101).iter().map(|(_, b)| b.jitter).collect();
    assert_eq!(jitter.len(), 5);
    let mean = jitter.iter().sum::<u32>() / jitter.len() as u32;
    assert!(jitter.iter().all(|j| (120..=240).contains(j)), "{jitter:?}");
    assert!((160..=200).contains(&mean), "mean {mean} of {jitter:?}");
}

/// A publisher of audio (100) and video (101), each with SRs every second,
/// 7 ms up; a subscriber 7 ms up and 13 ms down (a 20 ms round trip).
fn lip_sync_call() -> Sim {
    let mut sim = Sim::new(RouterConfig::default(), 6);
    let every = Duration::from_secs(1);
    let streams = vec![Stream::audio(100, 30).with_srs(every), Stream::video(101, 100, 1000).with_srs(every)];
    let link = |d: u64| LinkConfig { delay: ms(d), ..Default::default() };
    sim.add(1, Role::Publisher, streams, link(7), link(7));
    sim.add(2, Role::Subscriber, vec![], link(7), link(13));
    sim.run_for(Duration::from_secs(6));
    sim
}

#[test]
fn srs_to_a_receiver_keep_the_publishers_clock_and_count_what_it_was_sent() {
    let sim = lip_sync_call();
    let publisher = &sim.clients[0];
    let srs = &sim.clients[1].srs_in;
    for ssrc in [100, 101] {
        let stream = publisher.streams.iter().find(|s| s.ssrc.0 == ssrc).unwrap();
        let payload = (stream.size - 20) as u32;
        let mine: Vec<_> = srs.iter().filter(|s| s.1.ssrc.0 == ssrc).collect();
        assert_eq!(mine.len(), 5, "one a second");
        for (_, sr, got) in mine {
            // The NTP time, read on the publisher's wallclock, is an instant
            // whose RTP time on the publisher's clock is the SR's: audio and
            // video map to the one wallclock, as the publisher's own SRs do.
            let since = Duration::from_nanos(((u128::from(sr.ntp_time - NTP_START) * 1_000_000_000) >> 32) as u64);
            let rtp = stream.rtp_at(sim.t0 + since).unwrap();
            assert!((sr.rtp_time.wrapping_sub(rtp) as i32).abs() <= 1, "{ssrc}: {} vs {rtp}", sr.rtp_time);
            // A clean link: what the router sent before the SR is what arrived before it.
            assert_eq!((sr.packet_count, sr.octet_count), (*got as u32, *got as u32 * payload), "{ssrc}");
        }
    }
    // And no publisher SR went through as it was.
    assert!(srs
        .iter()
        .all(|s| publisher.streams.iter().all(|p| p.srs.iter().all(|(_, o)| o.ntp_time != s.1.ntp_time))));
}

#[test]
fn rtt_per_leg_is_the_networks_round_trip() {
    let sim = lip_sync_call();
    let snap = sim.router.snapshot();
    let rtt = |pid: u64| snap[0].participants.iter().find(|p| p.participant.0 == pid).unwrap().rtt;
    let measured = rtt(2).expect("the subscriber reported on the router's SRs");
    let off = measured.max(ms(20)) - measured.min(ms(20));
    assert!(off <= ms(1), "7 ms up + 13 ms down, measured {measured:?}");
    // The publisher receives nothing, so it reports on no SR of the router's:
    // its round trip comes from the DLRR answering the router's RRTR (7 + 7 ms).
    let publisher = rtt(1).expect("the publisher answered the router's RRTR");
    let off = publisher.max(ms(14)) - publisher.min(ms(14));
    assert!(off <= ms(1), "7 ms up + 7 ms down, measured {publisher:?}");
}

/// A publisher that claims its SSRC by sending sends its first SR just
/// before its first packet: it is kept, and used once the packet claims the SSRC.
#[test]
fn the_first_sr_before_the_first_packet_is_kept() {
    let mut h = H::new();
    let tok = h.token(call(1), 1, Role::Publisher);
    assert!(matches!(h.join_with(addr(0), tok, vec![]), SessionMessage::JoinAck { .. }));
    let tok = h.token(call(1), 2, Role::Subscriber);
    assert!(matches!(h.join_with(addr(1), tok, vec![]), SessionMessage::JoinAck { .. }));
    let ntp = NTP_START + (5 << 32);
    let first = rtcp::SenderReport { ssrc: Ssrc(100), ntp_time: ntp, rtp_time: 9_000, ..Default::default() };
    h.input(addr(0), rtcp::write_compound(&[RtcpPacket::SenderReport(first)]).unwrap());
    assert!(h.take().is_empty(), "kept, not forwarded");
    assert_eq!(h.r.stats().dropped(), 0, "not a drop either");
    let packet = |seq: u16, ts: u32| {
        RtpPacket {
            pt: Pt(96),
            seq: SeqNo(seq),
            timestamp: corecast_proto::MediaTime(ts),
            ssrc: Ssrc(100),
            payload: vec![0; 100],
            ..Default::default()
        }
        .to_vec()
        .unwrap()
    };
    h.input(addr(0), packet(1, 9_000));
    assert_eq!(dests(&h.take()), vec![addr(1)], "the packet claimed the SSRC");
    h.now += ms(500);
    h.input(addr(0), packet(2, 9_000 + 45_000));
    h.advance(ms(600));
    h.advance(ms(1000));
    let t = h.take();
    let rtcp_to = |a: SocketAddr| -> Vec<RtcpPacket> {
        t.iter()
            .filter(|t| t.destination == a && classify(&t.contents) == Kind::Rtcp)
            .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap())
            .collect()
    };
    // The subscriber's SR: the publisher's first one moved on to when it was sent.
    let srs: Vec<_> = rtcp_to(addr(1))
        .into_iter()
        .filter_map(|p| if let RtcpPacket::SenderReport(sr) = p { Some(sr) } else { None })
        .collect();
    assert!(!srs.is_empty(), "the subscriber got the router's SR");
    for sr in &srs {
        assert_eq!(sr.ssrc, Ssrc(100));
        let since = ((u128::from(sr.ntp_time - ntp) * 1_000_000) >> 32) as u32; // µs
        let ticks = (u64::from(since) * 90_000).div_ceil(1_000_000) as u32;
        assert!((sr.rtp_time.wrapping_sub(9_000 + ticks) as i32).abs() <= 1, "{sr:?}");
        assert_eq!((sr.packet_count, sr.octet_count), (2, 200));
    }
    // The publisher's RR names it.
    let rrs: Vec<_> = rtcp_to(addr(0))
        .into_iter()
        .filter_map(|p| if let RtcpPacket::ReceiverReport(rr) = p { Some(rr) } else { None })
        .collect();
    assert!(!rrs.is_empty());
    for rr in &rrs {
        assert_eq!(rr.ssrc, ROUTER_SSRC);
        assert_eq!(rr.reports[0].last_sr, (ntp >> 16) as u32);
        assert_eq!((rr.reports[0].cumulative_lost, rr.reports[0].ext_highest_seq), (0, 2));
    }
}

#[test]
fn malformed_rtcp_is_still_dropped_and_counted() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    // An SR whose length says 28 bytes in a datagram of 12.
    h.input(addr(0), vec![0x80, 200, 0, 6, 0, 0, 0, 100, 0, 0, 0, 0]);
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_malformed, 1);
    // An SR about an SSRC the sender does not own is dropped too, and nothing keeps it.
    let sr = rtcp::SenderReport { ssrc: Ssrc(101), ntp_time: 7, ..Default::default() };
    h.input(addr(0), rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).unwrap());
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_rtcp_unroutable, 1);
}

#[test]
fn webrtc_legs_get_the_routers_reports_over_srtcp_and_their_rtt_is_measured() {
    use super::webrtc::{identity, video, Peer, VIDEO_SSRC};
    let mut h = H::new();
    h.r.set_dtls_identity(identity());
    let c = call(20);
    let mut a = Peer::join(&mut h, 1, c, 1, true, None);
    let mut b = Peer::join(&mut h, 2, c, 2, false, Some(1));
    h.take();
    let sr = rtcp::SenderReport { ssrc: Ssrc(VIDEO_SSRC), ntp_time: NTP_START, rtp_time: 0, ..Default::default() };
    h.input(a.addr, a.seal_rtcp(&rtcp::write_compound(&[RtcpPacket::SenderReport(sr)]).unwrap()));
    for seq in 0..10u16 {
        h.input(a.addr, a.seal(&video(VIDEO_SSRC, seq, 35)));
        h.now += ms(5);
    }
    h.advance(ms(100));
    h.advance(Duration::from_secs(1));
    let t = h.take();
    let rtcp_to = |p: &mut Peer| -> Vec<RtcpPacket> {
        let to = p.addr;
        let mine = t.iter().filter(|t| t.destination == to && classify(&t.contents) == Kind::Rtcp);
        mine.flat_map(|t| p.open_rtcp(&t.contents)).collect()
    };
    // The publisher: the router's RR about its video, naming its SR.
    let rr = rtcp_to(&mut a)
        .into_iter()
        .find_map(|p| match p {
            RtcpPacket::ReceiverReport(rr) if rr.ssrc == ROUTER_SSRC => Some(rr),
            _ => None,
        })
        .expect("an RR over SRTCP");
    assert_eq!(rr.reports.len(), 1);
    let block = rr.reports[0];
    assert_eq!((block.ssrc, block.last_sr, block.ext_highest_seq), (Ssrc(VIDEO_SSRC), (NTP_START >> 16) as u32, 9));
    // The subscriber: an SR about that video with what it was sent.
    let sr = rtcp_to(&mut b)
        .into_iter()
        .find_map(|p| match p {
            RtcpPacket::SenderReport(sr) => Some(sr),
            _ => None,
        })
        .expect("an SR over SRTCP");
    assert_eq!((sr.ssrc, sr.packet_count, sr.octet_count), (Ssrc(VIDEO_SSRC), 10, 10_000));
    // It reports on that SR 20 ms after it was sent, having held it 0.5 s of that: RTT 20 ms.
    h.now += ms(520);
    let block = rtcp::ReportBlock {
        ssrc: Ssrc(VIDEO_SSRC),
        last_sr: (sr.ntp_time >> 16) as u32,
        delay_since_last_sr: 0x8000,
        ..Default::default()
    };
    let rr = rtcp::ReceiverReport { ssrc: Ssrc(0x2), reports: vec![block] };
    h.input(b.addr, b.seal_rtcp(&rtcp::write_compound(&[RtcpPacket::ReceiverReport(rr)]).unwrap()));
    assert!(h.take().iter().all(|t| t.destination != a.addr), "not forwarded to the publisher");
    let snap = h.r.snapshot();
    let rtt = snap[0].participants.iter().find(|p| p.participant.0 == 2).unwrap().rtt.unwrap();
    assert!(rtt.max(ms(20)) - rtt.min(ms(20)) < Duration::from_micros(16), "{rtt:?}");
}

/// The case: a publisher that claims its SSRCs by sending and sends
/// an SR every 5 s, the first just before its first packet of each stream.
/// The subscriber gets SRs about both streams a report interval after the
/// first packets, not 5 s later, in the publisher's clock.
#[test]
fn a_publisher_that_claims_by_sending_has_lip_sync_from_the_first_second() {
    let mut sim = Sim::new(RouterConfig::default(), 7);
    let every = Duration::from_secs(5);
    let streams = vec![Stream::audio(100, 30).with_srs(every), Stream::video(101, 100, 1000).with_srs(every)];
    let p = sim.add(1, Role::Publisher, streams, LinkConfig::default(), LinkConfig::default());
    sim.clients[p].declares = false;
    sim.add(2, Role::Subscriber, vec![], LinkConfig::default(), LinkConfig::default());
    sim.run_for(Duration::from_millis(2500));
    let publisher = &sim.clients[0];
    let first_packet = publisher.streams[0].srs[0].0;
    for ssrc in [100, 101] {
        let stream = publisher.streams.iter().find(|s| s.ssrc.0 == ssrc).unwrap();
        assert_eq!(stream.srs.len(), 1, "one SR so far, sent just before the first packet");
        let (at, sr, _) = sim.clients[1].srs_in.iter().find(|s| s.1.ssrc.0 == ssrc).expect("an SR within 2.5 s");
        assert!(
            *at - first_packet <= Duration::from_millis(1200),
            "{ssrc}: {:?} after the first packet",
            *at - first_packet
        );
        let since = Duration::from_nanos(((u128::from(sr.ntp_time - NTP_START) * 1_000_000_000) >> 32) as u64);
        let rtp = stream.rtp_at(sim.t0 + since).unwrap();
        assert!((sr.rtp_time.wrapping_sub(rtp) as i32).abs() <= 1, "{ssrc}: {} vs {rtp}", sr.rtp_time);
    }
    assert_eq!(sim.router.stats().dropped(), 0);
}

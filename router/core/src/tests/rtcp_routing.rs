//! RTCP routing: keyframe requests, NACK, sender and receiver reports.

use super::*;

#[test]
fn pli_goes_to_the_producer_and_is_throttled() {
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    let pli = |from: u32| {
        rtcp::write_compound(&[RtcpPacket::Pli(rtcp::Pli { sender_ssrc: Ssrc(from), media_ssrc: Ssrc(100) })]).unwrap()
    };
    h.input(addr(1), pli(101));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(0));
    h.input(addr(2), pli(102)); // within the throttle interval
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_keyframe_throttled, 1);
    h.now += Duration::from_millis(400);
    h.input(addr(2), pli(102));
    assert_eq!(h.take().len(), 1);
    // FIR too.
    h.now += Duration::from_millis(400);
    let fir =
        rtcp::write_compound(&[RtcpPacket::Fir(rtcp::Fir { sender_ssrc: Ssrc(101), entries: vec![(Ssrc(100), 1)] })])
            .unwrap();
    h.input(addr(1), fir);
    assert_eq!(h.take()[0].destination, addr(0));
}

#[test]
fn nack_goes_to_the_producer_and_an_sr_is_kept_not_forwarded() {
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    // Nothing was sent yet, so the retransmission buffer has nothing to answer with.
    let nack = rtcp::Nack::from_lost(Ssrc(101), Ssrc(100), &[SeqNo(5), SeqNo(6)]);
    h.input(addr(1), rtcp::write_compound(&[RtcpPacket::Nack(nack.clone())]).unwrap());
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(0));
    assert_eq!(rtcp::parse_compound(&t[0].contents).unwrap(), vec![RtcpPacket::Nack(nack)]);
    // The publisher's SR is kept: receivers get the router's own SRs instead (`reports`).
    let sr = RtcpPacket::SenderReport(rtcp::SenderReport { ssrc: Ssrc(100), ntp_time: 5 << 32, ..Default::default() });
    h.input(addr(0), rtcp::write_compound(std::slice::from_ref(&sr)).unwrap());
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped(), 0);
    // An SR about someone else's SSRC is neither kept nor forwarded.
    let fake = RtcpPacket::SenderReport(rtcp::SenderReport { ssrc: Ssrc(101), ..Default::default() });
    h.input(addr(0), rtcp::write_compound(&[fake]).unwrap());
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_rtcp_unroutable, 1);
    // Once 100 flows, both other participants get an SR about it a report interval on.
    h.input(addr(0), rtp(100, 1));
    h.take();
    h.advance(Duration::from_millis(100));
    h.advance(Duration::from_secs(1));
    let srs: Vec<_> = h
        .take()
        .into_iter()
        .filter(|t| t.destination != addr(0))
        .flat_map(|t| rtcp::parse_compound(&t.contents).unwrap().into_iter().map(move |p| (t.destination, p)))
        .filter(|(_, p)| matches!(p, RtcpPacket::SenderReport(sr) if sr.ssrc == Ssrc(100)))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(srs, vec![addr(1), addr(2)]);
    // A second without media: nothing to report on, either way.
    h.advance(Duration::from_secs(1));
    assert!(h.take().is_empty());
}

#[test]
fn receiver_reports_are_kept_not_forwarded() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    let rr = RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
        ssrc: Ssrc(101),
        reports: vec![rtcp::ReportBlock { ssrc: Ssrc(100), fraction_lost: 64, ..Default::default() }],
    });
    h.input(addr(1), rtcp::write_compound(&[rr]).unwrap());
    assert!(h.take().is_empty(), "the publisher gets the router's own RRs instead");
    let snap = h.r.snapshot();
    let p = snap[0].participants.iter().find(|p| p.participant == ParticipantId(2)).unwrap();
    assert_eq!(p.reported_loss_fraction, 64);
}

//! HD and SD: the mixer's composite, explicit and automatic switching.

use super::*;

#[test]
fn mixer_output_goes_to_sd_receivers_only() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    let tok = h.token(call(1), 2, Role::Subscriber);
    h.session(
        addr(1),
        SessionMessage::Join { txid: [1; 12], token: tok, ssrcs: vec![], quality: Quality::Sd, srtp: false },
    );
    h.take();
    let tok = h.token(call(1), 3, Role::Mixer);
    assert!(matches!(h.join_with(addr(2), tok, vec![(Ssrc(900), MediaKind::Video)]), SessionMessage::JoinAck { .. }));
    h.input(addr(2), rtp(900, 1));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(1));
}

#[test]
fn sd_receiver_gets_composite_and_audio_hd_receivers_are_unaffected() {
    let mut h = H::new();
    sd_call(&mut h, true);
    h.events.clear();
    h.session(addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd });
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: true }));
    h.take();
    // Publisher video: HD receiver and mixer get it, SD receiver does not.
    h.input(addr(0), rtp_pt(101, 1, 96));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(9)]);
    // Publisher audio: every receiver, the mixer too (it mixes the loudest speakers).
    h.input(addr(0), rtp_pt(100, 1, 111));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(2), addr(9)]);
    // The composite: SD receiver only.
    h.input(addr(9), rtp_pt(900, 1, 96));
    assert_eq!(dests(&h.take()), vec![addr(2)]);
    // Leaving removes the demand.
    h.events.clear();
    h.session(addr(2), SessionMessage::Leave { txid: [0; 12] });
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: false }));
    // ... and the mixer is told to go.
    assert!(h.events.contains(&Event::ParticipantLeft {
        call: call(1),
        participant: ParticipantId(9),
        reason: LeaveReason::Removed
    }));
    let t = h.take();
    assert!(t.iter().any(|t| t.destination == addr(9)
        && matches!(SessionMessage::parse(&t.contents), Ok(SessionMessage::CallEnded { .. }))));
    assert_eq!(h.r.snapshot()[0].participants.len(), 2);
}

#[test]
fn without_a_mixer_sd_receivers_keep_raw_video() {
    let mut h = H::new();
    sd_call(&mut h, false);
    h.session(addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd });
    h.take();
    h.input(addr(0), rtp_pt(101, 1, 96));
    assert_eq!(dests(&h.take()), vec![addr(1), addr(2)]);
}

#[test]
fn heavy_loss_moves_a_receiver_to_sd_and_back_with_hysteresis_and_no_sequence_gap() {
    let mut h = H::with(retransmitting());
    sd_call(&mut h, true);
    let mut seq = 1000u16;
    let mut send_video = |h: &mut H| {
        seq = seq.wrapping_add(1);
        h.input(addr(0), rtp_pt(101, seq, 96));
        h.take()
    };
    for _ in 0..5 {
        send_video(&mut h);
    }
    h.events.clear();
    // One bad report is not enough; in-band loss changes nothing.
    h.input(addr(2), rr(300, 101, 60));
    h.input(addr(2), rr(300, 101, 15));
    h.input(addr(2), rr(300, 101, 60));
    assert!(h.events.iter().all(|e| !matches!(e, Event::QualityChanged { .. })));
    h.input(addr(2), rr(300, 101, 60));
    assert!(h.events.contains(&Event::QualityChanged {
        call: call(1),
        participant: ParticipantId(3),
        quality: Quality::Sd
    }));
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: true }));
    // Moving to SD asks the mixer for a keyframe of the composite.
    let t = h.take();
    assert!(t.iter().any(|t| t.destination == addr(9) && classify(&t.contents) == Kind::Rtcp));
    // While on SD, raw video skips this receiver (sequence numbers run on).
    for _ in 0..20 {
        let t = send_video(&mut h);
        assert_eq!(dests(&t), vec![addr(1), addr(9)]);
    }
    // Loss stops: back to HD only after `hd_recovery` of good reports.
    h.events.clear();
    for _ in 0..9 {
        h.now += Duration::from_secs(1);
        h.input(addr(2), rr(300, 900, 0));
    }
    assert!(h.events.iter().all(|e| !matches!(e, Event::QualityChanged { .. })));
    h.now += Duration::from_secs(2);
    h.input(addr(2), rr(300, 900, 0));
    assert!(h.events.contains(&Event::QualityChanged {
        call: call(1),
        participant: ParticipantId(3),
        quality: Quality::Hd
    }));
    assert!(h.events.contains(&Event::MixerDemand { call: call(1), needed: false }));
    // Raw video resumes with the next sequence number the receiver expects,
    // and the producer is asked for a keyframe.
    h.take();
    let t = send_video(&mut h);
    let to_r = t.iter().find(|t| t.destination == addr(2)).expect("raw video resumes");
    assert_eq!(RtpHeader::parse(&to_r.contents).unwrap().seq, SeqNo(1006));
    let to_hd = t.iter().find(|t| t.destination == addr(1)).unwrap();
    assert_eq!(RtpHeader::parse(&to_hd.contents).unwrap().seq, SeqNo(1026), "HD receivers see the real numbers");
    assert!(t.iter().any(|t| t.destination == addr(0) && classify(&t.contents) == Kind::Rtcp), "PLI to the producer");
    let t = send_video(&mut h);
    let to_r = t.iter().find(|t| t.destination == addr(2)).unwrap();
    assert_eq!(RtpHeader::parse(&to_r.contents).unwrap().seq, SeqNo(1007));
    let seen_as_1007 = to_r.contents.clone();
    // A NACK for a shifted number is answered from the retransmission
    // buffer with the real packet (1027), numbered as the receiver saw it.
    let nack = rtcp::Nack::from_lost(Ssrc(300), Ssrc(101), &[SeqNo(1007)]);
    h.input(addr(2), rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap());
    let t = h.take();
    assert_eq!(t.len(), 1, "a resend, no NACK to the producer");
    assert_eq!(t[0].destination, addr(2));
    assert_eq!(t[0].contents, seen_as_1007, "the packet the receiver saw as 1007");
    // One older than the buffer goes to the producer as the real number.
    let nack = rtcp::Nack::from_lost(Ssrc(300), Ssrc(101), &[SeqNo(1007u16.wrapping_sub(2000))]);
    h.input(addr(2), rtcp::write_compound(&[RtcpPacket::Nack(nack)]).unwrap());
    let t = h.take();
    let RtcpPacket::Nack(n) = &rtcp::parse_compound(&t[0].contents).unwrap()[0] else { panic!() };
    assert_eq!(n.lost().collect::<Vec<_>>(), vec![SeqNo(1027u16.wrapping_sub(2000))]);
    assert_eq!((h.r.stats().retransmitted, h.r.stats().nack_answered, h.r.stats().nack_missed), (1, 1, 1));
}

#[test]
fn explicit_sd_is_not_undone_by_good_reports() {
    let mut h = H::new();
    sd_call(&mut h, true);
    h.session(addr(2), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd });
    h.events.clear();
    for _ in 0..30 {
        h.now += Duration::from_secs(1);
        h.input(addr(2), rr(300, 900, 0));
    }
    assert!(h.events.iter().all(|e| !matches!(e, Event::QualityChanged { .. })));
}

#[test]
fn low_bandwidth_estimate_moves_to_sd() {
    let mut h = H::new();
    sd_call(&mut h, true);
    for s in 0..100u16 {
        h.input(addr(0), rtp_pt(101, s, 96)); // 100 x 62 bytes
    }
    h.advance(Duration::from_millis(500)); // rates are measured at the sweep
    h.events.clear();
    let remb = |bps| {
        rtcp::write_compound(&[RtcpPacket::Remb(rtcp::Remb {
            sender_ssrc: Ssrc(300),
            bitrate_bps: bps,
            ssrcs: vec![],
        })])
        .unwrap()
    };
    h.input(addr(2), remb(1_000_000));
    h.input(addr(2), remb(1_000_000));
    assert!(h.events.is_empty(), "enough bandwidth: stays HD");
    h.input(addr(2), remb(10_000));
    h.input(addr(2), remb(10_000));
    assert!(h.events.contains(&Event::QualityChanged {
        call: call(1),
        participant: ParticipantId(3),
        quality: Quality::Sd
    }));
}

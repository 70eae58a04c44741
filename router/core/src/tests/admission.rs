//! Admission, fan-out to everyone, SSRC ownership, joins, leaves and timeouts.

use super::*;

#[test]
fn four_participants_each_get_the_other_three() {
    let mut h = H::new();
    for i in 0..4u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    assert_eq!(h.r.participant_count(), 4);
    for seq in 0..50u16 {
        for i in 0..4u16 {
            let pkt = rtp(100 + i as u32, seq);
            h.input(addr(i), pkt.clone());
            let t = h.take();
            assert_eq!(t.len(), 3);
            let mut dests: Vec<_> = t.iter().map(|t| t.destination).collect();
            dests.sort();
            let mut want: Vec<_> = (0..4).filter(|&j| j != i).map(addr).collect();
            want.sort();
            assert_eq!(dests, want);
            assert!(t.iter().all(|t| t.contents[..] == pkt[..]));
        }
    }
    assert_eq!(h.r.stats().forwarded_rtp, 50 * 4 * 3);
    assert_eq!(h.r.stats().dropped(), 0);
}

#[test]
fn calls_are_isolated() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    h.join(addr(2), call(2), 3, 102);
    h.input(addr(0), rtp(100, 1));
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, addr(1));
}

#[test]
fn unadmitted_forged_expired_spoofing_and_malformed_get_nothing_forwarded() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    // Unadmitted sender.
    h.input(addr(9), rtp(555, 1));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_unadmitted, 1);
    // Forged token (other key).
    let other = SigningKey::from_bytes(&[1; 32]);
    let forged = token::sign(
        &other,
        &Claims { call_id: call(1), participant_id: ParticipantId(7), role: Role::Publisher, expires_at_ms: u64::MAX },
    );
    let reply = h.join_with(addr(7), forged.to_vec(), vec![]);
    assert!(matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }));
    h.input(addr(7), rtp(777, 1));
    assert!(h.take().is_empty());
    // Expired token.
    let expired = token::sign(
        &h.key,
        &Claims { call_id: call(1), participant_id: ParticipantId(8), role: Role::Publisher, expires_at_ms: EPOCH_MS },
    );
    let reply = h.join_with(addr(8), expired.to_vec(), vec![]);
    assert!(
        matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, ref reason, .. } if reason.contains("expired"))
    );
    h.input(addr(8), rtp(888, 1));
    assert!(h.take().is_empty());
    // Spoofing another's SSRC.
    h.input(addr(1), rtp(100, 1));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_ssrc_not_owned, 1);
    // Malformed bytes from an admitted sender.
    h.input(addr(0), vec![0x80, 96, 1]);
    h.input(addr(0), vec![0xff; 40]);
    h.input(addr(0), vec![0x8f, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100]);
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_malformed, 3);
    assert_eq!(h.r.stats().dropped_bad_token, 2);
    // The call goes on.
    h.input(addr(0), rtp(100, 2));
    assert_eq!(h.take().len(), 1);
    h.input(addr(1), rtp(101, 2));
    assert_eq!(h.take().len(), 1);
}

#[test]
fn learned_ssrcs_cannot_be_stolen() {
    let mut h = H::new();
    for i in 0..2u16 {
        let tok = h.token(call(1), i as u64 + 1, Role::Publisher);
        assert!(matches!(h.join_with(addr(i), tok, vec![]), SessionMessage::JoinAck { .. }));
    }
    h.input(addr(0), rtp(100, 1));
    assert_eq!(h.take().len(), 1);
    assert!(h.events.contains(&Event::ProducerAdded { call: call(1), participant: ParticipantId(1), ssrc: Ssrc(100) }));
    h.input(addr(1), rtp(100, 2));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_ssrc_not_owned, 1);
}

#[test]
fn declared_ssrc_in_use_is_refused() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    let tok = h.token(call(1), 2, Role::Publisher);
    let reply = h.join_with(addr(1), tok, vec![(Ssrc(100), MediaKind::Video)]);
    assert!(matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }));
}

#[test]
fn subscriber_receives_but_cannot_publish() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    let tok = h.token(call(1), 2, Role::Subscriber);
    assert!(matches!(h.join_with(addr(1), tok, vec![]), SessionMessage::JoinAck { .. }));
    h.input(addr(1), rtp(200, 1));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_not_publisher, 1);
    h.input(addr(0), rtp(100, 1));
    assert_eq!(h.take()[0].destination, addr(1));
}

#[test]
fn join_is_idempotent() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(0), call(1), 1, 100); // retransmitted join
    assert_eq!(h.r.participant_count(), 1);
    assert_eq!(h.r.stats().joins, 1);
}

#[test]
fn call_cap_gives_call_full() {
    let mut h = H::with(RouterConfig { max_participants_per_call: 2, ..Default::default() });
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    let tok = h.token(call(1), 3, Role::Publisher);
    let r = h.join_with(addr(2), tok, vec![]);
    assert!(matches!(r, SessionMessage::JoinError { code: JoinErrorCode::CallFull, .. }));
}

#[test]
fn silence_timeout_with_synthetic_time() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.join(addr(1), call(1), 2, 101);
    h.events.clear();
    for _ in 0..20 {
        h.advance(Duration::from_secs(1));
        h.session(addr(0), SessionMessage::Keepalive { txid: [0; 12] });
    }
    assert_eq!(h.r.participant_count(), 1);
    assert_eq!(
        h.events,
        vec![Event::ParticipantLeft { call: call(1), participant: ParticipantId(2), reason: LeaveReason::Timeout }]
    );
    h.advance(Duration::from_secs(16));
    assert_eq!(h.r.participant_count(), 0);
    assert_eq!(h.r.call_count(), 0);
    assert!(h.events.contains(&Event::CallClosed(call(1))));
}

#[test]
fn timeout_output_is_the_next_deadline() {
    // The report tick comes first, then the speaker ranking, then the sweep ...
    let tick = crate::reports::REPORT_TICK;
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    match h.r.poll_output() {
        Output::Timeout(t) => assert_eq!(t, h.now + tick),
        o => panic!("{o:?}"),
    }
    h.advance(tick);
    match h.r.poll_output() {
        Output::Timeout(t) => assert_eq!(t, h.now + RouterConfig::default().audio_rank_interval - tick),
        o => panic!("{o:?}"),
    }
    // ... and without the ranking the sweep is the next deadline after the ticks.
    let mut h = H::with(RouterConfig { audio_level_ext_id: 0, ..RouterConfig::default() });
    h.join(addr(0), call(1), 1, 100);
    let sweep = h.now + RouterConfig::default().sweep_interval;
    for _ in 0..4 {
        h.advance(tick);
    }
    match h.r.poll_output() {
        Output::Timeout(t) => assert_eq!(t, sweep),
        o => panic!("{o:?}"),
    }
}

#[test]
fn leave_and_end_call() {
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    h.session(addr(2), SessionMessage::Leave { txid: [0; 12] });
    assert_eq!(h.r.participant_count(), 2);
    h.events.clear();
    h.r.handle_input(h.now, Input::Command(Command::EndCall(call(1))));
    h.drain();
    let t = h.take();
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(|t| matches!(SessionMessage::parse(&t.contents), Ok(SessionMessage::CallEnded { .. }))));
    assert_eq!(h.r.call_count(), 0);
    assert!(h.events.contains(&Event::CallClosed(call(1))));
    // A token for the ended call no longer admits anyone.
    let tok = h.token(call(1), 1, Role::Publisher);
    assert!(matches!(
        h.join_with(addr(0), tok, vec![]),
        SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }
    ));
}

#[test]
fn a_call_moved_back_is_admitted_again_and_who_left_stays_out() {
    // The call was here, ended (its router was fenced after a partition: the call had moved),
    // and the calls service placed it here again.
    let mut h = H::new();
    for i in 0..3u16 {
        h.join(addr(i), call(1), i as u64 + 1, 100 + i as u32);
    }
    h.session(addr(2), SessionMessage::Leave { txid: [0; 12] });
    h.r.handle_input(h.now, Input::Command(Command::EndCall(call(1))));
    h.drain();
    h.take();
    let refused = {
        let t = h.token(call(1), 1, Role::Publisher);
        h.join_with(addr(0), t, vec![])
    };
    assert!(matches!(refused, SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }), "{refused:?}");
    // Another call's mark is not touched.
    h.r.handle_input(h.now, Input::Command(Command::EndCall(call(2))));
    h.r.handle_input(h.now, Input::Command(Command::ReopenCall(call(1))));
    h.drain();
    h.take();
    let back = {
        let t = h.token(call(1), 1, Role::Publisher);
        h.join_with(addr(0), t, vec![])
    };
    assert!(matches!(back, SessionMessage::JoinAck { .. }), "the moved-back call admits again: {back:?}");
    assert_eq!(h.r.call_count(), 1);
    // The participant who left before the end cannot come back with its token.
    let left = {
        let t = h.token(call(1), 3, Role::Publisher);
        h.join_with(addr(3), t, vec![])
    };
    assert!(matches!(left, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }), "{left:?}");
    let other = {
        let t = h.token(call(2), 7, Role::Publisher);
        h.join_with(addr(4), t, vec![])
    };
    assert!(matches!(other, SessionMessage::JoinError { code: JoinErrorCode::Forbidden, .. }), "{other:?}");
}

proptest! {
    /// Whatever arrives, from admitted or unadmitted addresses, the router
    /// never panics and only forwards valid RTP whose SSRC the sender owns.
    #[test]
    fn random_traffic_never_forwards_what_it_should_not(
        pkts in proptest::collection::vec((0u16..4, proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()), 1..100)
    ) {
        let mut h = H::new();
        h.join(addr(0), call(1), 1, 100);
        h.join(addr(1), call(1), 2, 101);
        for (from, mut bytes, make_rtp) in pkts {
            if make_rtp && bytes.len() >= 12 {
                bytes[0] = 0x80;
                bytes[1] &= 0x7f;
            }
            h.input(addr(from), bytes.clone());
            for t in h.take() {
                if let Ok(hdr) = RtpHeader::parse(&t.contents) {
                    if classify(&t.contents) == Kind::Rtp {
                        prop_assert!(from < 2);
                        prop_assert_eq!(hdr.ssrc, Ssrc(100 + from as u32));
                    }
                }
            }
        }
    }
}

//! Native joins cannot be replayed or hijacked (`address_check`): what an
//! on-path observer who saw a join, an off-path spoofer and a participant
//! of another call can and cannot do.

use super::*;
use crate::address_check::CHECK_TIMEOUT;

/// The one Check the router sent to `a` (its transaction id).
fn check_sent_to(h: &mut H, a: SocketAddr) -> [u8; 12] {
    let t = h.take();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].destination, a);
    match SessionMessage::parse(&t[0].contents) {
        Ok(SessionMessage::Check { txid }) => txid,
        m => panic!("{m:?}"),
    }
}

/// Participant 1 (video 100) at addr 0 and participant 2 (video 101) at
/// addr 1 in call 1; returns the bytes of 1's join as an observer saw them.
fn two_in_a_call(h: &mut H) -> Vec<u8> {
    let tok = h.token(call(1), 1, Role::Publisher);
    let join = SessionMessage::Join {
        txid: [9; 12],
        token: tok.clone(),
        ssrcs: vec![(Ssrc(100), MediaKind::Video)],
        quality: Quality::Hd,
        srtp: false,
    };
    let sniffed = signed(&join, &tok);
    h.session(addr(0), join);
    assert!(matches!(SessionMessage::parse(&h.take()[0].contents), Ok(SessionMessage::JoinAck { .. })));
    h.join(addr(1), call(1), 2, 101);
    sniffed
}

/// Media from 2 (a new packet each time) reaches 1 at `at`, and nothing else.
fn media_reaches(h: &mut H, at: SocketAddr) {
    let seq = h.r.stats().forwarded_rtp as u16 + h.r.stats().rx_datagrams as u16;
    h.input(addr(1), rtp(101, seq));
    assert_eq!(dests(&h.take()), vec![at]);
}

#[test]
fn a_new_address_is_followed_only_after_a_signed_check_from_there() {
    let mut h = H::new();
    let _ = two_in_a_call(&mut h);
    // Participant 1's NAT rebinds to addr 5; it joins again from there.
    let tok = h.token(call(1), 1, Role::Publisher);
    h.session(
        addr(5),
        SessionMessage::Join { txid: [3; 12], token: tok, ssrcs: vec![], quality: Quality::Hd, srtp: false },
    );
    let check = check_sent_to(&mut h, addr(5));
    media_reaches(&mut h, addr(0)); // not moved yet
    h.session(addr(5), SessionMessage::CheckReply { txid: check });
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert!(
        matches!(SessionMessage::parse(&t[0].contents), Ok(SessionMessage::JoinAck { txid, participant: 1, .. }) if txid == [3; 12])
    );
    media_reaches(&mut h, addr(5));
    h.input(addr(0), rtp(100, 1));
    assert!(h.take().is_empty(), "the old address is no longer admitted");
    assert_eq!((h.r.stats().address_checks, h.r.stats().address_moves), (1, 1));
    assert_eq!(h.r.participant_count(), 2);
}

#[test]
fn a_replayed_join_admits_nothing_and_moves_nothing() {
    let mut h = H::new();
    let sniffed = two_in_a_call(&mut h);
    // The observer replays the join from its own address: the router only
    // asks that address to prove it holds the key, in no more bytes.
    let attacker = addr(66);
    h.input(attacker, sniffed.clone());
    let t = h.take();
    assert_eq!(t.len(), 1);
    assert!(t[0].contents.len() <= sniffed.len(), "no amplification");
    let check = match SessionMessage::parse(&t[0].contents) {
        Ok(SessionMessage::Check { txid }) => txid,
        m => panic!("{m:?}"),
    };
    // It cannot sign an answer: unsigned, or signed with a key of its own.
    h.input(attacker, SessionMessage::CheckReply { txid: check }.to_vec());
    h.input(attacker, SessionMessage::CheckReply { txid: check }.to_signed_vec(&JoinKey::from_bytes([7; 32])));
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().dropped_bad_integrity, 2);
    h.input(attacker, rtp(100, 50));
    assert!(h.take().is_empty(), "its media is not forwarded");
    media_reaches(&mut h, addr(0));
    // Nothing admitted it later either.
    h.advance(CHECK_TIMEOUT + Duration::from_secs(1));
    h.take();
    h.input(attacker, SessionMessage::CheckReply { txid: check }.to_vec());
    assert!(h.take().is_empty());
    assert_eq!(h.r.stats().address_moves, 0);
    assert_eq!(h.r.participant_count(), 2);
}

#[test]
fn an_old_check_reply_cannot_be_replayed_to_move_a_participant() {
    let mut h = H::new();
    let sniffed = two_in_a_call(&mut h);
    // A genuine move to addr 5, whose join and answer the observer sees.
    let tok = h.token(call(1), 1, Role::Publisher);
    let join =
        SessionMessage::Join { txid: [3; 12], token: tok.clone(), ssrcs: vec![], quality: Quality::Hd, srtp: false };
    h.input(addr(5), signed(&join, &tok));
    let check = check_sent_to(&mut h, addr(5));
    let answer = signed(&SessionMessage::CheckReply { txid: check }, &tok);
    h.input(addr(5), answer.clone());
    h.take();
    // Later it replays both from its own address: a new check goes out,
    // with a transaction id the old answer does not carry.
    h.advance(Duration::from_millis(10));
    h.take();
    h.input(addr(66), sniffed);
    let fresh = check_sent_to(&mut h, addr(66));
    assert_ne!(fresh, check);
    h.input(addr(66), answer);
    assert!(h.take().is_empty());
    media_reaches(&mut h, addr(5));
    assert_eq!(h.r.stats().address_moves, 1);
}

#[test]
fn a_join_without_its_key_is_refused() {
    let mut h = H::new();
    let tok = h.token(call(1), 1, Role::Publisher);
    let join = SessionMessage::Join { txid: [1; 12], token: tok, ssrcs: vec![], quality: Quality::Hd, srtp: false };
    for bytes in [join.to_vec(), join.to_signed_vec(&JoinKey::from_bytes([7; 32]))] {
        h.input(addr(0), bytes);
        let t = h.take();
        assert!(matches!(
            SessionMessage::parse(&t[0].contents),
            Ok(SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. })
        ));
    }
    assert_eq!(h.r.participant_count(), 0);
    assert_eq!(h.r.stats().dropped_bad_integrity, 2);
    // A router with no join secret admits no native join at all.
    let mut h = H::new();
    h.r.config.join_secret = None;
    let tok = h.token(call(1), 1, Role::Publisher);
    let r = h.join_with(addr(0), tok, vec![]);
    assert!(matches!(r, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }), "{r:?}");
}

#[test]
fn unsigned_or_foreign_session_messages_change_nothing() {
    let mut h = H::new();
    let _ = two_in_a_call(&mut h);
    // An off-path spoofer forges participant 1's address: a Leave, a
    // quality switch and a Last-N, unsigned.
    h.input(addr(0), SessionMessage::Leave { txid: [0; 12] }.to_vec());
    h.input(addr(0), SessionMessage::Quality { txid: [0; 12], quality: Quality::Sd }.to_vec());
    h.input(addr(0), SessionMessage::LastN { txid: [0; 12], n: 1 }.to_vec());
    // A participant of another call signs with its own key.
    let other = h.token(call(2), 7, Role::Publisher);
    h.input(addr(0), signed(&SessionMessage::Leave { txid: [0; 12] }, &other));
    assert_eq!(h.r.stats().dropped_bad_integrity, 4);
    assert_eq!(h.r.participant_count(), 2);
    media_reaches(&mut h, addr(0));
    // Signed by its key, the leave counts.
    h.session(addr(0), SessionMessage::Leave { txid: [0; 12] });
    assert_eq!(h.r.participant_count(), 1);
}

#[test]
fn a_token_admits_nobody_after_its_participant_left_or_was_removed() {
    let mut h = H::new();
    let sniffed = two_in_a_call(&mut h);
    h.session(addr(0), SessionMessage::Leave { txid: [0; 12] });
    h.take();
    for from in [addr(0), addr(66)] {
        h.input(from, sniffed.clone());
        let t = h.take();
        assert!(matches!(
            SessionMessage::parse(&t[0].contents),
            Ok(SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. })
        ));
    }
    assert_eq!(h.r.participant_count(), 1);
    // Removed by the control plane: the same.
    let tok2 = h.token(call(1), 2, Role::Publisher);
    h.r.handle_input(h.now, Input::Command(Command::RemoveParticipant(call(1), ParticipantId(2))));
    h.drain();
    h.take();
    let r = h.join_with(addr(1), tok2, vec![]);
    assert!(matches!(r, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }), "{r:?}");
    // A silence timeout is not a leave: the client may come back with its token.
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.advance(RouterConfig::default().silence_timeout + Duration::from_secs(1));
    assert_eq!(h.r.participant_count(), 0);
    h.join(addr(0), call(1), 1, 100);
    // Revocations are forgotten once the token has expired anyway.
    h.session(addr(0), SessionMessage::Leave { txid: [0; 12] });
    assert_eq!(h.r.revoked.len(), 1);
    h.advance(Duration::from_secs(61));
    assert!(h.r.revoked.is_empty());
}

#[test]
fn the_call_ended_notice_is_signed_for_its_participant() {
    let mut h = H::new();
    h.join(addr(0), call(1), 1, 100);
    h.r.handle_input(h.now, Input::Command(Command::EndCall(call(1))));
    h.drain();
    let t = h.take();
    let key = h.keys[&addr(0)].clone();
    assert_eq!(corecast_proto::session::verify(&t[0].contents, key.as_bytes()), Ok(()));
}

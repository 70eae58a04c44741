use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::stun::parse_xor_addr;
use super::*;
use crate::ids::{MediaKind, Ssrc};
use crate::join_key::JoinKey;
use proptest::prelude::*;

#[test]
fn join_replies_are_classified_for_their_transaction_only() {
    let (t, other) = ([1u8; 12], [2u8; 12]);
    let mapped: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let ack = SessionMessage::JoinAck { txid: t, mapped, participant: 7, timeout_ms: 15_000 }.to_vec();
    assert_eq!(join_reply(&ack, &t), Some(JoinReply::Admitted { participant: 7, timeout_ms: 15_000 }));
    assert_eq!(join_reply(&ack, &other), None, "another transaction");
    let alt: SocketAddr = "127.0.0.1:5001".parse().unwrap();
    let redirect = SessionMessage::JoinError {
        txid: t,
        code: JoinErrorCode::TryAlternate,
        reason: "other worker".into(),
        alternate: Some(alt),
    };
    assert_eq!(join_reply(&redirect.to_vec(), &t), Some(JoinReply::Redirect(alt)));
    let refused =
        SessionMessage::JoinError { txid: t, code: JoinErrorCode::Forbidden, reason: "no".into(), alternate: None };
    assert_eq!(
        join_reply(&refused.to_vec(), &t),
        Some(JoinReply::Refused { code: JoinErrorCode::Forbidden, reason: "no".into() })
    );
    assert_eq!(join_reply(b"\x80\x60 not a session message", &t), None);
    assert_eq!(join_reply(&[], &t), None);
}

/// RFC 5769 §2.1 sample request header: a Binding request parses as STUN.
#[test]
fn rfc5769_request_header() {
    let mut b = vec![
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
        0xdf, 0xae,
    ];
    let m = StunMessage::parse(&b).unwrap();
    assert_eq!((m.class, m.method), (Class::Request, 1));
    assert_eq!(m.to_vec(), b);
    // RFC 5769 §2.2 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853
    b[0] = 0x01;
    b[1] = 0x01;
    b[3] = 12;
    b.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
    let m = StunMessage::parse(&b).unwrap();
    assert_eq!(m.class, Class::Success);
    let a = parse_xor_addr(&m.attrs[0].1, &m.txid, 0x20).unwrap();
    assert_eq!(a, "192.0.2.1:32853".parse().unwrap());
}

#[test]
fn malformed() {
    assert_eq!(SessionMessage::parse(&[0; 4]), Err(SessionError::Truncated));
    let mut j = SessionMessage::Keepalive { txid: [1; 12] }.to_vec();
    j[4] = 0;
    assert_eq!(SessionMessage::parse(&j), Err(SessionError::NotStun));
    let join =
        SessionMessage::Join { txid: [1; 12], token: vec![1; 98], ssrcs: vec![], quality: Quality::Hd, srtp: false };
    let kinds_mismatch = StunMessage {
        class: Class::Request,
        method: 1,
        txid: [0; 12],
        attrs: vec![(attr::TOKEN, vec![1; 98]), (attr::SSRCS, vec![0, 0, 0, 1]), (attr::MEDIA, vec![0, 1])],
    };
    assert_eq!(SessionMessage::parse(&kinds_mismatch.to_vec()), Err(SessionError::Attribute(attr::MEDIA)));
    let mut b = join.to_vec();
    b.truncate(b.len() - 4);
    assert_eq!(SessionMessage::parse(&b), Err(SessionError::Truncated));
    let no_token = StunMessage { class: Class::Request, method: 1, txid: [0; 12], attrs: vec![] };
    assert_eq!(SessionMessage::parse(&no_token.to_vec()), Err(SessionError::Attribute(attr::TOKEN)));
    let other = StunMessage { class: Class::Request, method: 3, txid: [0; 12], attrs: vec![] };
    assert_eq!(SessionMessage::parse(&other.to_vec()), Err(SessionError::Unknown));
    assert_eq!(SessionMessage::parse(&vec![0u8; 2000]), Err(SessionError::TooLarge));
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(i, p)| SocketAddr::new(Ipv4Addr::from(i).into(), p)),
        (any::<u128>(), any::<u16>()).prop_map(|(i, p)| SocketAddr::new(Ipv6Addr::from(i).into(), p)),
    ]
}

fn arb_msg() -> impl Strategy<Value = SessionMessage> {
    let tx = any::<[u8; 12]>();
    let q = prop_oneof![Just(Quality::Hd), Just(Quality::Sd)];
    prop_oneof![
        (
            tx,
            proptest::collection::vec(any::<u8>(), 1..120),
            proptest::collection::vec((any::<u32>(), 0u8..3), 0..=16),
            q.clone()
        )
            .prop_map(|(txid, token, s, quality)| SessionMessage::Join {
                txid,
                token,
                ssrcs: s.into_iter().map(|(x, k)| (Ssrc(x), MediaKind::from_code(k).unwrap())).collect(),
                quality,
                srtp: false
            }),
        (tx, arb_addr(), any::<u64>(), any::<u32>()).prop_map(|(txid, mapped, participant, timeout_ms)| {
            SessionMessage::JoinAck { txid, mapped, participant, timeout_ms }
        }),
        (
            tx,
            prop_oneof![Just(300u16), Just(400), Just(401), Just(403), Just(486), Just(508)],
            "[a-z ]{0,40}",
            proptest::option::of(arb_addr())
        )
            .prop_map(|(txid, c, reason, alternate)| SessionMessage::JoinError {
                txid,
                code: JoinErrorCode::from_code(c).unwrap(),
                reason,
                alternate
            }),
        tx.prop_map(|txid| SessionMessage::Keepalive { txid }),
        tx.prop_map(|txid| SessionMessage::Leave { txid }),
        tx.prop_map(|txid| SessionMessage::CallEnded { txid }),
        (tx, q).prop_map(|(txid, quality)| SessionMessage::Quality { txid, quality }),
        (tx, any::<u8>()).prop_map(|(txid, n)| SessionMessage::LastN { txid, n }),
        (tx, prop_oneof![Just(0u16), MAX_HEIGHT_RANGE])
            .prop_map(|(txid, height)| SessionMessage::MaxHeight { txid, height }),
        tx.prop_map(|txid| SessionMessage::Check { txid }),
        tx.prop_map(|txid| SessionMessage::CheckReply { txid }),
        (tx, proptest::collection::hash_set(any::<u32>(), 2..=4))
            .prop_map(|(txid, s)| SessionMessage::Simulcast { txid, layers: s.into_iter().map(Ssrc).collect() }),
    ]
}

proptest! {
    #[test]
    fn roundtrip(m in arb_msg()) {
        let b = m.to_vec();
        prop_assert_eq!(b.len() % 4, 0);
        prop_assert_eq!(crate::demux::classify(&b), crate::demux::Kind::Stun);
        prop_assert_eq!(SessionMessage::parse(&b).unwrap(), m);
    }

    #[test]
    fn signed_roundtrip(m in arb_msg(), key in any::<[u8; 32]>(), flip in 0usize..2000) {
        let key = JoinKey::from_bytes(key);
        let b = m.to_signed_vec(&key);
        prop_assert_eq!(SessionMessage::parse(&b).unwrap(), m);
        prop_assert_eq!(verify(&b, key.as_bytes()), Ok(()));
        prop_assert_eq!(verify(&b, &[0u8; 32]), Err(SessionError::Integrity));
        // Any flipped bit of the header (but the length) or the attributes breaks it.
        let mut t = b.clone();
        let i = flip % t.len();
        if !(2..4).contains(&i) {
            t[i] ^= 1;
            prop_assert!(verify(&t, key.as_bytes()).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = SessionMessage::parse(&b);
    }

    #[test]
    fn stun_framed_garbage_never_panics(tx in any::<[u8;12]>(), body in proptest::collection::vec(any::<u8>(), 0..64), ty in any::<u16>()) {
        let mut b = vec![];
        b.extend_from_slice(&(ty & 0x3fff).to_be_bytes());
        let len = (body.len() / 4 * 4) as u16;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        b.extend_from_slice(&tx);
        b.extend_from_slice(&body[..len as usize]);
        let _ = SessionMessage::parse(&b);
    }
}

#[test]
fn a_last_n_of_other_than_one_byte_is_refused() {
    use crate::session::stun::{Class, StunMessage};
    for v in [vec![], vec![1, 2]] {
        let b =
            StunMessage { class: Class::Indication, method: 1, txid: [0; 12], attrs: vec![(attr::LAST_N, v)] }.to_vec();
        assert_eq!(SessionMessage::parse(&b), Err(SessionError::Attribute(attr::LAST_N)));
    }
    let b = SessionMessage::LastN { txid: [5; 12], n: 3 }.to_vec();
    assert_eq!(SessionMessage::parse(&b).unwrap(), SessionMessage::LastN { txid: [5; 12], n: 3 });
}

#[test]
fn a_max_height_is_0_or_16_to_4320_in_two_bytes() {
    use crate::session::stun::{Class, StunMessage};
    for v in [vec![], vec![1], vec![0, 15], vec![0x10, 0xE1], vec![0, 16, 0]] {
        let attrs = vec![(attr::MAX_HEIGHT, v)];
        let b = StunMessage { class: Class::Indication, method: 1, txid: [0; 12], attrs }.to_vec();
        assert_eq!(SessionMessage::parse(&b), Err(SessionError::Attribute(attr::MAX_HEIGHT)));
    }
    for height in [0, 16, 360, 4320] {
        let m = SessionMessage::MaxHeight { txid: [6; 12], height };
        assert_eq!(SessionMessage::parse(&m.to_vec()).unwrap(), m);
    }
}

#[test]
fn simulcast_takes_two_to_four_distinct_ssrcs() {
    let layers = |v: &[u32]| v.iter().flat_map(|s| s.to_be_bytes()).collect::<Vec<u8>>();
    for bad in [layers(&[1]), layers(&[1, 2, 3, 4, 5]), layers(&[1, 1]), vec![0, 0, 0, 1, 0, 0]] {
        let attrs = vec![(attr::SIMULCAST, bad)];
        let b = StunMessage { class: Class::Indication, method: 1, txid: [0; 12], attrs }.to_vec();
        assert_eq!(SessionMessage::parse(&b), Err(SessionError::Attribute(attr::SIMULCAST)));
    }
    let m = SessionMessage::Simulcast { txid: [5; 12], layers: vec![Ssrc(3), Ssrc(1), Ssrc(2)] };
    assert_eq!(SessionMessage::parse(&m.to_vec()).unwrap(), m, "order kept: lowest quality first");
}

#[test]
fn integrity_must_be_present_and_last() {
    let key = JoinKey::from_bytes([9; 32]);
    let plain = SessionMessage::Keepalive { txid: [1; 12] }.to_vec();
    assert_eq!(verify(&plain, key.as_bytes()), Err(SessionError::Integrity), "unsigned");
    let mut after = SessionMessage::Keepalive { txid: [1; 12] }.to_signed_vec(&key);
    put_attr(&mut after, 0, attr::LEAVE, &[]);
    assert_eq!(verify(&after, key.as_bytes()), Err(SessionError::Integrity), "an attribute after it");
    // What the router reads from a signed Leave is still a Leave.
    let leave = SessionMessage::Leave { txid: [2; 12] }.to_signed_vec(&key);
    assert_eq!(SessionMessage::parse(&leave), Ok(SessionMessage::Leave { txid: [2; 12] }));
    assert_eq!(verify(&leave, key.as_bytes()), Ok(()));
}

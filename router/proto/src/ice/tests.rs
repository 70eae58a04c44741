use std::net::SocketAddr;

use super::integrity::{fingerprint, integrity};
use super::*;
use crate::session::{parse_xor_addr, put_attr, put_header, set_len, Class, Frame, HEADER_LEN};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).unwrap()
}

const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
const TXID: [u8; 12] = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];

/// RFC 5769 §2.1: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME (padded with
/// spaces), MESSAGE-INTEGRITY, FINGERPRINT.
fn rfc_request() -> Vec<u8> {
    hex(concat!(
        "000100582112a442b7e7a701bc34d686fa87dfae",
        "802200105354554e207465737420636c69656e74",
        "002400046e0001ff",
        "80290008932ff9b151263b36",
        "000600096576746a3a68367659202020",
        "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2",
        "80280004e57a3bcf",
    ))
}

/// RFC 5769 §2.2: SOFTWARE "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853.
fn rfc_response_v4() -> Vec<u8> {
    hex(concat!(
        "0101003c2112a442b7e7a701bc34d686fa87dfae",
        "8022000b7465737420766563746f7220",
        "002000080001a147e112a643",
        "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7",
        "80280004c07d4c96",
    ))
}

/// RFC 5769 §2.3: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
fn rfc_response_v6() -> Vec<u8> {
    hex(concat!(
        "010100482112a442b7e7a701bc34d686fa87dfae",
        "8022000b7465737420766563746f7220",
        "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9",
        "00080014a382954e4be67bf11784c97c8292c275bfe3ed41",
        "80280004c8fb0b4c",
    ))
}

/// A Binding request the way a full ICE agent writes one.
fn request(txid: [u8; 12], attrs: &[(u16, &[u8])], password: Option<&[u8]>, fp: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put_header(&mut out, Class::Request, BINDING, &txid);
    for (t, v) in attrs {
        put_attr(&mut out, 0, *t, v);
    }
    if let Some(k) = password {
        let tag = integrity(k, &out);
        put_attr(&mut out, 0, attr::MESSAGE_INTEGRITY, &tag);
    }
    if fp {
        let len = out.len() - HEADER_LEN + 8;
        set_len(&mut out, 0, len);
        let crc = fingerprint(&out);
        put_attr(&mut out, 0, attr::FINGERPRINT, &crc.to_be_bytes());
    }
    out
}

fn check(txid: [u8; 12], role: Option<Role>, use_candidate: bool, password: &[u8]) -> Vec<u8> {
    let username = Username { local: "rtr1", remote: "peer" };
    let mut out = Vec::new();
    match role {
        Some(role) => Check { txid, username, priority: 0x6e00_01ff, role, use_candidate }.write(&mut out, password),
        None => {
            let attrs: [(u16, &[u8]); 2] = [(attr::USERNAME, b"rtr1:peer"), (attr::PRIORITY, &[0x6e, 0, 1, 0xff])];
            out = request(txid, &attrs, Some(password), true);
        }
    }
    out
}

/// [`Check`] writes what the RFC 5769 request holds, but SOFTWARE and the
/// USERNAME padding (spaces there, zeros here).
#[test]
fn check_matches_rfc5769_request_but_software() {
    let rfc = rfc_request();
    let mut out = vec![1, 2];
    let c = Check {
        txid: TXID,
        username: Username { local: "evtj", remote: "h6vY" },
        priority: 0x6e00_01ff,
        role: Role::Controlled(0x932f_f9b1_5126_3b36),
        use_candidate: false,
    };
    c.write(&mut out, PASSWORD);
    let ours = &out[2..];
    let r = BindingRequest::parse(ours).unwrap();
    r.verify(PASSWORD).unwrap();
    assert_eq!((r.username, r.priority, r.role, r.use_candidate), (c.username, Some(c.priority), Some(c.role), false));
    assert_eq!(ours.len(), rfc.len() - 20);
    // The RFC's attributes after SOFTWARE, up to USERNAME's padding.
    assert_eq!(&ours[HEADER_LEN..HEADER_LEN + 8 + 12 + 13], &rfc[HEADER_LEN + 20..HEADER_LEN + 20 + 8 + 12 + 13]);
    // And the RFC's bytes once SOFTWARE is added and USERNAME padded with
    // spaces, the hashes recomputed.
    let mut spaced = rfc[..HEADER_LEN + 20].to_vec();
    spaced.extend_from_slice(&ours[HEADER_LEN..HEADER_LEN + 8 + 12 + 16]);
    spaced[HEADER_LEN + 20 + 8 + 12 + 13..].copy_from_slice(b"   ");
    let tag = integrity(PASSWORD, &spaced);
    put_attr(&mut spaced, 0, attr::MESSAGE_INTEGRITY, &tag);
    let len = spaced.len() - HEADER_LEN + 8;
    set_len(&mut spaced, 0, len);
    let crc = fingerprint(&spaced);
    put_attr(&mut spaced, 0, attr::FINGERPRINT, &crc.to_be_bytes());
    assert_eq!(spaced, rfc);
    // A long username is cut, not wrapped.
    let long = "x".repeat(600);
    let mut out = Vec::new();
    Check { username: Username { local: &long, remote: "y" }, ..c }.write(&mut out, PASSWORD);
    verify_message(&out, PASSWORD).unwrap();
    let f = Frame::parse(&out).unwrap();
    let u = f.attrs().map(Result::unwrap).find(|a| a.ty == attr::USERNAME).unwrap();
    assert_eq!(u.value, &long.as_bytes()[..MAX_USERNAME]);
    assert_eq!(BindingRequest::parse(&out), Err(IceError::BadUsername));
}

#[test]
fn rfc5769_request_parses_and_verifies() {
    let b = rfc_request();
    let r = BindingRequest::parse(&b).unwrap();
    assert_eq!(r.txid, TXID);
    assert_eq!(r.username, Username { local: "evtj", remote: "h6vY" });
    assert_eq!(r.priority, Some(0x6e00_01ff));
    assert_eq!(r.role, Some(Role::Controlled(0x932f_f9b1_5126_3b36)));
    assert!(!r.use_candidate);
    assert_eq!(r.bytes(), &b[..]);
    r.verify_fingerprint().unwrap();
    r.verify_integrity(PASSWORD).unwrap();
    r.verify(PASSWORD).unwrap();
    verify_message(&b, PASSWORD).unwrap();
    assert_eq!(r.verify(b"VOkJxbRl1RmTxUk/WvJxBu"), Err(IceError::IntegrityMismatch));
    assert_eq!(r.verify(b""), Err(IceError::IntegrityMismatch));
}

#[test]
fn rfc5769_responses_verify() {
    for (b, mapped) in
        [(rfc_response_v4(), "192.0.2.1:32853"), (rfc_response_v6(), "[2001:db8:1234:5678:11:2233:4455:6677]:32853")]
    {
        verify_message(&b, PASSWORD).unwrap();
        assert_eq!(verify_message(&b, b"wrong"), Err(IceError::IntegrityMismatch));
        let f = Frame::parse(&b).unwrap();
        assert_eq!((f.class, f.method, f.txid), (Class::Success, BINDING, TXID));
        let xma = f.attrs().map(Result::unwrap).find(|a| a.ty == attr::XOR_MAPPED_ADDRESS).unwrap();
        let mapped: SocketAddr = mapped.parse().unwrap();
        assert_eq!(parse_xor_addr(xma.value, &TXID, xma.ty).unwrap(), mapped);
        assert_eq!(BindingRequest::parse(&b), Err(IceError::NotBindingRequest));
    }
}

/// Our responses to the RFC 5769 request: the same bytes as §2.2 / §2.3 up
/// to MESSAGE-INTEGRITY but for SOFTWARE's padding (the RFC pads with
/// spaces, RFC 8489 senders with zeros, which MESSAGE-INTEGRITY covers), and
/// both integrity and fingerprint verify.
#[test]
fn rfc5769_responses_rebuilt() {
    let req = rfc_request();
    let r = BindingRequest::parse(&req).unwrap();
    for (rfc, mapped) in
        [(rfc_response_v4(), "192.0.2.1:32853"), (rfc_response_v6(), "[2001:db8:1234:5678:11:2233:4455:6677]:32853")]
    {
        let mut out = vec![0xEE; 3]; // appends after what is there
        BindingResponse { txid: r.txid, software: Some("test vector") }.success(
            &mut out,
            mapped.parse().unwrap(),
            PASSWORD,
        );
        assert_eq!(&out[..3], &[0xEE; 3]);
        let ours = &out[3..];
        assert_eq!(ours.len(), rfc.len());
        let mi = rfc.len() - 8 - 24;
        let mut expect = rfc[..mi].to_vec();
        expect[HEADER_LEN + 4 + 11] = 0; // SOFTWARE padding
        assert_eq!(&ours[..mi], &expect[..]);
        assert_eq!(&ours[mi..mi + 4], &rfc[mi..mi + 4]);
        verify_message(ours, PASSWORD).unwrap();
        // And byte-exact once SOFTWARE is padded as the RFC pads it and the
        // two hashes are recomputed by the same code paths.
        let mut spaced = ours[..mi].to_vec();
        spaced[HEADER_LEN + 4 + 11] = b' ';
        let tag = integrity(PASSWORD, &spaced);
        put_attr(&mut spaced, 0, attr::MESSAGE_INTEGRITY, &tag);
        let len = spaced.len() - HEADER_LEN + 8;
        set_len(&mut spaced, 0, len);
        let crc = fingerprint(&spaced);
        put_attr(&mut spaced, 0, attr::FINGERPRINT, &crc.to_be_bytes());
        assert_eq!(spaced, rfc);
    }
}

#[test]
fn every_flipped_bit_fails() {
    let b = rfc_request();
    for i in 0..b.len() * 8 {
        let mut t = b.clone();
        t[i / 8] ^= 1 << (i % 8);
        let r = BindingRequest::parse(&t).and_then(|r| r.verify(PASSWORD));
        assert!(r.is_err(), "bit {i} flipped still verifies");
    }
}

#[test]
fn tampered_with_fresh_fingerprint_fails_integrity() {
    let mut b = rfc_request();
    b[HEADER_LEN + 20 + 8 + 12 + 4] ^= 0x20; // "evtj" -> "Evtj"
    let n = b.len();
    let crc = fingerprint(&b[..n - 8]);
    b[n - 4..].copy_from_slice(&crc.to_be_bytes());
    let r = BindingRequest::parse(&b).unwrap();
    assert_eq!(r.username.local, "Evtj");
    r.verify_fingerprint().unwrap();
    assert_eq!(r.verify(PASSWORD), Err(IceError::IntegrityMismatch));
    assert_eq!(IceError::IntegrityMismatch.response_code(), Some(ErrorCode::Unauthorized));
}

#[test]
fn round_trip_check_and_success() {
    let pw = b"router-password-0123456789";
    for (i, (role, uc)) in
        [(Some(Role::Controlling(7)), true), (Some(Role::Controlled(u64::MAX)), false), (None, false)]
            .into_iter()
            .enumerate()
    {
        let txid = [i as u8 + 1; 12];
        let b = check(txid, role, uc, pw);
        let r = BindingRequest::parse(&b).unwrap();
        assert_eq!((r.txid, r.role, r.use_candidate, r.priority), (txid, role, uc, Some(0x6e00_01ff)));
        assert_eq!(r.username, Username { local: "rtr1", remote: "peer" });
        r.verify(pw).unwrap();
        assert_eq!(r.verify(b"other"), Err(IceError::IntegrityMismatch));
        for mapped in ["203.0.113.9:50000", "[2001:db8::1]:9"] {
            let mapped: SocketAddr = mapped.parse().unwrap();
            let mut out = Vec::new();
            BindingResponse::new(r.txid).success(&mut out, mapped, pw);
            verify_message(&out, pw).unwrap();
            let f = Frame::parse(&out).unwrap();
            assert_eq!((f.class, f.txid), (Class::Success, txid));
            let tys: Vec<u16> = f.attrs().map(|a| a.unwrap().ty).collect();
            assert_eq!(tys, [attr::XOR_MAPPED_ADDRESS, attr::MESSAGE_INTEGRITY, attr::FINGERPRINT]);
            let a = f.attrs().next().unwrap().unwrap();
            assert_eq!(parse_xor_addr(a.value, &txid, a.ty).unwrap(), mapped);
        }
    }
}

#[test]
fn error_responses() {
    for (code, key) in [
        (ErrorCode::BadRequest, None),
        (ErrorCode::Unauthorized, None),
        (ErrorCode::UnknownAttribute(0x0031), None),
        (ErrorCode::RoleConflict, Some(&b"pw"[..])),
        (ErrorCode::ServerError, Some(&b"pw"[..])),
    ] {
        let mut out = Vec::new();
        BindingResponse::new(TXID).error(&mut out, code, key);
        let f = Frame::parse(&out).unwrap();
        assert_eq!((f.class, f.method, f.txid), (Class::Error, BINDING, TXID));
        let attrs: Vec<_> = f.attrs().map(Result::unwrap).collect();
        let ec = attrs[0];
        assert_eq!(ec.ty, attr::ERROR_CODE);
        assert_eq!(ec.value[2] as u16 * 100 + ec.value[3] as u16, code.code());
        assert_eq!(&ec.value[4..], code.reason().as_bytes());
        if let ErrorCode::UnknownAttribute(t) = code {
            assert_eq!((attrs[1].ty, attrs[1].value), (attr::UNKNOWN_ATTRIBUTES, &t.to_be_bytes()[..]));
        }
        match key {
            Some(k) => verify_message(&out, k).unwrap(),
            None => {
                assert_eq!(verify_message(&out, b"pw"), Err(IceError::MissingIntegrity));
                let fp = attrs.last().unwrap();
                assert_eq!(fp.ty, attr::FINGERPRINT);
                let crc = fingerprint(&out[..fp.offset]);
                assert_eq!(fp.value, crc.to_be_bytes());
            }
        }
    }
}

#[test]
fn attribute_rules() {
    let pw = b"pw";
    let user: (u16, &[u8]) = (attr::USERNAME, b"a:b");
    // Unknown comprehension-optional attributes are skipped; required ones refused.
    let b = request(TXID, &[(0xC0FE, b"xyz"), user], Some(pw), true);
    BindingRequest::parse(&b).unwrap().verify(pw).unwrap();
    let b = request(TXID, &[user, (0x0031, b"x")], Some(pw), true);
    let e = BindingRequest::parse(&b).unwrap_err();
    assert_eq!(e, IceError::UnknownRequired(0x0031));
    assert_eq!(e.response_code(), Some(ErrorCode::UnknownAttribute(0x0031)));
    // MESSAGE-INTEGRITY-SHA256 is read past.
    let b = request(TXID, &[user, (attr::MESSAGE_INTEGRITY_SHA256, &[0; 32])], Some(pw), true);
    BindingRequest::parse(&b).unwrap().verify(pw).unwrap();
    // What follows MESSAGE-INTEGRITY (but FINGERPRINT) is ignored.
    let mut b = request(TXID, &[], Some(pw), false);
    put_attr(&mut b, 0, attr::USERNAME, b"a:b");
    assert_eq!(BindingRequest::parse(&b), Err(IceError::MissingUsername));
    // Nothing may follow FINGERPRINT, MESSAGE-INTEGRITY included.
    let mut b = request(TXID, &[user], None, true);
    put_attr(&mut b, 0, attr::MESSAGE_INTEGRITY, &[0; 20]);
    assert_eq!(BindingRequest::parse(&b), Err(IceError::AfterFingerprint(attr::MESSAGE_INTEGRITY)));
    assert_eq!(verify_message(&b, pw), Err(IceError::AfterFingerprint(attr::MESSAGE_INTEGRITY)));
    assert_eq!(IceError::AfterFingerprint(8).response_code(), Some(ErrorCode::BadRequest));
    // Missing pieces.
    let b = request(TXID, &[user], None, true);
    assert_eq!(BindingRequest::parse(&b).unwrap().verify(pw), Err(IceError::MissingIntegrity));
    let b = request(TXID, &[user], Some(pw), false);
    assert_eq!(BindingRequest::parse(&b).unwrap().verify(pw), Err(IceError::MissingFingerprint));
    BindingRequest::parse(&b).unwrap().verify_integrity(pw).unwrap();
    assert_eq!(verify_message(&b, pw), Err(IceError::MissingFingerprint));
    let b = request(TXID, &[(attr::PRIORITY, &[0; 4])], Some(pw), true);
    assert_eq!(BindingRequest::parse(&b), Err(IceError::MissingUsername));
    // Bad lengths and values.
    for (t, v) in [
        (attr::PRIORITY, &[0u8; 3][..]),
        (attr::USE_CANDIDATE, &[0]),
        (attr::ICE_CONTROLLING, &[0; 4]),
        (attr::ICE_CONTROLLED, &[0; 9]),
        (attr::MESSAGE_INTEGRITY, &[0; 19]),
        (attr::FINGERPRINT, &[0; 8]),
        (attr::USERNAME, &[b'a'; MAX_USERNAME + 1]),
    ] {
        let b = request(TXID, &[(t, v), user], None, false);
        assert_eq!(BindingRequest::parse(&b), Err(IceError::Malformed(t)), "{t:#x}");
    }
    for u in [&b"nocolon"[..], b":b", b"a:", b"\xff:b"] {
        let b = request(TXID, &[(attr::USERNAME, u)], None, false);
        assert_eq!(BindingRequest::parse(&b), Err(IceError::BadUsername));
    }
    let b = request(TXID, &[(attr::USERNAME, b"a:b:c")], None, false);
    assert_eq!(BindingRequest::parse(&b).unwrap().username, Username { local: "a", remote: "b:c" });
    let b = request(TXID, &[user, (attr::ICE_CONTROLLING, &[0; 8]), (attr::ICE_CONTROLLED, &[0; 8])], None, false);
    assert_eq!(BindingRequest::parse(&b), Err(IceError::BothRoles));
    // Of duplicates, the first counts.
    let b = request(
        TXID,
        &[user, (attr::USERNAME, b"c:d"), (attr::PRIORITY, &[0, 0, 0, 1]), (attr::PRIORITY, &[9; 4])],
        None,
        false,
    );
    let r = BindingRequest::parse(&b).unwrap();
    assert_eq!((r.username.local, r.priority), ("a", Some(1)));
}

#[test]
fn framing_errors() {
    let good = rfc_request();
    let p = |b: &[u8]| BindingRequest::parse(b).map(|_| ());
    assert_eq!(p(&[]), Err(IceError::Frame(FrameError::Truncated)));
    assert_eq!(p(&good[..19]), Err(IceError::Frame(FrameError::Truncated)));
    let mut b = good.clone();
    b[0] |= 0x80;
    assert_eq!(p(&b), Err(IceError::Frame(FrameError::NotStun)));
    let mut b = good.clone();
    b[7] ^= 1;
    assert_eq!(p(&b), Err(IceError::Frame(FrameError::BadCookie)));
    let mut b = good.clone();
    b[3] += 1;
    assert_eq!(p(&b), Err(IceError::Frame(FrameError::Unaligned)));
    assert_eq!(
        p(&good[..good.len() - 4]),
        Err(IceError::Frame(FrameError::LengthMismatch { announced: good.len() - 20, actual: good.len() - 24 }))
    );
    // The last attribute's value runs past the end.
    let mut b = good.clone();
    let n = b.len();
    b[n - 6] = 0x05;
    assert_eq!(p(&b), Err(IceError::Frame(FrameError::AttrOverrun(n - 8))));
    let mut b = good.clone();
    b[1] = 0x11; // indication
    assert_eq!(p(&b), Err(IceError::NotBindingRequest));
    for e in [IceError::Frame(FrameError::BadCookie), IceError::NotBindingRequest, IceError::FingerprintMismatch] {
        assert_eq!(e.response_code(), None, "{e}");
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(r) = BindingRequest::parse(&b) {
            let _ = r.verify(PASSWORD);
        }
        let _ = verify_message(&b, PASSWORD);
    }

    /// Valid headers over random attribute bytes reach the attribute walk.
    #[test]
    fn random_attributes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..40).prop_map(|mut v| {
        v.truncate(v.len() / 4 * 4);
        v
    }), words in proptest::collection::vec((0usize..6, 0u16..40), 0..6)) {
        let types = [attr::USERNAME, attr::MESSAGE_INTEGRITY, attr::FINGERPRINT, attr::PRIORITY, attr::ICE_CONTROLLING, 0x8000];
        let mut b = Vec::new();
        put_header(&mut b, Class::Request, BINDING, &TXID);
        for (t, l) in words {
            b.extend_from_slice(&types[t].to_be_bytes());
            b.extend_from_slice(&l.to_be_bytes());
            b.extend_from_slice(&body);
        }
        b.truncate(HEADER_LEN + (b.len() - HEADER_LEN) / 4 * 4);
        let len = b.len() - HEADER_LEN;
        set_len(&mut b, 0, len);
        if let Ok(r) = BindingRequest::parse(&b) {
            let _ = r.verify(PASSWORD);
        }
        let _ = verify_message(&b, PASSWORD);
    }

    #[test]
    fn any_check_round_trips(
        txid in any::<[u8; 12]>(),
        local in "[A-Za-z0-9+/]{1,64}",
        remote in "[A-Za-z0-9+/]{1,64}",
        priority in any::<u32>(),
        tb in any::<u64>(),
        controlling in any::<bool>(),
        use_candidate in any::<bool>(),
        pw in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let role = if controlling { Role::Controlling(tb) } else { Role::Controlled(tb) };
        let c = Check { txid, username: Username { local: &local, remote: &remote }, priority, role, use_candidate };
        let mut b = Vec::new();
        c.write(&mut b, &pw);
        let r = BindingRequest::parse(&b).unwrap();
        prop_assert_eq!(
            (r.txid, r.username, r.priority, r.role, r.use_candidate),
            (txid, c.username, Some(priority), Some(role), use_candidate)
        );
        prop_assert!(r.verify(&pw).is_ok());
        prop_assert!(verify_message(&b, &pw).is_ok());
    }
}

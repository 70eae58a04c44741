//! Parser, writer and typed attribute tests, and the no-panic properties.

use proptest::prelude::*;

use super::*;

const CHROMIUM_WHIP: &str = include_str!("../../tests/fixtures/sdp/chromium-whip-offer.sdp");
const FIREFOX_WHEP: &str = include_str!("../../tests/fixtures/sdp/firefox-whep-offer.sdp");

const MINIMAL: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

fn malformed_line(r: Result<SessionDescription, SdpError>) -> usize {
    match r {
        Err(SdpError::Malformed { line, .. }) => line,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn minimal_session() {
    let s = SessionDescription::parse(MINIMAL).unwrap();
    assert_eq!(s.version, 0);
    assert_eq!(s.origin.session_id, 1);
    assert_eq!(s.origin.session_version, 2);
    assert_eq!(s.origin.address, "127.0.0.1");
    assert_eq!(s.session_name, "-");
    assert_eq!(s.timing, Timing { start: 0, stop: 0 });
    assert!(s.media.is_empty() && s.attributes.is_empty());
    assert_eq!(s.to_sdp(), MINIMAL);
    assert_eq!(SessionDescription::parse(&MINIMAL.replace("\r\n", "\n")).unwrap(), s);
    assert_eq!(MINIMAL.parse::<SessionDescription>().unwrap(), s);
    assert_eq!(SessionDescription::parse_bytes(MINIMAL.as_bytes()).unwrap(), s);
}

#[test]
fn unknown_lines_and_attributes_are_kept() {
    let text = format!(
        "{MINIMAL}i=info\r\nu=http://x\r\nz=0 0\r\nb=AS:300\r\na=x-foo:bar baz\r\na=x-flag\r\na=x-empty:\r\n\
         m=video 9/2 RTP/AVP 96 97\r\ni=media info\r\nc=IN IP6 ::1\r\nb=TIAS:1000\r\nk=prompt\r\na=x-media\r\nm=text 0 RTP/AVP 0\r\n"
    );
    let s = SessionDescription::parse(&text).unwrap();
    assert_eq!(s.other, vec![('i', "info".into()), ('u', "http://x".into()), ('z', "0 0".into())]);
    assert_eq!(s.bandwidth, vec![Bandwidth { bw_type: "AS".into(), bandwidth: 300 }]);
    assert_eq!(s.attribute_value("x-foo"), Some("bar baz"));
    assert_eq!(s.attribute("x-flag").unwrap().value, None);
    assert_eq!(s.attribute("x-empty").unwrap().value.as_deref(), Some(""));
    let m = &s.media[0];
    assert_eq!((m.kind.clone(), m.port, m.port_count), (MediaKind::Video, 9, Some(2)));
    assert_eq!(m.formats, ["96", "97"]);
    assert_eq!(m.connection.as_ref().unwrap().addr_type, "IP6");
    assert_eq!(m.other, vec![('i', "media info".into()), ('k', "prompt".into())]);
    assert_eq!(s.media[1].kind, MediaKind::Other("text".into()));
    assert_eq!(SessionDescription::parse(&s.to_sdp()).unwrap(), s);
}

#[test]
fn structure_is_strict() {
    assert_eq!(SessionDescription::parse(""), Err(SdpError::NoVersion));
    assert_eq!(SessionDescription::parse("o=- 1 2 IN IP4 0.0.0.0\r\nv=0\r\n"), Err(SdpError::NoVersion));
    assert_eq!(SessionDescription::parse("v=1\r\n"), Err(SdpError::NoVersion));
    assert_eq!(SessionDescription::parse("v=0\r\ns=-\r\nt=0 0\r\n"), Err(SdpError::MissingLine('o')));
    assert_eq!(SessionDescription::parse("v=0\r\no=- 1 2 IN IP4 x\r\nt=0 0\r\n"), Err(SdpError::MissingLine('s')));
    assert_eq!(SessionDescription::parse("v=0\r\no=- 1 2 IN IP4 x\r\ns=-\r\n"), Err(SdpError::MissingLine('t')));
    assert_eq!(malformed_line(SessionDescription::parse("v=0\r\no=- 1 2 IN IP4\r\n")), 2);
    assert_eq!(malformed_line(SessionDescription::parse("v=0\r\no=- x 2 IN IP4 a\r\n")), 2);
    assert_eq!(malformed_line(SessionDescription::parse("v=0\r\no=- +1 2 IN IP4 a\r\n")), 2);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}v=0\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}t=0\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}b=AS\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}a=\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}a=:x\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}garbage\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}1=x\r\n"))), 5);
    for m in [
        "m=audio",
        "m=audio 9",
        "m=audio 9 RTP/AVP",
        "m=audio x RTP/AVP 0",
        "m=audio 70000 RTP/AVP 0",
        "m=audio 9/x RTP/AVP 0",
        "m=audio -1 RTP/AVP 0",
    ] {
        assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}{m}\r\n"))), 5, "{m}");
    }
    let media = format!("{MINIMAL}m=audio 9 RTP/AVP 0\r\n");
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{media}s=x\r\n"))), 6);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{media}c=IN IP4 a\r\nc=IN IP4 b\r\n"))), 7);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}a=x\0y\r\n"))), 5);
    assert_eq!(malformed_line(SessionDescription::parse(&format!("{MINIMAL}a=x\ry\r\n"))), 5);
    // Blank lines (a trailing newline, an editor's extra one) are fine.
    assert!(SessionDescription::parse(&format!("{MINIMAL}\r\n\r\n")).is_ok());
}

#[test]
fn limits_are_enforced() {
    let big = format!("{MINIMAL}{}", "a=x-pad:0123456789012345678901234567890123456789\r\n".repeat(25_000));
    assert_eq!(SessionDescription::parse(&big), Err(SdpError::TooLarge(big.len())));
    assert_eq!(SessionDescription::parse_bytes(big.as_bytes()), Err(SdpError::TooLarge(big.len())));
    let one_mb = vec![b'a'; 1 << 20];
    assert_eq!(SessionDescription::parse_bytes(&one_mb), Err(SdpError::TooLarge(1 << 20)));
    let long = format!("{MINIMAL}a=x:{}\r\n", "y".repeat(5000));
    assert_eq!(SessionDescription::parse(&long), Err(SdpError::LineTooLong { line: 5, len: 5004 }));
    let many = format!("{MINIMAL}{}", "m=audio 9 RTP/AVP 0\r\n".repeat(1000));
    assert_eq!(SessionDescription::parse(&many), Err(SdpError::TooManyMedia));
    let sixty_four = format!("{MINIMAL}{}", "m=audio 9 RTP/AVP 0\r\n".repeat(64));
    assert_eq!(SessionDescription::parse(&sixty_four).unwrap().media.len(), 64);
    let attrs = format!("{MINIMAL}{}", "a=x\r\n".repeat(513));
    assert_eq!(SessionDescription::parse(&attrs), Err(SdpError::TooManyAttributes { line: 517 }));
    let media_attrs = format!("{MINIMAL}m=audio 9 RTP/AVP 0\r\n{}", "a=x\r\n".repeat(513));
    assert!(matches!(SessionDescription::parse(&media_attrs), Err(SdpError::TooManyAttributes { .. })));
    let ok = format!("{MINIMAL}{}m=audio 9 RTP/AVP 0\r\n{}", "a=x\r\n".repeat(512), "a=y\r\n".repeat(512));
    assert!(SessionDescription::parse(&ok).is_ok());
    for e in [SdpError::TooLarge(1 << 20), SdpError::TooManyMedia, SdpError::LineTooLong { line: 3, len: 5000 }] {
        assert!(e.to_string().contains("limit") || e.to_string().contains("more than"), "{e}");
    }
}

#[test]
fn garbage_is_refused() {
    assert_eq!(SessionDescription::parse_bytes(&[0xff, 0xfe, 0x00, 0x80]), Err(SdpError::NotText));
    assert_eq!(SessionDescription::parse("\u{feff}v=0\r\n"), Err(SdpError::NoVersion));
    assert_eq!(SessionDescription::parse("\0\0\0\0"), Err(SdpError::NoVersion));
    assert_eq!(SessionDescription::parse("<html>v=0</html>"), Err(SdpError::NoVersion));
    let mut x: u32 = 0x1234_5678;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(SessionDescription::parse_bytes(&bytes).is_err());
    }
}

#[test]
fn truncated_offers_never_panic() {
    for text in [CHROMIUM_WHIP, FIREFOX_WHEP] {
        let cfg = answer_tests::config(Mode::Publish);
        // Every line boundary (and a byte either side of it) and every 5th byte.
        let near_newline = |i: usize| text.as_bytes()[i.saturating_sub(1)..(i + 2).min(text.len())].contains(&b'\n');
        for end in (0..text.len()).filter(|&i| text.is_char_boundary(i) && (i % 5 == 0 || near_newline(i))) {
            if let Ok(s) = SessionDescription::parse(&text[..end]) {
                assert_eq!(SessionDescription::parse(&s.to_sdp()).unwrap(), s);
                let _ = answer(&s, &cfg);
            }
        }
    }
}

/// Each value parses and writes back as written.
#[test]
fn typed_attributes_round_trip() {
    fn rt<T: std::str::FromStr<Err = SdpError> + std::fmt::Display>(values: &[&str]) {
        for v in values {
            let parsed: T = v.parse().unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(parsed.to_string(), *v);
        }
    }
    rt::<RtpMap>(&["111 opus/48000/2", "96 VP8/90000", "0 PCMU/8000"]);
    rt::<Fmtp>(&["111 minptime=10;useinbandfec=1", "97 apt=96", "101 0-15"]);
    rt::<RtcpFb>(&["96 nack", "96 nack pli", "* ccm fir", "96 transport-cc"]);
    rt::<ExtMap>(&["1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "2/recvonly urn:x", "3 urn:y attr value"]);
    rt::<SsrcAttr>(&["1076209768 cname:CvlRRx0A8tKFnGVH", "5 msid:s t", "6 x-flag"]);
    rt::<SsrcGroup>(&["FID 4010287501 4182131237", "SIM 1 2 3"]);
    rt::<Msid>(&["stream track", "-"]);
    rt::<Rid>(&["h send", "l recv pt=96;max-width=320"]);
    rt::<Simulcast>(&["send h;m;l", "recv 1,2;~3", "send a recv b"]);
    rt::<Group>(&["BUNDLE 0 1 2", "LS"]);
    rt::<Setup>(&["actpass", "active", "passive", "holdconn"]);
    rt::<Fingerprint>(&["sha-256 66:D8:7E", "sha-1 00:FF"]);
    rt::<Candidate>(&[
        "3655545613 1 udp 2122194687 192.0.2.2 42203 typ host generation 0 network-id 1",
        "1 1 UDP 1686052607 203.0.113.1 3478 typ srflx raddr 10.0.0.1 rport 50000",
        "x 2 tcp 1 host.local 9 typ host tcptype active",
    ]);
    let fb: RtcpFb = "* ccm fir".parse().unwrap();
    assert_eq!((fb.pt, fb.fb_type.as_str(), fb.subtype.as_deref()), (RtcpFbPt::All, "ccm", Some("fir")));
    let e: ExtMap = "2/sendonly urn:x".parse().unwrap();
    assert_eq!((e.id, e.direction, e.uri.as_str()), (2, Some(Direction::SendOnly), "urn:x"));
    let f: Fingerprint = "SHA-256 ab:cd".parse().unwrap();
    assert_eq!((f.algorithm.as_str(), f.bytes.as_slice()), ("sha-256", &[0xab, 0xcd][..]));
    let c: Candidate = "1 1 udp 2 fd00::2 9 typ host".parse().unwrap();
    assert_eq!(c.socket_addr(), Some("[fd00::2]:9".parse().unwrap()));
    assert_eq!(Candidate::host_udp("1", "192.0.2.1:1".parse().unwrap(), 65535).priority, 2130706431);
}

#[test]
fn malformed_typed_attributes_are_errors() {
    fn bad<T: std::str::FromStr<Err = SdpError> + std::fmt::Debug>(values: &[&str]) {
        for v in values {
            assert!(matches!(v.parse::<T>(), Err(SdpError::BadAttribute { .. })), "{v}");
        }
    }
    bad::<RtpMap>(&["", "abc opus/48000", "200 x/1", "96 VP8", "96 VP8/x", "96 a/1/2/3", "+96 VP8/90000"]);
    bad::<Fmtp>(&["", "x apt=1", "300 a"]);
    bad::<RtcpFb>(&["", "x nack", "96"]);
    bad::<ExtMap>(&["", "0 urn:x", "5000 urn:x", "1/sideways urn:x", "1"]);
    bad::<SsrcAttr>(&["", "x cname:a", "1", "1 :v", "4294967296 cname:a"]);
    bad::<SsrcGroup>(&["", "FID 1 x"]);
    bad::<Msid>(&["", "a b c"]);
    bad::<Rid>(&["", "h", "h both"]);
    bad::<Simulcast>(&["", "send", "send a;;b", "sideways a", "send a send b"]);
    bad::<Group>(&[""]);
    bad::<Setup>(&["", "ACTPASS", "both"]);
    bad::<Fingerprint>(&["", "sha-256", "sha-256 ZZ", "sha-256 A:BC", "sha-256 AB CD"]);
    bad::<Candidate>(&[
        "",
        "1 1 udp 1 1.2.3.4 99999 typ host",
        "1 1 udp 1 1.2.3.4 9 host",
        "1 x udp 1 1.2.3.4 9 typ host",
        "1 1 udp 1 1.2.3.4 9 typ host generation",
        "1 1 udp 1 1.2.3.4 9 typ srflx raddr 1.1.1.1 rport x",
    ]);
}

#[test]
fn session_level_values_stand_for_media() {
    let text = format!(
        "{MINIMAL}a=ice-ufrag:sess\r\na=ice-pwd:sesspwd\r\na=setup:active\r\na=recvonly\r\n\
         a=fingerprint:sha-256 01:02\r\na=extmap:7 urn:x\r\nm=audio 9 RTP/AVP 0\r\nm=video 9 RTP/AVP 96\r\n\
         a=ice-ufrag:med\r\na=setup:actpass\r\na=sendonly\r\na=fingerprint:sha-1 03\r\na=extmap:8 urn:y\r\n"
    );
    let s = SessionDescription::parse(&text).unwrap();
    let (a, v) = (&s.media[0], &s.media[1]);
    assert_eq!((s.media_ice_ufrag(a), s.media_ice_ufrag(v)), (Some("sess"), Some("med")));
    assert_eq!((s.media_ice_pwd(a), s.media_ice_pwd(v)), (Some("sesspwd"), Some("sesspwd")));
    assert_eq!((s.media_setup(a), s.media_setup(v)), (Some(Setup::Active), Some(Setup::ActPass)));
    assert_eq!((s.media_direction(a), s.media_direction(v)), (Direction::RecvOnly, Direction::SendOnly));
    assert_eq!(s.media_fingerprints(a)[0].algorithm, "sha-256");
    assert_eq!(s.media_fingerprints(v)[0].algorithm, "sha-1");
    assert_eq!(s.media_extmaps(v).iter().map(|e| e.id).collect::<Vec<_>>(), [7, 8]);
    let bare = SessionDescription::parse(&format!("{MINIMAL}m=audio 9 RTP/AVP 0\r\n")).unwrap();
    assert_eq!(bare.media_direction(&bare.media[0]), Direction::SendRecv);
}

const LINE_STARTS: &[&str] = &[
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 ",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 ",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=mid:",
    "a=group:BUNDLE 0 1 ",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:sha-256 ",
    "a=setup:",
    "a=rtcp-mux",
    "a=rtpmap:",
    "a=fmtp:",
    "a=rtcp-fb:",
    "a=extmap:",
    "a=ssrc:",
    "a=ssrc-group:FID ",
    "a=rid:",
    "a=simulcast:",
    "a=candidate:",
    "a=sendonly",
    "a=recvonly",
    "c=IN IP4 ",
    "b=AS:",
    "t=0 ",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in ".{0,400}") {
        let _ = SessionDescription::parse(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = SessionDescription::parse_bytes(&b);
    }

    /// SDP-shaped input: what parses re-parses equal, and answering it never panics.
    #[test]
    fn sdp_shaped_text_round_trips(
        lines in proptest::collection::vec((0..LINE_STARTS.len(), "[ -~]{0,24}"), 0..40),
        lf in any::<bool>(),
    ) {
        let nl = if lf { "\n" } else { "\r\n" };
        let mut text = MINIMAL.replace("\r\n", nl);
        for (i, tail) in &lines {
            text.push_str(LINE_STARTS[*i]);
            text.push_str(tail);
            text.push_str(nl);
        }
        if let Ok(s) = SessionDescription::parse(&text) {
            prop_assert_eq!(SessionDescription::parse(&s.to_sdp()).unwrap(), s.clone());
            for mode in [Mode::Publish, Mode::Subscribe(answer_tests::tracks())] {
                if let Ok(a) = answer(&s, &answer_tests::config(mode)) {
                    prop_assert_eq!(SessionDescription::parse(&a.sdp.to_sdp()).unwrap(), a.sdp);
                }
            }
        }
    }

    /// A real offer with one line replaced by noise.
    #[test]
    fn mutated_offer_never_panics(at in 0usize..200, noise in "[ -~]{0,40}") {
        let mut lines: Vec<&str> = CHROMIUM_WHIP.lines().collect();
        let at = at % lines.len();
        lines[at] = &noise;
        let text = lines.join("\r\n");
        if let Ok(s) = SessionDescription::parse(&text) {
            prop_assert_eq!(SessionDescription::parse(&s.to_sdp()).unwrap(), s.clone());
            let _ = answer(&s, &answer_tests::config(Mode::Publish));
        }
    }
}

//! Real browser offers (tests/fixtures/sdp): they parse, re-serialize and
//! re-parse equal, and the router's answers to them have the expected shape.

use corecast_proto::sdp::{
    answer, Answer, AnswerConfig, Attributes, Codec, Direction, Mode, RtcpFbPt, SendTrack, SessionDescription, Setup,
};
use corecast_proto::sdp::{Fingerprint, MediaKind};

const FIXTURES: &[(&str, &str)] = &[
    ("chromium-whip-offer.sdp", include_str!("fixtures/sdp/chromium-whip-offer.sdp")),
    ("chromium-whip-simulcast-offer.sdp", include_str!("fixtures/sdp/chromium-whip-simulcast-offer.sdp")),
    ("chromium-whep-offer.sdp", include_str!("fixtures/sdp/chromium-whep-offer.sdp")),
    ("firefox-whip-offer.sdp", include_str!("fixtures/sdp/firefox-whip-offer.sdp")),
    ("firefox-whip-simulcast-offer.sdp", include_str!("fixtures/sdp/firefox-whip-simulcast-offer.sdp")),
    ("firefox-whep-offer.sdp", include_str!("fixtures/sdp/firefox-whep-offer.sdp")),
];

const FP: [u8; 32] = [0xAB; 32];

fn fixture(name: &str) -> SessionDescription {
    let (_, text) = FIXTURES.iter().find(|(n, _)| *n == name).expect("fixture");
    SessionDescription::parse(text).expect(name)
}

fn config(mode: Mode) -> AnswerConfig {
    AnswerConfig::new(
        "rtr1",
        "routerpasswordrouterpassword",
        FP,
        vec!["192.0.2.10:40000".parse().unwrap(), "[2001:db8::10]:40000".parse().unwrap()],
        mode,
    )
}

fn tracks() -> Vec<SendTrack> {
    vec![
        SendTrack {
            kind: MediaKind::Audio,
            ssrc: 1111,
            rtx_ssrc: None,
            cname: "alice".into(),
            stream_id: "s1".into(),
            track_id: "a1".into(),
        },
        SendTrack {
            kind: MediaKind::Video,
            ssrc: 2222,
            rtx_ssrc: Some(3333),
            cname: "alice".into(),
            stream_id: "s1".into(),
            track_id: "v1".into(),
        },
    ]
}

#[test]
fn every_fixture_round_trips() {
    for (name, text) in FIXTURES {
        let sdp = SessionDescription::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sdp.media.len(), 2, "{name}");
        let written = sdp.to_sdp();
        assert!(written.ends_with("\r\n") && !written.replace("\r\n", "").contains('\n'), "{name}: CRLF");
        let again = SessionDescription::parse(&written).unwrap_or_else(|e| panic!("{name} re-parse: {e}"));
        assert_eq!(again, sdp, "{name}");
        // Unix line endings parse the same.
        assert_eq!(SessionDescription::parse(&written.replace("\r\n", "\n")).unwrap(), sdp, "{name} LF");
    }
}

#[test]
fn chromium_offer_accessors() {
    let o = fixture("chromium-whip-offer.sdp");
    assert_eq!(o.bundle(), Some(vec!["0".to_string(), "1".to_string()]));
    let (a, v) = (&o.media[0], &o.media[1]);
    assert_eq!((a.kind.clone(), a.mid(), a.direction()), (MediaKind::Audio, Some("0"), Some(Direction::SendOnly)));
    assert_eq!(o.media_ice_ufrag(a), Some("IR3G"));
    assert_eq!(o.media_setup(a), Some(Setup::ActPass));
    assert!(a.rtcp_mux() && a.rtcp_rsize());
    let fp = o.media_fingerprints(a);
    assert_eq!(fp.len(), 1);
    assert_eq!((fp[0].algorithm.as_str(), fp[0].bytes.len(), fp[0].bytes[0]), ("sha-256", 32, 0x66));
    let opus = a.rtpmaps().into_iter().find(|r| r.pt == 111).unwrap();
    assert_eq!((opus.codec.as_str(), opus.clock_rate, opus.channels), ("opus", 48000, Some(2)));
    assert_eq!(a.fmtp(111).unwrap().get("useinbandfec"), Some("1"));
    let cands = a.candidates();
    assert_eq!(cands.len(), 4);
    assert_eq!((cands[0].component, cands[0].typ.as_str(), cands[0].port), (1, "host", 42203));
    assert_eq!(cands[2].extensions[0], ("tcptype".to_string(), "active".to_string()));
    assert!(v.rtcp_fbs().iter().any(|f| f.pt == RtcpFbPt::Pt(45) && f.fb_type == "nack" && f.subtype.is_none()));
    assert_eq!(v.extmaps().iter().find(|e| e.uri.ends_with("sdes:mid")).map(|e| e.id), Some(4));
    assert_eq!(v.ssrc_groups()[0].semantics, "FID");
    assert_eq!(v.ssrc_groups()[0].ssrcs, vec![4010287501, 4182131237]);
    assert_eq!(v.msid().unwrap().track_id.as_deref(), Some("6a94d424-2cf5-4194-a94b-8d83be3f9976"));
    let sim = fixture("chromium-whip-simulcast-offer.sdp");
    let rids: Vec<String> = sim.media[1].rids().into_iter().map(|r| r.id).collect();
    assert_eq!(rids, ["h", "m", "l"]);
    assert_eq!(sim.media[1].simulcast().unwrap().send.len(), 3);
}

#[test]
fn firefox_session_level_attributes_apply_to_media() {
    let o = fixture("firefox-whip-offer.sdp");
    let a = &o.media[0];
    assert!(!a.has_attribute("fingerprint"));
    assert_eq!(o.media_fingerprints(a)[0].algorithm, "sha-256");
    assert_eq!(o.media_direction(a), Direction::SendOnly);
    assert!(a.candidates().iter().any(|c| c.component == 2));
}

/// Checks what every answer has.
fn common_shape(name: &str, offer: &SessionDescription, ans: &Answer) {
    let sdp = &ans.sdp;
    let text = sdp.to_sdp();
    assert_eq!(SessionDescription::parse(&text).as_ref(), Ok(sdp), "{name}: the answer re-parses");
    assert!(sdp.ice_lite(), "{name}");
    let mids: Vec<String> = ans.negotiated.media.iter().map(|m| m.mid.clone()).collect();
    assert_eq!(sdp.bundle(), Some(mids), "{name}");
    assert_eq!(sdp.media.len(), offer.media.len(), "{name}");
    for (m, o) in sdp.media.iter().zip(&offer.media) {
        assert_eq!(m.mid(), o.mid(), "{name}");
        assert_eq!(m.kind, o.kind);
        assert_eq!(m.port, 40000);
        assert_eq!(m.setup(), Some(Setup::Passive), "{name}");
        assert!(m.rtcp_mux());
        assert_eq!(m.rtcp_rsize(), o.rtcp_rsize(), "{name}");
        assert_eq!((m.ice_ufrag(), m.ice_pwd()), (Some("rtr1"), Some("routerpasswordrouterpassword")));
        assert_eq!(m.fingerprints(), vec![Fingerprint::sha256(FP)]);
        assert!(text.contains("a=fingerprint:sha-256 AB:AB:"), "{name}");
        let c = m.candidates();
        assert_eq!(c.len(), 2, "{name}");
        assert_eq!(c[0].socket_addr(), Some("192.0.2.10:40000".parse().unwrap()));
        assert!(c.iter().all(|c| c.typ == "host" && c.transport == "udp" && c.component == 1));
        assert!(c[0].priority > c[1].priority);
        assert!(m.end_of_candidates());
        // One codec (plus its RTX, or RED carrying it on an audio line the router sends on).
        let maps = m.rtpmaps();
        let primary: Vec<_> = maps.iter().filter(|r| r.codec != "rtx" && r.codec != "red").collect();
        assert_eq!(primary.len(), 1, "{name}: {maps:?}");
        for red in maps.iter().filter(|r| r.codec == "red") {
            assert_eq!(m.fmtp(red.pt).unwrap().params, format!("{0}/{0}", primary[0].pt), "{name}");
            assert_eq!(m.formats[0], primary[0].pt.to_string(), "{name}: the codec first, then RED");
        }
        assert_eq!(m.formats.len(), maps.len());
        for rtx in maps.iter().filter(|r| r.codec == "rtx") {
            let apt = m.fmtp(rtx.pt).unwrap();
            assert_eq!(apt.get("apt"), Some(primary[0].pt.to_string().as_str()));
        }
        for fb in m.rtcp_fbs() {
            assert_eq!(fb.pt, RtcpFbPt::Pt(primary[0].pt));
            let kind = (fb.fb_type.as_str(), fb.subtype.as_deref());
            let allowed = [("nack", None), ("nack", Some("pli")), ("ccm", Some("fir")), ("transport-cc", None)];
            assert!(allowed.contains(&kind) || kind == ("goog-remb", None), "{name}: {fb:?}");
        }
        // Extension ids are the offer's.
        let offered = offer.media_extmaps(o);
        for e in m.extmaps() {
            assert!(offered.iter().any(|x| x.uri == e.uri && x.id == e.id), "{name}: {e:?}");
        }
    }
    let n = &ans.negotiated;
    assert_eq!(n.remote_fingerprint.0, "sha-256");
    assert_eq!(n.remote_fingerprint.1.len(), 32);
    let first = &offer.media[0];
    assert_eq!(Some(n.remote_ufrag.as_str()), offer.media_ice_ufrag(first));
    assert_eq!(Some(n.remote_pwd.as_str()), offer.media_ice_pwd(first));
    assert_eq!(n.media.len(), 2);
    assert_eq!((n.media[0].codec, n.media[0].clock_rate), (Codec::Opus, 48000));
    assert_eq!(n.media[1].codec, Codec::Av1, "{name}: AV1 is offered and preferred");
    assert_eq!(n.media[1].clock_rate, 90000);
    assert!(n.media[1].rtx_payload_type.is_some());
    let fb = n.media[1].feedback;
    assert!(fb.nack && fb.pli && fb.fir && fb.transport_cc && fb.remb, "{name}");
    assert!(n.media[0].feedback.transport_cc && !n.media[0].feedback.nack);
    let ext = n.extensions;
    assert!(ext.mid.is_some() && ext.transport_cc.is_some() && ext.audio_level.is_some(), "{name}: {ext:?}");
}

#[test]
fn answers_to_whip_offers() {
    for name in ["chromium-whip-offer.sdp", "firefox-whip-offer.sdp"] {
        let offer = fixture(name);
        let ans = answer(&offer, &config(Mode::Publish)).unwrap_or_else(|e| panic!("{name}: {e}"));
        common_shape(name, &offer, &ans);
        for m in &ans.sdp.media {
            assert_eq!(m.direction(), Some(Direction::RecvOnly), "{name}");
            assert!(m.ssrcs().is_empty() && m.msid().is_none());
        }
        let n = &ans.negotiated;
        assert!(n.media.iter().all(|m| m.direction == Direction::RecvOnly && m.send.is_none()));
        assert_eq!(n.media[0].remote_ssrcs.len(), 1);
        let v = &n.media[1].remote_ssrcs;
        assert_eq!(v.len(), 1, "{name}: {v:?}");
        assert!(v[0].rtx.is_some() && v[0].cname.is_some());
        assert!(n.media[1].rids.is_empty());
    }
    let n = answer(&fixture("chromium-whip-offer.sdp"), &config(Mode::Publish)).unwrap().negotiated;
    assert_eq!(n.remote_ufrag, "IR3G");
    assert_eq!((n.media[0].payload_type, n.media[1].payload_type, n.media[1].rtx_payload_type), (111, 45, Some(46)));
    assert_eq!(n.media[0].remote_ssrcs[0].ssrc, 1076209768);
    assert_eq!((n.media[1].remote_ssrcs[0].ssrc, n.media[1].remote_ssrcs[0].rtx), (4010287501, Some(4182131237)));
    let e = n.extensions;
    assert_eq!((e.audio_level, e.abs_send_time, e.transport_cc, e.mid), (Some(1), Some(2), Some(3), Some(4)));
    assert_eq!((e.rid, e.repaired_rid), (Some(10), Some(11)));
    assert!(n.rtcp_rsize);
    let ans = answer(&fixture("chromium-whip-offer.sdp"), &config(Mode::Publish)).unwrap();
    assert_eq!(ans.sdp.media[0].fmtp(111).unwrap().params, "minptime=10;useinbandfec=1");
    let ff = answer(&fixture("firefox-whip-offer.sdp"), &config(Mode::Publish)).unwrap().negotiated;
    assert_eq!((ff.media[1].payload_type, ff.media[1].rtx_payload_type), (99, Some(100)));
    assert!(!ff.rtcp_rsize, "Firefox offers rtcp-rsize on video only");
}

#[test]
fn answers_to_simulcast_whip_offers() {
    for name in ["chromium-whip-simulcast-offer.sdp", "firefox-whip-simulcast-offer.sdp"] {
        let offer = fixture(name);
        let ans = answer(&offer, &config(Mode::Publish)).unwrap_or_else(|e| panic!("{name}: {e}"));
        common_shape(name, &offer, &ans);
        assert_eq!(ans.negotiated.media[1].rids, ["h", "m", "l"], "{name}");
        let v = &ans.sdp.media[1];
        let rids: Vec<String> = v.rids().into_iter().map(|r| format!("{} {:?}", r.id, r.direction)).collect();
        assert_eq!(rids, ["h Recv", "m Recv", "l Recv"]);
        let sim = v.simulcast().unwrap();
        assert!(sim.send.is_empty());
        assert_eq!(sim.recv, vec![vec!["h".to_string()], vec!["m".to_string()], vec!["l".to_string()]]);
    }
}

#[test]
fn answers_to_whep_offers() {
    for name in ["chromium-whep-offer.sdp", "firefox-whep-offer.sdp"] {
        let offer = fixture(name);
        let ans = answer(&offer, &config(Mode::Subscribe(tracks()))).unwrap_or_else(|e| panic!("{name}: {e}"));
        common_shape(name, &offer, &ans);
        let (a, v) = (&ans.sdp.media[0], &ans.sdp.media[1]);
        assert_eq!((a.direction(), v.direction()), (Some(Direction::SendOnly), Some(Direction::SendOnly)));
        assert_eq!(a.msid().map(|m| (m.stream_id, m.track_id)), Some(("s1".into(), Some("a1".into()))));
        let ssrcs: Vec<String> = a.ssrcs().iter().map(|s| s.to_string()).collect();
        assert_eq!(ssrcs, ["1111 cname:alice", "1111 msid:s1 a1"]);
        assert!(a.ssrc_groups().is_empty());
        let g = v.ssrc_groups();
        assert_eq!((g[0].semantics.as_str(), g[0].ssrcs.clone()), ("FID", vec![2222, 3333]));
        assert_eq!(v.ssrcs().len(), 4);
        let n = &ans.negotiated;
        assert_eq!(n.media[0].send.as_ref().map(|t| t.ssrc), Some(1111));
        assert_eq!(n.media[1].send.as_ref().and_then(|t| t.rtx_ssrc), Some(3333));
        assert!(n.media.iter().all(|m| m.direction == Direction::SendOnly));
    }
    // No video track: the video m-line is inactive; no tracks at all: both.
    let offer = fixture("chromium-whep-offer.sdp");
    let audio_only = tracks().into_iter().take(1).collect();
    let ans = answer(&offer, &config(Mode::Subscribe(audio_only))).unwrap();
    assert_eq!(ans.sdp.media[1].direction(), Some(Direction::Inactive));
    assert_eq!(ans.negotiated.media[1].direction, Direction::Inactive);
    let ans = answer(&offer, &config(Mode::Subscribe(Vec::new()))).unwrap();
    assert!(ans.sdp.media.iter().all(|m| m.direction() == Some(Direction::Inactive)));
}

#[test]
fn video_preference_is_the_routers() {
    let offer = fixture("chromium-whip-offer.sdp");
    let mut cfg = config(Mode::Publish);
    cfg.video_codecs = vec![corecast_proto::sdp::VideoCodec::H264];
    let n = answer(&offer, &cfg).unwrap().negotiated;
    // packetization-mode=1 with profile-level-id 42e01f is 108 (rtx 109).
    assert_eq!((n.media[1].codec, n.media[1].payload_type, n.media[1].rtx_payload_type), (Codec::H264, 108, Some(109)));
    cfg.video_codecs = vec![corecast_proto::sdp::VideoCodec::Vp8, corecast_proto::sdp::VideoCodec::Av1];
    let n = answer(&offer, &cfg).unwrap().negotiated;
    assert_eq!((n.media[1].codec, n.media[1].payload_type), (Codec::Vp8, 96));
}

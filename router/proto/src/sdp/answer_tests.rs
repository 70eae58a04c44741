//! What the router refuses to answer, and how it rejects what it cannot serve.

use super::*;

const WHIP: &str = include_str!("../../tests/fixtures/sdp/chromium-whip-offer.sdp");
const WHEP: &str = include_str!("../../tests/fixtures/sdp/chromium-whep-offer.sdp");

pub(super) fn config(mode: Mode) -> AnswerConfig {
    AnswerConfig::new("rtr1", "routerpasswordrouterpassword", [7; 32], vec!["192.0.2.10:40000".parse().unwrap()], mode)
}

pub(super) fn tracks() -> Vec<SendTrack> {
    let t = |kind, ssrc, rtx_ssrc| SendTrack {
        kind,
        ssrc,
        rtx_ssrc,
        cname: "c".into(),
        stream_id: "s".into(),
        track_id: format!("t{ssrc}"),
    };
    vec![t(MediaKind::Audio, 1, None), t(MediaKind::Video, 2, Some(3))]
}

fn edit(text: &str, f: impl Fn(&str) -> Option<String>) -> SessionDescription {
    let lines: Vec<String> = text.lines().filter_map(&f).collect();
    SessionDescription::parse(&lines.join("\r\n")).unwrap()
}

fn without(prefix: &str) -> SessionDescription {
    edit(WHIP, |l| (!l.starts_with(prefix)).then(|| l.to_string()))
}

fn replaced(from: &str, to: &str) -> SessionDescription {
    SessionDescription::parse(&WHIP.replace(from, to)).unwrap()
}

fn publish(offer: &SessionDescription) -> Result<Answer, AnswerError> {
    answer(offer, &config(Mode::Publish))
}

#[test]
fn mandatory_offer_attributes() {
    assert_eq!(publish(&without("a=fingerprint")), Err(AnswerError::Missing("a=fingerprint with a sha-256 digest")));
    assert_eq!(
        publish(&replaced("fingerprint:sha-256", "fingerprint:sha-1")),
        Err(AnswerError::Missing("a=fingerprint with a sha-256 digest"))
    );
    assert_eq!(publish(&without("a=ice-ufrag")), Err(AnswerError::Missing("a=ice-ufrag")));
    assert_eq!(publish(&without("a=ice-pwd")), Err(AnswerError::Missing("a=ice-pwd")));
    assert_eq!(
        publish(&without("a=rtcp-mux")),
        Err(AnswerError::Missing("a=rtcp-mux (RTP and RTCP must share a port)"))
    );
    assert_eq!(publish(&without("a=setup")), Err(AnswerError::Missing("a=setup")));
    assert_eq!(publish(&replaced("setup:actpass", "setup:passive")), Err(AnswerError::SetupPassive));
    assert_eq!(publish(&replaced("setup:actpass", "setup:holdconn")), Err(AnswerError::Setup("holdconn".into())));
    assert_eq!(publish(&replaced("setup:actpass", "setup:bogus")), Err(AnswerError::Setup("bogus".into())));
    assert!(publish(&replaced("setup:actpass", "setup:active")).is_ok());
    assert_eq!(publish(&replaced("a=group:BUNDLE", "a=ice-lite\r\na=group:BUNDLE")), Err(AnswerError::IceLite));
    for e in [AnswerError::Missing("a=ice-ufrag"), AnswerError::SetupPassive, AnswerError::NoMedia] {
        assert!(!e.to_string().is_empty());
    }
    assert!(AnswerError::Missing("a=rtcp-mux").to_string().contains("a=rtcp-mux"));
}

#[test]
fn only_a_datachannel_is_refused() {
    let text = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:\
        AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";
    let offer = SessionDescription::parse(text).unwrap();
    assert_eq!(publish(&offer), Err(AnswerError::NoMedia));
    assert_eq!(answer(&offer, &config(Mode::Subscribe(tracks()))), Err(AnswerError::NoMedia));
}

#[test]
fn unservable_sections_are_rejected_in_place() {
    let data = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=sctp-port:5000\r\n";
    let vp9 = "m=video 9 UDP/TLS/RTP/SAVPF 98\r\na=mid:3\r\na=rtcp-mux\r\na=rtpmap:98 VP9/90000\r\na=sendonly\r\n";
    let text = format!("{}\r\n{data}{vp9}", WHIP.trim_end()).replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2 3");
    let offer = SessionDescription::parse(&text).unwrap();
    let a = publish(&offer).unwrap();
    assert_eq!(a.sdp.media.len(), 4);
    assert_eq!(a.sdp.bundle(), Some(vec!["0".to_string(), "1".to_string()]));
    for (m, mid) in a.sdp.media[2..].iter().zip(["2", "3"]) {
        assert_eq!((m.port, m.mid()), (0, Some(mid)));
        assert!(m.candidates().is_empty() && m.rtpmaps().is_empty());
    }
    assert_eq!(a.sdp.media[2].kind, MediaKind::Application);
    assert_eq!(a.sdp.media[2].formats, ["webrtc-datachannel"]);
    assert_eq!(a.negotiated.media.len(), 2);
    assert_eq!(SessionDescription::parse(&a.sdp.to_sdp()).unwrap(), a.sdp);

    // Not in the offer's BUNDLE group, or already rejected by the offerer.
    let a = publish(&replaced("a=group:BUNDLE 0 1", "a=group:BUNDLE 1")).unwrap();
    assert_eq!((a.sdp.media[0].port, a.negotiated.media.len()), (0, 1));
    assert_eq!(a.sdp.bundle(), Some(vec!["1".to_string()]));
    let a = publish(&replaced("m=audio 42203", "m=audio 0")).unwrap();
    assert_eq!(a.sdp.media[0].port, 0);
    // Plain RTP/AVP is not WebRTC.
    let a = publish(&replaced("m=audio 42203 UDP/TLS/RTP/SAVPF", "m=audio 42203 RTP/AVP")).unwrap();
    assert_eq!(a.sdp.media[0].port, 0);
    // No Opus: the audio section is rejected, video still served.
    let a = publish(&replaced("opus/48000/2", "speex/48000/2")).unwrap();
    assert_eq!((a.sdp.media[0].port, a.negotiated.media[0].kind.clone()), (0, MediaKind::Video));
}

#[test]
fn bundle_and_mids() {
    assert_eq!(publish(&without("a=group:BUNDLE")), Err(AnswerError::NoBundle));
    assert_eq!(publish(&replaced("a=mid:1", "a=mid:0")), Err(AnswerError::DuplicateMid("0".into())));
    assert_eq!(publish(&without("a=mid:")), Err(AnswerError::Missing("a=mid on an audio/video m-line")));
    let long = "x".repeat(17);
    assert_eq!(publish(&replaced("a=mid:1", &format!("a=mid:{long}"))), Err(AnswerError::BadMid(long)));
    // One section without BUNDLE is fine (and the answer has no group).
    let one = edit(WHIP, |l| (!l.starts_with("a=group")).then(|| l.to_string()));
    let mut one = one;
    one.media.truncate(1);
    let a = publish(&one).unwrap();
    assert_eq!(a.sdp.bundle(), None);
}

#[test]
fn extension_ids_must_agree_across_the_bundle() {
    let offer = SessionDescription::parse(&WHIP.replacen(
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10",
        "a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10",
        1,
    ))
    .unwrap();
    assert!(matches!(publish(&offer), Err(AnswerError::ExtensionConflict(_))), "{:?}", publish(&offer));
    // Id 1 is the audio level in audio and the rid in video.
    let offer = replaced(
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    );
    assert!(matches!(publish(&offer), Err(AnswerError::ExtensionConflict(_))));
    // Unsupported extensions and ids over 255 are left out, not refused.
    let offer = replaced("a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "a=extmap:300 urn:x");
    let n = publish(&offer).unwrap().negotiated;
    assert_eq!(n.extensions.abs_send_time, None);
}

#[test]
fn directions() {
    let whep = SessionDescription::parse(WHEP).unwrap();
    assert_eq!(publish(&whep), Err(AnswerError::NothingToReceive));
    let whip = SessionDescription::parse(WHIP).unwrap();
    let a = answer(&whip, &config(Mode::Subscribe(tracks()))).unwrap();
    assert!(a.sdp.media.iter().all(|m| m.direction() == Some(Direction::Inactive) && m.ssrcs().is_empty()));
    let sendrecv = replaced("a=sendonly", "a=sendrecv");
    assert!(publish(&sendrecv).unwrap().negotiated.media.iter().all(|m| m.direction == Direction::RecvOnly));
    let a = answer(&sendrecv, &config(Mode::Subscribe(tracks()))).unwrap();
    assert!(a.negotiated.media.iter().all(|m| m.direction == Direction::SendOnly));
    // Each track once: two video sections, one video track.
    let text = format!("{}\r\n", WHEP.trim_end()).replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2");
    let second_video = WHEP[WHEP.find("m=video").unwrap()..].replace("a=mid:1", "a=mid:2");
    let offer = SessionDescription::parse(&format!("{text}{second_video}")).unwrap();
    let a = answer(&offer, &config(Mode::Subscribe(tracks()))).unwrap();
    let dirs: Vec<Direction> = a.negotiated.media.iter().map(|m| m.direction).collect();
    assert_eq!(dirs, [Direction::SendOnly, Direction::SendOnly, Direction::Inactive]);
    assert_eq!(a.negotiated.media[2].send, None);
}

#[test]
fn rtx_only_when_negotiated() {
    let offer = edit(WHEP, |l| (!l.contains("apt=45")).then(|| l.to_string()));
    let a = answer(&offer, &config(Mode::Subscribe(tracks()))).unwrap();
    let v = &a.negotiated.media[1];
    assert_eq!((v.codec, v.rtx_payload_type), (Codec::Av1, None));
    assert_eq!(v.send.as_ref().map(|t| (t.ssrc, t.rtx_ssrc)), Some((2, None)));
    assert!(a.sdp.media[1].ssrc_groups().is_empty());
    assert_eq!(a.sdp.media[1].formats, ["45"]);
}

#[test]
fn bad_config_is_an_error() {
    let mut cfg = config(Mode::Publish);
    cfg.ice_ufrag = "ab".into();
    let offer = SessionDescription::parse(WHIP).unwrap();
    assert!(matches!(answer(&offer, &cfg), Err(AnswerError::Config(_))));
    let mut cfg = config(Mode::Publish);
    cfg.ice_pwd = "short".into();
    assert!(matches!(answer(&offer, &cfg), Err(AnswerError::Config(_))));
    let mut cfg = config(Mode::Publish);
    cfg.candidates.clear();
    assert!(matches!(answer(&offer, &cfg), Err(AnswerError::Config(_))));
    let mut t = tracks();
    t[0].cname = "has space".into();
    assert!(matches!(answer(&offer, &config(Mode::Subscribe(t))), Err(AnswerError::Config(_))));
    let mut t = tracks();
    t[0].kind = MediaKind::Application;
    assert!(matches!(answer(&offer, &config(Mode::Subscribe(t))), Err(AnswerError::Config(_))));
}

#[test]
fn ipv6_first_candidate() {
    let mut cfg = config(Mode::Publish);
    cfg.candidates = vec!["[2001:db8::1]:5000".parse().unwrap()];
    let a = publish(&SessionDescription::parse(WHIP).unwrap()).unwrap();
    assert_eq!(a.sdp.media[0].connection.as_ref().unwrap().addr_type, "IP4");
    let a = answer(&SessionDescription::parse(WHIP).unwrap(), &cfg).unwrap();
    let c = a.sdp.media[0].connection.as_ref().unwrap();
    assert_eq!((c.addr_type.as_str(), c.address.as_str(), a.sdp.media[0].port), ("IP6", "2001:db8::1", 5000));
}

/// RED (RFC 2198) for Opus is answered where the router sends audio (a WHEP
/// leg: the router may send it RED on a lossy link), after Opus on the
/// m-line, and never to a publisher (whose RED the router would not read).
#[test]
fn red_only_where_the_router_sends_audio() {
    let whep = answer(&SessionDescription::parse(WHEP).unwrap(), &config(Mode::Subscribe(tracks()))).unwrap();
    let audio = whep.negotiated.media.iter().find(|m| m.kind == MediaKind::Audio).unwrap();
    assert_eq!((audio.payload_type, audio.red_payload_type), (111, Some(63)));
    let text = whep.sdp.to_sdp();
    assert!(text.contains("m=audio 40000 UDP/TLS/RTP/SAVPF 111 63\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:63 red/48000/2\r\n") && text.contains("a=fmtp:63 111/111\r\n"), "{text}");
    let whip = publish(&SessionDescription::parse(WHIP).unwrap()).unwrap();
    let audio = whip.negotiated.media.iter().find(|m| m.kind == MediaKind::Audio).unwrap();
    assert_eq!(audio.red_payload_type, None);
    assert!(!whip.sdp.to_sdp().contains("red/48000"));
    // RED for another codec than the chosen Opus is not taken.
    let other = SessionDescription::parse(&WHEP.replace("a=fmtp:63 111/111", "a=fmtp:63 110/110")).unwrap();
    let a = answer(&other, &config(Mode::Subscribe(tracks()))).unwrap();
    assert_eq!(a.negotiated.media.iter().find(|m| m.kind == MediaKind::Audio).unwrap().red_payload_type, None);
}

/// A WHEP viewer that offers the Dependency Descriptor (Chromium does after
/// `setHeaderExtensionsToNegotiate`) gets it, with `extmap-allow-mixed`:
/// the router forwards the publisher's descriptors, whose template
/// structure needs the two-byte header form. Without `extmap-allow-mixed`
/// the descriptor is not taken.
#[test]
fn a_viewer_takes_the_dependency_descriptor_with_two_byte_headers() {
    const DD: &str = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";
    let offered = WHEP
        .replace("a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space", &format!("a=extmap:12 {DD}"));
    let a = answer(&SessionDescription::parse(&offered).unwrap(), &config(Mode::Subscribe(tracks()))).unwrap();
    assert_eq!((a.negotiated.extensions.dependency_descriptor, a.negotiated.extensions.allow_mixed), (Some(12), true));
    let text = a.sdp.to_sdp();
    assert!(text.contains("a=extmap-allow-mixed\r\n") && text.contains(&format!("a=extmap:12 {DD}\r\n")), "{text}");
    let plain = offered.replace("a=extmap-allow-mixed\r\n", "").replace("a=extmap-allow-mixed\n", "");
    let a = answer(&SessionDescription::parse(&plain).unwrap(), &config(Mode::Subscribe(tracks()))).unwrap();
    assert_eq!((a.negotiated.extensions.dependency_descriptor, a.negotiated.extensions.allow_mixed), (None, false));
    let text = a.sdp.to_sdp();
    assert!(!text.contains("allow-mixed") && !text.contains(DD), "{text}");
    // The fixture as Chromium offers it by default: no descriptor, two-byte headers allowed.
    let a = answer(&SessionDescription::parse(WHEP).unwrap(), &config(Mode::Subscribe(tracks()))).unwrap();
    assert_eq!((a.negotiated.extensions.dependency_descriptor, a.negotiated.extensions.allow_mixed), (None, true));
}

//! SDP: the parser never panics on arbitrary bytes; what parses writes back
//! and re-parses equal, and answering it (publish and subscribe) never panics
//! and yields an answer that re-parses equal (when within the size limit).
#![no_main]
use corecast_proto::sdp::{answer, limits, AnswerConfig, MediaKind, Mode, SendTrack, SessionDescription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = SessionDescription::parse_bytes(data) else { return };
    let again = SessionDescription::parse(&offer.to_sdp()).expect("what parses re-parses");
    assert_eq!(again, offer);
    let track = |kind, ssrc| SendTrack {
        kind,
        ssrc,
        rtx_ssrc: Some(ssrc + 1),
        cname: "cname".into(),
        stream_id: "stream".into(),
        track_id: format!("track{ssrc}"),
    };
    let tracks = vec![track(MediaKind::Audio, 10), track(MediaKind::Video, 20)];
    for mode in [Mode::Publish, Mode::Subscribe(tracks)] {
        let cfg = AnswerConfig::new(
            "rtr1",
            "routerpasswordrouterpassword",
            [0x5a; 32],
            vec!["192.0.2.1:40000".parse().unwrap(), "[2001:db8::1]:40000".parse().unwrap()],
            mode,
        );
        if let Ok(a) = answer(&offer, &cfg) {
            let text = a.sdp.to_sdp();
            if text.len() > limits::MAX_SDP_BYTES {
                continue; // an answer to a 64-section offer can outgrow the offer limit
            }
            assert_eq!(SessionDescription::parse(&text).expect("the answer parses"), a.sdp);
        }
    }
});

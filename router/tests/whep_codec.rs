//! A WHEP viewer of one participant is answered in the codec that
//! participant publishes (the router forwards, it does not transcode): a
//! browser offering AV1, VP8 and H.264 gets VP8 for a VP8 publisher and
//! H.264 for an H.264 one (OBS and ffmpeg publish H.264), not the router's
//! own first choice.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corecast_client::Client;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{Pt, SeqNo};
use corecast_router::server::{RouterServer, ServerConfig};
use corecast_router::webrtc::{Subscribe, WebRtcOffer};

const WHEP_OFFER: &str = include_str!("../proto/tests/fixtures/sdp/chromium-whep-offer.sdp");

/// The codec names of the answer's video section, in its order.
fn video_codecs(answer: &str) -> Vec<String> {
    let video = answer.split("m=").find(|m| m.starts_with("video")).unwrap_or_default();
    video
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|c| c.split('/').next().unwrap_or_default().to_string())
        .filter(|c| c != "rtx" && c != "red" && c != "ulpfec")
        .collect()
}

#[test]
fn a_viewer_is_answered_in_the_codec_its_publisher_sends() {
    let server = RouterServer::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise_ip: None,
        workers: 1,
        cpus: Vec::new(),
        backend: "basic".to_string(),
        core: corecast_core::RouterConfig {
            join_secret: Some(corecast_proto::join_key::JoinSecret::dev()),
            ..Default::default()
        },
        public_key: token::dev_signing_key().verifying_key(),
        io: Default::default(),
    })
    .expect("router starts");
    let router = server.addresses()[0];
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    // Native publishers' payload types: 96 VP8, 102 H.264 (the router's native format).
    for (pid, pt, want) in [(1u64, 96u8, "VP8"), (2, 102, "H264")] {
        let call = CallId(rand::random());
        let claims =
            Claims { call_id: call, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms: exp };
        let tok = token::sign(&token::dev_signing_key(), &claims).to_vec();
        let publisher = Client::join_dev(router, &tok, pid, Quality::Hd).unwrap();
        let video = publisher.ssrcs().1;
        for seq in 0..5u16 {
            let p = RtpPacket { pt: Pt(pt), seq: SeqNo(seq), ssrc: video, payload: vec![0; 100], ..Default::default() };
            publisher.send_packet(&p.to_vec().unwrap()).unwrap();
        }
        // The router has seen its first packet (bounded wait; one worker: worker 0).
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.video_codec_of(0, call, ParticipantId(pid)).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let answer = server
            .open_webrtc(WebRtcOffer {
                call,
                participant: ParticipantId(100 + pid),
                role: Role::Subscriber,
                subscribe: Subscribe::Participant(ParticipantId(pid)),
                offer: WHEP_OFFER.to_string(),
                expires_unix_ms: 0,
                max_fps: None,
                max_height: None,
                last_n: None,
            })
            .expect("the router answers")
            .answer;
        assert_eq!(video_codecs(&answer).first().map(String::as_str), Some(want), "{answer}");
    }
}

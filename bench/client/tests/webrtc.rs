//! A WebRTC publisher (WHIP) and a WebRTC subscriber (WHEP) through a real
//! router on loopback: legs opened in-process with `RouterServer::open_webrtc`
//! (what the calls service's WHIP/WHEP endpoints call), ICE, DTLS and SRTP
//! over UDP, and every payload arriving byte for byte after decryption.
//!
//! Modest rates and bounded waits: it must pass on a loaded 2-core machine.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use corecast_client::webrtc::sdp::{AV1_PT, OPUS_PT};
use corecast_client::webrtc::{PeerConfig, UdpPeer, WebRtcPeer};
use corecast_proto::rtp::RtpPacket;
use corecast_proto::token::{self, CallId, ParticipantId, Role};
use corecast_proto::{MediaTime, Pt, SeqNo, Ssrc};
use corecast_router::server::{RouterServer, ServerConfig};
use corecast_router::webrtc::{Subscribe, WebRtcOffer};

const AUDIO: u32 = 0xA1A1;
const VIDEO: u32 = 0xB1B1;

fn start() -> RouterServer {
    RouterServer::start(ServerConfig {
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
    .expect("router starts")
}

fn join(server: &RouterServer, call: CallId, pid: u64, publish: bool, watch: Option<u64>) -> UdpPeer {
    let publish_ssrcs = publish.then_some((AUDIO, VIDEO));
    let mut peer =
        WebRtcPeer::new(PeerConfig { publish: publish_ssrcs, cname: format!("p{pid}"), srtp_profiles: vec![] })
            .unwrap();
    let answer = server
        .open_webrtc(WebRtcOffer {
            call,
            participant: ParticipantId(pid),
            role: if publish { Role::Publisher } else { Role::Subscriber },
            subscribe: watch.map_or(Subscribe::Nothing, |w| Subscribe::Participant(ParticipantId(w))),
            offer: peer.offer(),
            expires_unix_ms: 0,
            max_fps: None,
            max_height: None,
            last_n: None,
        })
        .expect("the router answers");
    peer.accept_answer(&answer.answer, Instant::now()).expect("the answer is usable");
    let mut udp = UdpPeer::new(UdpSocket::bind("127.0.0.1:0").unwrap(), peer);
    udp.connect(Duration::from_secs(15)).expect("ICE and DTLS complete");
    udp
}

fn packet(i: u16) -> RtpPacket {
    let audio = i.is_multiple_of(5);
    RtpPacket {
        pt: Pt(if audio { OPUS_PT } else { AV1_PT }),
        seq: SeqNo(i),
        timestamp: MediaTime(u32::from(i) * 3000),
        ssrc: Ssrc(if audio { AUDIO } else { VIDEO }),
        payload: (0..if audio { 80 } else { 1100 }).map(|b: u32| (b as u16 ^ i.wrapping_mul(31)) as u8).collect(),
        ..Default::default()
    }
}

#[test]
fn a_webrtc_publisher_reaches_a_webrtc_subscriber_byte_for_byte() {
    let server = start();
    let call = CallId(rand::random());
    let mut publisher = join(&server, call, 1, true, None);
    let mut subscriber = join(&server, call, 2, false, Some(1));
    // Both offer every profile (dimpl's client: AES-256-GCM first); the
    // router prefers AES-128-GCM.
    assert_eq!(publisher.peer.profile(), Some(corecast_proto::srtp::SrtpProfile::AeadAes128Gcm));
    assert_eq!(subscriber.peer.profile(), publisher.peer.profile());

    const N: u16 = 200;
    let sent: BTreeMap<(u32, u16), Vec<u8>> = (0..N).map(packet).map(|p| ((p.ssrc.0, p.seq.0), p.payload)).collect();
    let received = std::thread::scope(|s| {
        let rx = s.spawn(|| {
            let mut got = BTreeMap::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while got.len() < usize::from(N) {
                let Some(plain) = subscriber.recv_rtp(deadline).unwrap() else { break };
                let p = RtpPacket::parse(&plain).expect("the router sends RTP");
                got.insert((p.ssrc.0, p.seq.0), (p.pt, p.payload));
            }
            got
        });
        // 200 packets at ~400/s, with one pause for the router to learn the streams.
        for i in 0..N {
            publisher.send_rtp(&packet(i).to_vec().unwrap()).unwrap();
            std::thread::sleep(Duration::from_micros(2500));
        }
        rx.join().unwrap()
    });
    assert_eq!(received.len(), usize::from(N), "every packet arrives once");
    for ((ssrc, seq), (pt, payload)) in &received {
        assert_eq!(Some(payload), sent.get(&(*ssrc, *seq)), "payload of {ssrc:#x}/{seq} differs");
        let want = if *ssrc == AUDIO { OPUS_PT } else { AV1_PT };
        assert_eq!(pt.0, want, "the subscriber's payload type");
    }
    assert_eq!(subscriber.peer.stats().srtp_rejected, 0);
    server.stop();
}

#[test]
fn a_router_certificate_that_does_not_match_the_answer_is_refused() {
    let server = start();
    let call = CallId(rand::random());
    let mut peer =
        WebRtcPeer::new(PeerConfig { publish: Some((AUDIO, VIDEO)), cname: "p1".into(), srtp_profiles: vec![] })
            .unwrap();
    let answer = server
        .open_webrtc(WebRtcOffer {
            call,
            participant: ParticipantId(1),
            role: Role::Publisher,
            subscribe: Subscribe::Nothing,
            offer: peer.offer(),
            expires_unix_ms: 0,
            max_fps: None,
            max_height: None,
            last_n: None,
        })
        .expect("the router answers");
    // Another certificate's fingerprint in place of the router's.
    let fp = |b: u8| (0..32).map(|_| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let text: String = answer
        .answer
        .lines()
        .map(|l| if l.starts_with("a=fingerprint:") { format!("a=fingerprint:sha-256 {}", fp(0xAB)) } else { l.into() })
        .collect::<Vec<_>>()
        .join("\r\n");
    peer.accept_answer(&text, Instant::now()).unwrap();
    let mut udp = UdpPeer::new(UdpSocket::bind("127.0.0.1:0").unwrap(), peer);
    let started = Instant::now();
    let e = udp.connect(Duration::from_secs(15)).expect_err("the handshake must fail");
    assert!(format!("{e:#}").contains("fingerprint"), "{e:#}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at the certificate, not by a timeout");
    assert!(!udp.peer.connected());
    server.stop();
}

/// A native corecast client (the STUN-framed join, SRTP keyed from its join key) in the same call.
fn native(server: &RouterServer, call: CallId, pid: u64) -> corecast_client::client::Client {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let claims = token::Claims {
        call_id: call,
        participant_id: ParticipantId(pid),
        role: Role::Publisher,
        expires_at_ms: now_ms + 60_000,
    };
    let tok = token::sign(&token::dev_signing_key(), &claims);
    corecast_client::client::Client::join_dev(server.address_for(&call), &tok, pid, Default::default())
        .expect("the native client joins")
}

#[test]
fn native_and_webrtc_participants_see_each_others_media() {
    let server = start();
    let call = CallId(rand::random());
    let n = native(&server, call, 7);
    let (n_audio, n_video) = corecast_client::client::ssrcs_for(7);
    // A browser-like leg watching the native participant, and a browser-like publisher.
    let mut viewer = join(&server, call, 8, false, Some(7));
    let mut publisher = join(&server, call, 9, true, None);
    n.socket().set_read_timeout(Some(Duration::from_millis(200))).unwrap();

    const N: u16 = 60;
    let (from_native, to_native) = std::thread::scope(|s| {
        let rx = s.spawn(|| viewer.collect_rtp(usize::from(N), Instant::now() + Duration::from_secs(20)).unwrap());
        let native_rx =
            s.spawn(|| n.collect_rtp(&[AUDIO, VIDEO], usize::from(N), Instant::now() + Duration::from_secs(20)));
        for i in 0..N {
            // The native client sends (over SRTP) corecast's payload types (Opus 111, AV1 45).
            let mut p = packet(i);
            p.ssrc = Ssrc(if p.ssrc.0 == AUDIO { n_audio.0 } else { n_video.0 });
            n.send_packet(&p.to_vec().unwrap()).unwrap();
            publisher.send_rtp(&packet(i).to_vec().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        (rx.join().unwrap(), native_rx.join().unwrap())
    });
    assert_eq!(from_native.len(), usize::from(N), "the WebRTC viewer gets every packet of the native client");
    for ((ssrc, seq), (pt, payload)) in &from_native {
        let want = packet(*seq);
        assert_eq!(payload, &want.payload, "{ssrc:#x}/{seq}");
        assert_eq!(pt.0, if *ssrc == n_audio.0 { OPUS_PT } else { AV1_PT });
    }
    assert_eq!(to_native.len(), usize::from(N), "the native client gets every packet of the WebRTC publisher");
    for ((ssrc, seq), payload) in &to_native {
        assert_eq!(payload, &packet(*seq).payload, "{ssrc:#x}/{seq} arrives as sent, decrypted");
    }
    server.stop();
}

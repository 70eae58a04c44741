//! Simulcast over real sockets (the mmsg backend, SRTP legs): a native
//! publisher adds two layers to its video stream with a `Simulcast`
//! message; the receiver gets one layer, under the first SSRC, and a REMB
//! below the top layer moves it down at the next keyframe.
//!
//! Modest rates and bounded waits: this must pass on a loaded 2-core machine.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corecast_client::Client;
use corecast_core::RouterConfig;
use corecast_proto::join_key::JoinSecret;
use corecast_proto::rtcp::{self, RtcpPacket};
use corecast_proto::rtp::{RtpHeader, RtpPacket};
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_proto::{Pt, SeqNo, Ssrc};
use corecast_router::server::{RouterServer, ServerConfig};

fn token_for(call: CallId, pid: u64) -> Vec<u8> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    let claims =
        Claims { call_id: call, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms: exp };
    token::sign(&token::dev_signing_key(), &claims).to_vec()
}

/// A VP8 packet of layer `k` on `ssrc`: `size` bytes of payload, the first
/// of a keyframe or not, the layer in its third byte.
fn vp8(ssrc: Ssrc, seq: u16, k: u8, size: usize, key: bool) -> Vec<u8> {
    let mut payload = vec![k; size];
    payload[0] = 0x10;
    payload[1] = u8::from(!key);
    let pkt = RtpPacket { pt: Pt(96), seq: SeqNo(seq), ssrc, payload, ..Default::default() };
    pkt.to_vec().unwrap()
}

/// The layers (SSRC, layer byte) of the RTP packets `sock` gets until
/// `deadline`, opened with the receiver's keys.
fn layers_received(sock: &UdpSocket, rx: &Client, deadline: Instant) -> Vec<(u32, u8)> {
    let mut opener = rx.opener();
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let Ok((len, _)) = sock.recv_from(&mut buf) else { continue };
        let Some(plain) = opener.open(&buf[..len]) else { continue };
        if corecast_proto::demux::classify(plain) != corecast_proto::demux::Kind::Rtp {
            continue;
        }
        if let Ok(h) = RtpHeader::parse(plain) {
            if let Some(&k) = h.payload(plain).get(2) {
                got.push((h.ssrc.0, k));
            }
        }
    }
    got
}

#[test]
fn a_native_receiver_gets_one_layer_and_moves_down_on_a_low_estimate() {
    let server = RouterServer::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise_ip: None,
        workers: 1,
        cpus: Vec::new(),
        backend: "mmsg".into(),
        core: RouterConfig { join_secret: Some(JoinSecret::dev()), ..RouterConfig::default() },
        public_key: token::dev_signing_key().verifying_key(),
        io: Default::default(),
    })
    .expect("router starts");
    let router: SocketAddr = server.addresses()[0];
    let call = CallId(rand::random());
    let publisher = Client::join_dev(router, &token_for(call, 1), 1, Quality::Hd).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let tok2 = token_for(call, 2);
    let key2 = JoinSecret::dev().key_for(&tok2);
    let receiver = Client::join_on(sock.try_clone().unwrap(), router, &tok2, &key2, 2, Quality::Hd).unwrap();
    let video = publisher.ssrcs().1;
    let layers = [video, Ssrc(video.0 + 100), Ssrc(video.0 + 200)];
    publisher.declare_simulcast(&layers).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Layers of 40, 120 and 400 kbit/s: 10, 30 and 100 packets/s over a
    // second (sent in bursts every 10 ms), keyframes at the start.
    let sizes = [500usize, 500, 500];
    let per_tick = |tick: u32| [u32::from(tick.is_multiple_of(10)), u32::from(tick % 10 < 3), 1];
    let mut seqs = [0u16; 3];
    // Keyframes: every layer's first packet, and the middle layer's every half second from `mid_keys` on.
    let mut send_for = |ticks: std::ops::Range<u32>, mid_keys: bool| {
        for tick in ticks {
            for k in (0..3).rev() {
                for _ in 0..per_tick(tick)[k] {
                    let key = tick == 0 || (mid_keys && k == 1 && tick.is_multiple_of(50));
                    publisher.send_packet(&vp8(layers[k], seqs[k], k as u8, sizes[k], key)).unwrap();
                    seqs[k] = seqs[k].wrapping_add(1);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    send_for(0..100, false);
    let before = layers_received(&sock, &receiver, Instant::now() + Duration::from_millis(300));
    assert!(before.len() >= 50, "the receiver got media: {}", before.len());
    assert!(before.iter().all(|&(s, k)| s == video.0 && k == 2), "only the top layer, under the first SSRC");
    // The receiver's estimate: 200 kbit/s fits the middle layer (there is no audio); the
    // router asks for its keyframe (this publisher does not answer: it sends them anyway).
    let remb = rtcp::Remb { sender_ssrc: receiver.ssrcs().0, bitrate_bps: 200_000, ssrcs: vec![] };
    receiver.send_packet(&rtcp::write_compound(&[RtcpPacket::Remb(remb)]).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    send_for(100..300, true);
    let after = layers_received(&sock, &receiver, Instant::now() + Duration::from_millis(300));
    let tail: Vec<u8> = after.iter().rev().take(10).map(|&(_, k)| k).collect();
    assert!(after.iter().all(|&(s, _)| s == video.0), "still under the first SSRC");
    assert!(tail.iter().all(|&k| k == 1), "the middle layer after its keyframe: {tail:?}");
    let switches: u64 = server.stats().iter().map(|w| w.router.layer_switches).sum();
    assert!(switches >= 1, "{switches}");
}

//! Scenarios of the router's end-to-end suite shared by `e2e.rs` (loopback,
//! every kernel backend) and `e2e_xdp.rs` (the `xdp` backend over a veth
//! pair between network namespaces).
#![allow(dead_code)] // each test binary uses its own share

pub mod netns;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corecast_client::{Client, MediaPlan};
use corecast_core::RouterConfig;
use corecast_proto::rtp::RtpPacket;
use corecast_proto::session::{JoinErrorCode, Quality, SessionMessage};
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role, SigningKey};
use corecast_proto::{Pt, SeqNo, Ssrc};
use corecast_router::server::{RouterServer, ServerConfig};

/// Starts a router on `listen` (port 0: any; with several workers, ports
/// follow one another) with the development join secret.
pub fn start_on(listen: SocketAddr, backend: &str, workers: usize, core: RouterConfig) -> RouterServer {
    RouterServer::start(ServerConfig {
        listen,
        advertise_ip: None,
        workers,
        cpus: Vec::new(),
        backend: backend.to_string(),
        core: RouterConfig { join_secret: Some(corecast_proto::join_key::JoinSecret::dev()), ..core },
        public_key: token::dev_signing_key().verifying_key(),
        io: Default::default(),
    })
    .unwrap_or_else(|e| panic!("router starts on {listen} with backend {backend}: {e}"))
}

/// [`start_on`] loopback.
pub fn start_with(backend: &str, workers: usize, core: RouterConfig) -> RouterServer {
    start_on("127.0.0.1:0".parse().unwrap(), backend, workers, core)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

pub fn token_for(key: &SigningKey, call: CallId, pid: u64, role: Role, ttl_ms: i64) -> Vec<u8> {
    let exp = (now_ms() as i64 + ttl_ms).max(1) as u64;
    token::sign(key, &Claims { call_id: call, participant_id: ParticipantId(pid), role, expires_at_ms: exp }).to_vec()
}

/// Four participants send 1000 packets each; everyone receives exactly the
/// others' packets, byte for byte. `spread`: the call must sit on two workers.
pub fn exact_call_on(server: &RouterServer, backend: &str, spread: bool) {
    let call = CallId(rand::random());
    let router = server.addresses()[0]; // may redirect to the owning worker
    let key = token::dev_signing_key();
    let clients: Vec<Client> = (1..=4u64)
        .map(|pid| {
            Client::join_dev(router, &token_for(&key, call, pid, Role::Publisher, 60_000), pid, Quality::Hd).unwrap()
        })
        .collect();
    if spread {
        let mut used: Vec<_> = clients.iter().map(|c| c.router()).collect();
        used.sort();
        used.dedup();
        assert_eq!(used.len(), 2, "the call is spread over both workers");
    } else {
        assert!(clients.iter().all(|c| c.router() == server.address_for(&call)));
    }
    let receivers: Vec<_> = clients.iter().map(|c| c.start_receiving(true)).collect();
    let plan = MediaPlan {
        audio: true,
        video_fps: 100,
        video_packets_per_frame: 4,
        video_packet_size: 1000,
        duration: Duration::from_secs(20),
        max_packets: Some(1000),
        ..Default::default()
    };
    let sent: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = clients.iter().map(|c| s.spawn(|| c.send_media(&plan, true))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for s in &sent {
        assert_eq!(s.sent, 1000);
    }
    for r in &receivers {
        r.wait_for(3000, Duration::from_secs(20));
    }
    std::thread::sleep(Duration::from_millis(200)); // would-be duplicates
    let reports: Vec<_> = receivers.into_iter().map(|r| r.finish()).collect();
    for (i, rep) in reports.iter().enumerate() {
        let (want, got) = rep.others_and_got(&sent, i);
        assert_eq!(got.len(), 3000, "{backend}: participant {i} received {} of 3000", got.len());
        assert!(got == want, "{backend}: participant {i} did not receive the others' packets byte for byte");
        assert_eq!((rep.duplicates, rep.corrupt), (0, 0));
        assert_eq!(rep.per_sender.len(), 3);
    }
    let stats = server.stats();
    let forwarded: u64 = stats.iter().map(|s| s.router.forwarded_rtp).sum();
    assert_eq!(forwarded, 4 * 1000 * 3);
}

pub fn rtp(ssrc: Ssrc, seq: u16) -> Vec<u8> {
    RtpPacket { pt: Pt(96), seq: SeqNo(seq), ssrc, payload: vec![0xAB; 200], ..Default::default() }.to_vec().unwrap()
}

pub fn join_reply(sock: &UdpSocket, router: SocketAddr, tok: Vec<u8>) -> SessionMessage {
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let key = corecast_proto::join_key::JoinSecret::dev().key_for(&tok);
    let m = SessionMessage::Join { txid: [3; 12], token: tok, ssrcs: vec![], quality: Quality::Hd, srtp: false };
    sock.send_to(&m.to_signed_vec(&key), router).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).expect("join reply");
    SessionMessage::parse(&buf[..n]).unwrap()
}

/// Unadmitted senders, forged and expired tokens, SSRC spoofing, bytes SRTP does
/// not open and malformed bytes, from sockets bound to `bind`: none of it is
/// forwarded while two honest participants' call goes on.
pub fn bad_actors_get_nothing(server: &RouterServer, backend: &str, bind: IpAddr) {
    let router = server.addresses()[0];
    let key = token::dev_signing_key();
    let call = CallId(rand::random());
    let a = Client::join_dev(router, &token_for(&key, call, 1, Role::Publisher, 60_000), 1, Quality::Hd).unwrap();
    let b = Client::join_dev(router, &token_for(&key, call, 2, Role::Publisher, 60_000), 2, Quality::Hd).unwrap();
    let spoofer = Client::join_dev(router, &token_for(&key, call, 3, Role::Publisher, 60_000), 3, Quality::Hd).unwrap();
    let (ra, rb) = (a.start_receiving(false), b.start_receiving(false));

    // 1. An unadmitted sender.
    let stranger = UdpSocket::bind((bind, 0)).unwrap();
    // 2. A forged token (signed by another key) and 3. an expired one.
    let forged_sock = UdpSocket::bind((bind, 0)).unwrap();
    let forged = token_for(&SigningKey::from_bytes(&[7; 32]), call, 8, Role::Publisher, 60_000);
    assert!(matches!(
        join_reply(&forged_sock, router, forged),
        SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }
    ));
    let expired_sock = UdpSocket::bind((bind, 0)).unwrap();
    let expired = token_for(&key, call, 9, Role::Publisher, -1000);
    assert!(matches!(
        join_reply(&expired_sock, router, expired),
        SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }
    ));
    let (a_audio, _) = a.ssrcs();
    for seq in 0..50u16 {
        stranger.send_to(&rtp(Ssrc(0x5555), seq), router).unwrap();
        forged_sock.send_to(&rtp(Ssrc(0x6666), seq), router).unwrap();
        expired_sock.send_to(&rtp(Ssrc(0x7777), seq), router).unwrap();
        // 4. An admitted participant spoofing A's SSRC (sealed with its own keys), 5. bytes
        // its SRTP does not open (a cut RTP header), and 6. malformed bytes.
        spoofer.send_packet(&rtp(a_audio, seq)).unwrap();
        spoofer.socket().send_to(&[0x80, 0x60, 0x00], router).unwrap();
        spoofer.socket().send_to(&[0xff; 64], router).unwrap();
    }
    // The call goes on: A and B exchange media meanwhile.
    let plan = MediaPlan { video_fps: 50, max_packets: Some(200), ..Default::default() };
    std::thread::scope(|s| {
        s.spawn(|| a.send_media(&plan, false));
        s.spawn(|| b.send_media(&plan, false));
    });
    assert!(ra.wait_for(200, Duration::from_secs(20)));
    assert!(rb.wait_for(200, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(200));
    let (rep_a, rep_b) = (ra.finish(), rb.finish());
    for rep in [&rep_a, &rep_b] {
        assert_eq!(rep.unique, 200, "{backend}");
        assert_eq!(rep.corrupt, 0, "{backend}: a bad packet was forwarded");
        assert_eq!(rep.per_sender.len(), 1, "{backend}: only the honest peer's media arrives");
    }
    let st = server.stats()[0].router;
    assert_eq!(st.dropped_unadmitted, 150, "{backend}");
    assert_eq!(st.dropped_bad_token, 2, "{backend}");
    assert_eq!(st.dropped_ssrc_not_owned, 50, "{backend}");
    assert_eq!(st.dropped_srtp_auth, 50, "{backend}");
    assert_eq!(st.dropped_malformed, 50, "{backend}");
    assert_eq!(st.forwarded_rtp, 2 * 200 * 2, "{backend}: each honest packet to the two others");
}

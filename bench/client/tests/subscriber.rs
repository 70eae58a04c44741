//! A subscriber (receive only) joins a real router on loopback and receives a
//! publisher's packets: its join declares no SSRCs (the router refuses a
//! subscriber that declares any) and it sends no media.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corecast_client::{Client, MediaPlan};
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_router::server::{RouterServer, ServerConfig};

fn token_for(call: CallId, pid: u64, role: Role) -> Vec<u8> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let claims = Claims { call_id: call, participant_id: ParticipantId(pid), role, expires_at_ms: now_ms + 60_000 };
    token::sign(&token::dev_signing_key(), &claims).to_vec()
}

#[test]
fn a_subscriber_is_admitted_and_receives_the_publishers_packets() {
    let started = Instant::now();
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
    let call = CallId(rand::random());

    let sub = Client::join_dev(router, &token_for(call, 2, Role::Subscriber), 2, Quality::Hd)
        .expect("the router admits a subscriber");
    assert!(!sub.sends());
    let publisher =
        Client::join_dev(router, &token_for(call, 1, Role::Publisher), 1, Quality::Hd).expect("publisher admitted");
    assert!(publisher.sends());
    let sub_rx = sub.start_receiving(false);
    let pub_rx = publisher.start_receiving(false);

    let plan = MediaPlan {
        audio: true,
        video_fps: 50,
        video_packets_per_frame: 2,
        video_packet_size: 1000,
        duration: Duration::from_secs(5),
        max_packets: Some(300),
        ..Default::default()
    };
    // A subscriber sends nothing, whatever it is asked.
    assert_eq!(sub.send_media(&plan, false).sent, 0);
    let sent = publisher.send_media(&plan, false);
    assert_eq!(sent.sent, 300);
    assert!(
        sub_rx.wait_for(sent.sent, Duration::from_secs(10)),
        "subscriber got {} of {}",
        sub_rx.received(),
        sent.sent
    );
    std::thread::sleep(Duration::from_millis(100));
    let _ = sub.leave();
    let _ = publisher.leave();
    let got = sub_rx.finish();
    assert_eq!(got.unique, sent.sent);
    assert_eq!(got.corrupt, 0);
    assert_eq!(got.per_sender.get(&1), Some(&sent.sent));
    assert_eq!(got.per_sender.len(), 1);
    // Nothing came the other way: the subscriber sent no media.
    let back = pub_rx.finish();
    assert_eq!(back.received, 0);
    assert!(started.elapsed() < Duration::from_secs(30));
}

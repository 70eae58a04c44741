//! Last-N over loopback through a real router: a receiver that asks for the
//! video of the 2 most active speakers gets only theirs (everyone's audio),
//! and the router tells it who is on the stage, the dominant speaker first
//! (the speakers list, an RTCP APP packet the client reports).
//!
//! Modest rates and bounded waits: the ranking's timing is the sans-IO
//! tests' (`router/core/src/tests/last_n.rs`); here only its outcome.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corecast_client::client::ssrcs_for;
use corecast_client::{Client, MediaPlan};
use corecast_core::RouterConfig;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role, SigningKey};
use corecast_router::server::{RouterServer, ServerConfig};

fn token_for(key: &SigningKey, call: CallId, pid: u64) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let claims = Claims {
        call_id: call,
        participant_id: ParticipantId(pid),
        role: Role::Publisher,
        expires_at_ms: now + 60_000,
    };
    token::sign(key, &claims).to_vec()
}

#[test]
fn a_last_n_receiver_gets_the_loudest_speakers_video_and_learns_who_they_are() {
    let server = RouterServer::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise_ip: None,
        workers: 1,
        cpus: Vec::new(),
        backend: "basic".into(),
        core: RouterConfig { join_secret: Some(corecast_proto::join_key::JoinSecret::dev()), ..Default::default() },
        public_key: token::dev_signing_key().verifying_key(),
        io: Default::default(),
    })
    .expect("router starts");
    let (call, key, router) = (CallId(rand::random()), token::dev_signing_key(), server.addresses()[0]);
    let join = |pid: u64| Client::join_dev(router, &token_for(&key, call, pid), pid, Quality::Hd).unwrap();
    let receiver = join(50);
    let rx = receiver.start_receiving(false);
    receiver.set_last_n(2).unwrap();
    // dBov, 0 loudest: 2, then 3, are the most active; 1 and 4 are quieter.
    let levels = [(1u64, 60u8), (2, 10), (3, 35), (4, 90)];
    let speakers: Vec<Client> = levels.iter().map(|&(pid, _)| join(pid)).collect();
    std::thread::scope(|s| {
        for (c, (_, level)) in speakers.iter().zip(levels) {
            let plan = MediaPlan {
                audio: true,
                audio_level: Some(level),
                video_fps: 15,
                video_packets_per_frame: 2,
                duration: Duration::from_secs(4),
                ..Default::default()
            };
            s.spawn(move || c.send_media(&plan, false));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let rep = rx.finish();
    let video = |pid: u64| ssrcs_for(pid).1 .0;
    assert_eq!(rep.speakers.get(..2), Some(&[video(2), video(3)][..]), "the stage, dominant first: {:?}", rep.speakers);
    assert!(rep.speaker_updates >= 1);
    // Audio from everyone (50/s), video (30 packets/s) only from the stage once it is set.
    let got = |pid: u64| rep.per_sender.get(&pid).copied().unwrap_or(0);
    for (on, off) in [(2, 1), (2, 4), (3, 1), (3, 4)] {
        assert!(
            got(on) > got(off) + 40,
            "speaker {on} ({}) against {off} ({}): {:?}",
            got(on),
            got(off),
            rep.per_sender
        );
    }
    for pid in [1, 4] {
        assert!(got(pid) >= 100, "speaker {pid}'s audio still reaches it: {:?}", rep.per_sender);
    }
    let withheld: u64 = server.stats().iter().map(|s| s.router.last_n_withheld).sum();
    assert!(withheld > 0, "the router counted the video it withheld");
    server.stop();
}

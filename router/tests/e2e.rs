//! End-to-end calls over loopback through a real router, for every backend.
//!
//! Modest rates, large socket buffers and bounded waits: these must pass on a
//! loaded 2-core machine. Exact per-packet accounting is the point.

use std::net::UdpSocket;
use std::time::Duration;

use corecast_client::{Client, MediaPlan};
use corecast_core::RouterConfig;
use corecast_proto::session::{JoinErrorCode, Quality, SessionMessage};
use corecast_proto::token::{self, CallId, ParticipantId, Role};

use corecast_router::server::RouterServer;

mod common;
use common::*;

fn backends() -> Vec<&'static str> {
    vec!["basic", "mmsg", "uring"]
}

fn start(backend: &str, workers: usize) -> RouterServer {
    start_with(backend, workers, RouterConfig::default())
}

fn exact_call(backend: &str, workers: usize) {
    exact_call_on(&start(backend, workers), backend, false)
}

#[test]
fn four_participants_receive_exactly_the_others_packets() {
    for b in backends() {
        exact_call(b, 1);
    }
}

#[test]
fn call_on_a_two_worker_router_is_redirected_and_exact() {
    exact_call(backends()[0], 2);
}

#[test]
fn call_spread_over_two_workers_is_exact() {
    for backend in ["mmsg", "uring"] {
        let core = RouterConfig { max_receivers_per_worker: 2, ..Default::default() };
        let server = start_with(backend, 2, core);
        exact_call_on(&server, backend, true);
    }
}

#[test]
fn a_full_call_spreads_over_two_workers_by_default_and_the_cap_holds_across_them() {
    // The default config with two workers: 100 participants do not fit one
    // worker's budget, and the 101st is refused though they sit on two.
    let core = RouterConfig::default();
    let (budget, cap) = (core.max_receivers_per_worker, core.max_participants_per_call);
    let server = start_with("mmsg", 2, core);
    let call = CallId(rand::random());
    let key = token::dev_signing_key();
    let clients: Vec<Client> = (1..=cap as u64)
        .map(|pid| {
            let tok = token_for(&key, call, pid, Role::Publisher, 60_000);
            Client::join_dev(server.addresses()[0], &tok, pid, Quality::Hd).unwrap()
        })
        .collect();
    let owner = server.address_for(&call);
    assert_eq!(clients.iter().filter(|c| c.router() == owner).count(), budget);
    assert_eq!(clients.iter().filter(|c| c.router() != owner).count(), cap - budget);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tok = token_for(&key, call, cap as u64 + 1, Role::Publisher, 60_000);
    assert!(matches!(join_reply(&sock, owner, tok), SessionMessage::JoinError { code: JoinErrorCode::CallFull, .. }));
    let participants: usize = server.stats().iter().map(|s| s.participants).sum();
    assert_eq!(participants, cap);
}

#[test]
fn bad_actors_get_nothing_forwarded_while_the_call_goes_on() {
    for backend in backends() {
        let server = start(backend, 1);
        bad_actors_get_nothing(&server, backend, [127, 0, 0, 1].into());
        server.stop();
    }
}

#[test]
fn ending_a_call_drops_everyone_and_tells_them() {
    let server = start(backends()[0], 1);
    let router = server.addresses()[0];
    let key = token::dev_signing_key();
    let call = CallId(rand::random());
    let a = Client::join_dev(router, &token_for(&key, call, 1, Role::Publisher, 60_000), 1, Quality::Hd).unwrap();
    let ra = a.start_receiving(false);
    server.end_call(call);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.snapshot().iter().any(|c| c.call == call) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.snapshot().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert!(ra.finish().call_ended);
    let again = Client::join_dev(router, &token_for(&key, call, 1, Role::Publisher, 60_000), 1, Quality::Hd);
    assert!(again.is_err(), "an ended call cannot be rejoined");
}

/// Automatic HD/SD switching over real sockets: a receiver whose RTCP
/// receiver reports say it loses half of what it gets moves to SD; once its
/// reports show no loss for `hd_recovery` it is back on HD. Waits are
/// bounded; the only timing claim is a lower bound (the hysteresis).
#[test]
fn reported_loss_switches_a_receiver_to_sd_and_back_over_sockets() {
    use corecast_proto::rtcp::{write_compound, ReceiverReport, ReportBlock, RtcpPacket};
    let hd_recovery = Duration::from_millis(1500);
    for backend in backends() {
        let server = start_with(backend, 1, RouterConfig { hd_recovery, ..RouterConfig::default() });
        let call = CallId(rand::random());
        let key = token::dev_signing_key();
        let router = server.addresses()[0];
        let a = Client::join_dev(router, &token_for(&key, call, 1, Role::Publisher, 60_000), 1, Quality::Hd).unwrap();
        let b = Client::join_dev(router, &token_for(&key, call, 2, Role::Publisher, 60_000), 2, Quality::Hd).unwrap();
        let plan = MediaPlan {
            audio: false,
            video_fps: 50,
            video_packets_per_frame: 2,
            video_packet_size: 400,
            duration: Duration::from_secs(5),
            max_packets: Some(20),
            ..Default::default()
        };
        a.send_media(&plan, false);
        let quality_of_b = || {
            server
                .snapshot()
                .into_iter()
                .filter(|c| c.call == call)
                .flat_map(|c| c.participants)
                .find(|p| p.participant == ParticipantId(2))
                .map(|p| p.quality)
        };
        assert_eq!(quality_of_b(), Some(Quality::Hd), "{backend}");
        let report = |fraction_lost: u8| {
            let rr = RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: b.ssrcs().1,
                reports: vec![ReportBlock { ssrc: a.ssrcs().1, fraction_lost, ..Default::default() }],
            });
            b.send_packet(&write_compound(&[rr]).unwrap()).unwrap();
        };
        // Heavy loss (50%), reported a few times: B moves to SD.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while quality_of_b() != Some(Quality::Sd) {
            assert!(std::time::Instant::now() < deadline, "{backend}: B never moved to SD");
            report(128);
            std::thread::sleep(Duration::from_millis(100));
        }
        // Loss stops: B goes back to HD, but only after `hd_recovery` of good reports.
        let good_from = std::time::Instant::now();
        let deadline = good_from + Duration::from_secs(30);
        while quality_of_b() != Some(Quality::Hd) {
            assert!(std::time::Instant::now() < deadline, "{backend}: B never came back to HD");
            report(0);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(good_from.elapsed() >= hd_recovery, "{backend}: back to HD before the hysteresis ran out");
        server.stop();
    }
}

/// Five speakers at distinct RFC 6464 levels, one SD and one HD receiver:
/// the SD receiver hears the three loudest (the others only until the first
/// ranking, 200 ms in), the HD receiver hears everyone byte for byte. The
/// bounds leave room for a loaded machine (a sender stalled for a ranking
/// window briefly loses its place); the exact rules are tested in the core.
#[test]
fn sd_receivers_hear_only_the_loudest_speakers_over_sockets() {
    const PACKETS: u64 = 150;
    for backend in backends() {
        let server = start(backend, 1);
        let call = CallId(rand::random());
        let key = token::dev_signing_key();
        let router = server.addresses()[0];
        let join = |pid: u64, q: Quality| {
            Client::join_dev(router, &token_for(&key, call, pid, Role::Publisher, 60_000), pid, q).unwrap()
        };
        let sd = join(50, Quality::Sd);
        let hd = join(51, Quality::Hd);
        let (sd_rx, hd_rx) = (sd.start_receiving(false), hd.start_receiving(true));
        let levels = [(1u64, 40u8), (2, 10), (3, 90), (4, 25), (5, 70)];
        let speakers: Vec<Client> = levels.iter().map(|&(pid, _)| join(pid, Quality::Hd)).collect();
        let sent: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = speakers
                .iter()
                .zip(levels)
                .map(|(c, (_, level))| {
                    let plan = MediaPlan {
                        audio: true,
                        audio_level: Some(level),
                        video_fps: 0,
                        duration: Duration::from_secs(30),
                        max_packets: Some(PACKETS),
                        ..Default::default()
                    };
                    s.spawn(move || c.send_media(&plan, true))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        hd_rx.wait_for(5 * PACKETS, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(200));
        let (sd_rep, hd_rep) = (sd_rx.finish(), hd_rx.finish());
        let mut want: Vec<&Vec<u8>> = sent.iter().flat_map(|s| &s.recorded).collect();
        let mut got: Vec<&Vec<u8>> = hd_rep.recorded.iter().collect();
        want.sort();
        got.sort();
        assert!(
            got == want,
            "{backend}: the HD receiver got {} of {} packets, or not byte for byte",
            got.len(),
            want.len()
        );
        let heard = |pid: u64| sd_rep.per_sender.get(&pid).copied().unwrap_or(0);
        for pid in [2, 4, 1] {
            assert!(heard(pid) >= PACKETS * 8 / 10, "{backend}: SD receiver heard {} of speaker {pid}", heard(pid));
        }
        for pid in [5, 3] {
            assert!(heard(pid) <= PACKETS / 2, "{backend}: SD receiver heard {} of quiet speaker {pid}", heard(pid));
        }
        assert_eq!(sd_rep.corrupt, 0, "{backend}");
        let withheld: u64 = server.stats().iter().map(|s| s.router.sd_audio_withheld).sum();
        assert!(withheld >= PACKETS, "{backend}: {withheld} packets withheld");
        server.stop();
    }
}

/// Reads datagrams on `sock` until `deadline`, returning the RTP packets'
/// count (a read timeout must be set).
fn rtp_received(sock: &UdpSocket, deadline: std::time::Instant) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            n += usize::from(corecast_proto::demux::classify(&buf[..len]) == corecast_proto::demux::Kind::Rtp);
        }
    }
    n
}

/// The hijack the join protocol prevents, over real sockets: a join seen on
/// the wire and replayed from another address admits nothing and moves
/// nothing; once the participant has left, its token admits nobody.
#[test]
fn a_sniffed_join_replayed_from_another_address_admits_and_moves_nothing() {
    use corecast_proto::join_key::JoinSecret;
    let server = start("mmsg", 1);
    let router = server.addresses()[0];
    let key = token::dev_signing_key();
    let call = CallId(rand::random());
    let b = Client::join_dev(router, &token_for(&key, call, 2, Role::Publisher, 60_000), 2, Quality::Hd).unwrap();
    // Participant 1 joins by hand, so that the test holds the bytes an observer saw.
    let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
    victim.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let tok = token_for(&key, call, 1, Role::Publisher, 60_000);
    let jkey = JoinSecret::dev().key_for(&tok);
    let sniffed = SessionMessage::Join { txid: [5; 12], token: tok, ssrcs: vec![], quality: Quality::Hd, srtp: true }
        .to_signed_vec(&jkey);
    victim.send_to(&sniffed, router).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = victim.recv_from(&mut buf).expect("join answered");
    assert!(matches!(SessionMessage::parse(&buf[..n]), Ok(SessionMessage::JoinAck { participant: 1, .. })));
    // The observer replays the join from its own socket: it is asked, in no
    // more bytes, to prove it holds the key, and cannot.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    attacker.send_to(&sniffed, router).unwrap();
    let (n, _) = attacker.recv_from(&mut buf).expect("a check");
    assert!(n <= sniffed.len(), "no amplification");
    let Ok(SessionMessage::Check { txid }) = SessionMessage::parse(&buf[..n]) else { panic!("not a check") };
    attacker.send_to(&SessionMessage::CheckReply { txid }.to_vec(), router).unwrap();
    attacker.send_to(&SessionMessage::Leave { txid }.to_vec(), router).unwrap();
    // B's media still reaches participant 1 where it joined, none the observer.
    let plan = MediaPlan {
        video_fps: 25,
        video_packets_per_frame: 1,
        audio: false,
        max_packets: Some(40),
        ..Default::default()
    };
    b.send_media(&plan, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    assert_eq!(rtp_received(&victim, deadline), 40);
    assert_eq!(rtp_received(&attacker, std::time::Instant::now() + Duration::from_millis(300)), 0);
    let st = server.stats()[0].router;
    assert_eq!((st.address_checks, st.address_moves), (1, 0));
    assert_eq!(st.dropped_bad_integrity, 1, "the unsigned answer");
    assert!(st.dropped_unadmitted >= 1, "the unsigned leave from an address that is nobody's");
    assert_eq!(server.stats()[0].participants, 2);
    // Participant 1 leaves; its token admits nobody afterwards, from anywhere.
    victim.send_to(&SessionMessage::Leave { txid: [6; 12] }.to_signed_vec(&jkey), router).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.stats()[0].participants != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for sock in [&attacker, &victim] {
        sock.send_to(&sniffed, router).unwrap();
        // Skip the reports still on their way to the victim.
        let reply = (0..50)
            .find_map(|_| {
                let (n, _) = sock.recv_from(&mut buf).ok()?;
                SessionMessage::parse(&buf[..n]).ok()
            })
            .expect("a refusal");
        assert!(matches!(reply, SessionMessage::JoinError { code: JoinErrorCode::Unauthorized, .. }), "{reply:?}");
    }
    assert_eq!(server.stats()[0].participants, 1);
    server.stop();
}

//! Failover and drain deadlines (#16 items 3 and 4) with real `corecast-router` processes and
//! native clients that follow their call (`corecast_client::follow`):
//!
//! - `kill -9` of the call's router mid-call: its participants are back in the call on the
//!   other router and receiving within 3 s of the kill, and after the grace period the call
//!   store lists exactly the participants that came back (one that did not is dropped).
//! - A drain with a deadline: at the deadline the call moves to the other router, its
//!   participants follow it, the call goes on.
//!
//! Needs the binaries: `cargo build -p corecast-router --bins` (found next to the test's
//! `deps/` directory, or in `CORECAST_BIN_DIR`). Runs on the embedded stores, and on
//! PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::router_proc::{self, participants, start_follower, Follower, RouterProc, SECRET};
use common::*;
use corecast_client::Client;
use corecast_control::config::Config;
use corecast_proto::session::Quality;
use corecast_proto::token;
use serde_json::json;

fn failover_config(mut cfg: Config) -> Config {
    // As deployed: dead after 1.5 s of silence (routers beat every 500 ms).
    cfg.router.dead_after_ms = None;
    cfg.calls.failover_grace_ms = 3000;
    cfg.calls.max_participants = 8;
    cfg
}

/// Two routers registered and live in the calls service's region.
async fn two_routers(s: &Svc, region: &str) -> (RouterProc, RouterProc) {
    let mut rs = router_proc::spawn_live(s, region, 2).await;
    let b = rs.pop().expect("two");
    (rs.pop().expect("two"), b)
}

/// Waits (bounded) until every follower has received `n` packets on its current router.
async fn all_receiving(fs: &[Follower], n: u64, max: Duration) -> bool {
    eventually(max, || async { fs.iter().all(|f| f.progress.leg_received.load(Ordering::Relaxed) >= n) }).await
}

async fn failover_flow(cfg: Config, dir: tempfile::TempDir) {
    let cfg = failover_config(cfg);
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let (a, b) = two_routers(&s, &region).await;
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(s.user().await.1);
    }
    let followers: Vec<Follower> = users[..3].iter().map(|u| start_follower(&s.calls, u, &call, 14)).collect();
    // A fourth participant joins and connects, and does not come back after the kill.
    let j = s.join(&call, &users[3]).await;
    assert_eq!(j.status, 200, "{:?}", j.body);
    let quitter_pid = j.body["participant_id"].as_u64().unwrap();
    let raw = token::decode_text(j.body["token"].as_str().unwrap()).unwrap();
    let key = corecast_proto::join_key::JoinKey::from_text(j.body["join_key"].as_str().unwrap()).unwrap();
    let addr: SocketAddr = j.body["router"].as_str().unwrap().parse().unwrap();
    let quitter = tokio::task::spawn_blocking(move || Client::join(addr, &raw, &key, quitter_pid, Quality::Hd))
        .await
        .unwrap()
        .expect("the fourth participant joins");
    assert!(all_receiving(&followers, 50, Duration::from_secs(15)).await, "media flows before the kill");

    let (router_before, _) = participants(&s, &owner, &call).await;
    let (mut dead, live) = if router_before == a.addr { (a, b) } else { (b, a) };
    assert_eq!(router_before, dead.addr, "the call is on one of the two routers");
    let before: Vec<u64> = followers.iter().map(|f| f.progress.leg_received.load(Ordering::Relaxed)).collect();
    // kill -9 (SIGKILL): no goodbye to calls or to the clients.
    dead.child.kill().expect("kill -9");
    let killed = Instant::now();
    drop(quitter);
    let mut back = vec![None; followers.len()];
    let deadline = killed + Duration::from_secs(15);
    while back.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, f) in followers.iter().enumerate() {
            let p = &f.progress;
            if back[i].is_none()
                && p.rejoins.load(Ordering::Relaxed) >= 1
                && p.leg_received.load(Ordering::Relaxed) >= 10
            {
                back[i] = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let times: Vec<u128> = back.iter().map(|t| t.map_or(u128::MAX, |d| d.as_millis())).collect();
    println!("failover: packets before the kill {before:?}; back in the call and receiving (10 packets on the new router) {times:?} ms after the kill");
    let (router_after, _) = participants(&s, &owner, &call).await;
    assert_eq!(router_after, live.addr, "the call moved to the live router");
    assert!(times.iter().all(|&t| t <= 3000), "every participant back within 3 s of the kill: {times:?} ms");

    // After the grace period the store lists exactly the participants that came back.
    let pids: Vec<u64> = {
        let mut v: Vec<u64> = followers.iter().map(|f| f.progress.participant.load(Ordering::Relaxed)).collect();
        v.sort_unstable();
        v
    };
    let exact = eventually(Duration::from_secs(10), || async { participants(&s, &owner, &call).await.1 == pids }).await;
    let (_, listed) = participants(&s, &owner, &call).await;
    assert!(exact, "the store lists exactly the connected participants {pids:?}, not the one that left ({quitter_pid}): {listed:?}");
    let text = scrape(&s.http, &s.calls).await;
    assert_eq!(sample(&text, "corecast_calls_moved_total{service=\"calls\",reason=\"dead\"}"), Some(1.0), "{text}");
    let settled = killed.elapsed();
    println!("failover: the call store lists exactly the 3 connected participants {:?} after the kill", settled);

    for f in followers {
        let rep = f.thread.join().expect("follower");
        println!(
            "failover: participant {} re-joined {} time(s) in {:?} ms; routers {:?}; per sender {:?}",
            rep.participant, rep.rejoins, rep.rejoin_ms, rep.routers, rep.recv.per_sender
        );
        assert_eq!(rep.rejoins, 1, "one re-join each");
        assert_eq!(rep.routers.last().map(|r| r.to_string()), Some(live.addr.clone()));
        assert!(rep.recv.per_sender.len() >= 2, "it heard the two others: {:?}", rep.recv.per_sender);
    }
    drop(live);
    s.shutdown().await;
}

async fn drain_deadline_flow(cfg: Config, dir: tempfile::TempDir) {
    let cfg = failover_config(cfg);
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let (a, b) = two_routers(&s, &region).await;
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let mut followers = Vec::new();
    for _ in 0..2 {
        let u = s.user().await.1;
        followers.push(start_follower(&s.calls, &u, &call, 12));
    }
    assert!(all_receiving(&followers, 50, Duration::from_secs(15)).await, "media flows before the drain");
    let (router_before, pids_before) = participants(&s, &owner, &call).await;
    let (drained, other) = if router_before == a.addr { (&a, &b) } else { (&b, &a) };
    let r = send(
        s.http
            .patch(format!("{}/v1/routers/{}", s.calls, drained.id))
            .bearer_auth(SECRET)
            .json(&json!({"draining": true, "deadline_secs": 1})),
    )
    .await;
    assert_eq!((r.status, r.body["draining"].clone()), (200, json!(true)), "{:?}", r.body);
    let drained_at = Instant::now();
    // Its call goes on until the deadline...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(participants(&s, &owner, &call).await.0, drained.addr, "the call stays until the deadline");
    // ...then its participants are moved to the other router, and the call goes on there.
    let moved = eventually(Duration::from_secs(10), || async {
        followers.iter().all(|f| {
            f.progress.rejoins.load(Ordering::Relaxed) >= 1 && f.progress.leg_received.load(Ordering::Relaxed) >= 10
        })
    })
    .await;
    println!(
        "drain deadline (1 s): participants receiving on the other router {:?} after the drain",
        drained_at.elapsed()
    );
    assert!(moved, "the participants follow the call at the deadline");
    let (router_after, pids_after) = participants(&s, &owner, &call).await;
    assert_eq!(router_after, other.addr, "the call is on the other router");
    assert_eq!(pids_after, pids_before, "the call is not lost: the same participants");
    let text = scrape(&s.http, &s.calls).await;
    assert_eq!(sample(&text, "corecast_calls_moved_total{service=\"calls\",reason=\"drained\"}"), Some(1.0), "{text}");
    for f in followers {
        let rep = f.thread.join().expect("follower");
        println!("drain deadline: participant {} re-joins {} in {:?} ms", rep.participant, rep.rejoins, rep.rejoin_ms);
        assert_eq!(rep.routers.last().map(|r| r.to_string()), Some(other.addr.clone()));
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_router_participants_come_back_on_another_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    failover_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_router_participants_come_back_on_another_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "killed_router_participants_come_back_on_another_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    failover_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_moves_participants_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    drain_deadline_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_moves_participants_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = real_servers_config(dir.path(), "drain_deadline_moves_participants_real_servers") else { return };
    drain_deadline_flow(cfg, dir).await;
}

/// Without router processes (routers registered by hand, a fake admin API): the sweeper moves
/// a silent router's call, events from the router it moved off are ignored, a re-join is
/// granted on the new router with the same participant, the refusals, and after the grace
/// period the participant the new router does not hold is dropped.
#[tokio::test]
async fn sweeper_moves_the_call_and_rejoin_follows_it() {
    let s = start(|c| {
        c.router.dead_after_ms = Some(800);
        c.calls.failover_grace_ms = 1500;
    })
    .await;
    let fake = fake_router().await;
    let url = format!("{}/v1/routers", s.calls);
    let (x, y) = (format!("x-{}", uniq()), format!("y-{}", uniq()));
    let register = |id: &str, port: u16| {
        let reg = json!({"id": id, "address": format!("127.0.0.1:{port}"), "cores": 1, "load": 0.0,
                         "admin": fake.admin.clone()});
        s.post(url.clone(), Some(SECRET), reg)
    };
    assert_eq!(register(&x, 41201).await.status, 200);
    let (_, owner) = s.user().await;
    let (_, other) = s.user().await;
    let call = s.start_call(&owner).await;
    let j = s.join(&call, &owner).await;
    assert_eq!((j.status, j.body["router"].clone()), (200, json!("127.0.0.1:41201")));
    let pid = j.body["participant_id"].as_u64().unwrap();
    let rejoin = |token: &str, body: serde_json::Value| {
        let rb = s.http.post(format!("{}/v1/calls/{call}/rejoin", s.calls)).bearer_auth(token).json(&body);
        send(rb)
    };
    assert_eq!(rejoin(&other, json!({"participant_id": pid})).await.status, 403, "another user's participant");
    assert_eq!(rejoin(&owner, json!({"participant_id": 12345})).await.status, 404);
    assert_eq!(rejoin(&owner, json!({"participant": pid})).await.status, 422);
    let r = rejoin(&owner, json!({"participant_id": pid})).await;
    assert_eq!(
        (r.status, r.body["participant_id"].as_u64(), r.body["router"].clone()),
        (200, Some(pid), json!("127.0.0.1:41201"))
    );

    // x falls silent, y beats: the sweeper moves the call to y.
    let moved = eventually(Duration::from_secs(10), || async {
        register(&y, 41202).await;
        participants(&s, &owner, &call).await.0 == "127.0.0.1:41202"
    })
    .await;
    assert!(moved, "the call moves off the silent router");
    // x speaks for the call no more: its timeout report does not drop the participant.
    let ev = json!({"events": [{"type": "timeout", "call_id": call, "participant_id": pid}]});
    let r = s.post(format!("{url}/{x}/events"), Some(SECRET), ev).await;
    assert_eq!((r.status, r.body["removed"].clone()), (200, json!(0)), "{:?}", r.body);
    let r = rejoin(&owner, json!({"participant_id": pid})).await;
    assert_eq!(
        (r.status, r.body["participant_id"].as_u64(), r.body["router"].clone()),
        (200, Some(pid), json!("127.0.0.1:41202"))
    );
    // The new router (the fake) holds nobody: after the grace period the store drops the participant.
    let dropped = eventually(Duration::from_secs(10), || async {
        register(&y, 41202).await;
        participants(&s, &owner, &call).await.1.is_empty()
    })
    .await;
    assert!(dropped, "a participant that did not come back is dropped");
    assert_eq!(rejoin(&owner, json!({"participant_id": pid})).await.status, 404, "dropped: join again");
    s.shutdown().await;
}

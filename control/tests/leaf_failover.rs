//! Failover of a leaf router (#16 items 2 and 3) with real `corecast-router` processes and
//! native clients that follow their call (`corecast_client::follow`, as
//! `corecast-client join --follow`): a call's home drains, so native joins go to a leaf
//! linked to it; the leaf is killed (`kill -9`). Its following client is back in the call
//! (on the home, the only live router) and receiving the home client's media within a bounded
//! time; a second leaf client that does not come back is dropped from the store after the
//! failover grace, and the store then lists exactly the connected participants.
//!
//! Needs the binaries: `cargo build -p corecast-router --bins`. Runs on the embedded stores,
//! and on PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::router_proc::{self, participants, start_follower, SECRET};
use common::*;
use corecast_client::Client;
use corecast_control::config::Config;
use corecast_proto::session::Quality;
use corecast_proto::token;
use serde_json::json;

async fn leaf_failover_flow(mut cfg: Config, dir: tempfile::TempDir) {
    // As deployed: dead after 1.5 s of silence (routers beat every 500 ms).
    cfg.router.dead_after_ms = None;
    cfg.calls.failover_grace_ms = 3000;
    cfg.calls.max_participants = 8;
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let routers = router_proc::spawn_live(&s, &region, 2).await;
    let (owner, call, home) = router_proc::new_call_on(&s, &routers).await;
    let leaf = 1 - home;

    // Two native clients on the home (each hears the other while the leaf's client is away:
    // a client that hears nothing for 1 s takes its router for gone); then the home drains
    // and the next joins go to the leaf.
    let (_, u_home) = s.user().await;
    let (_, u_home2) = s.user().await;
    let on_home = start_follower(&s.calls, &u_home, &call, 16);
    let on_home2 = start_follower(&s.calls, &u_home2, &call, 16);
    let up =
        eventually(Duration::from_secs(10), || async { on_home.participant() != 0 && on_home2.participant() != 0 })
            .await;
    assert!(up, "the home clients join");
    let rb = s.http.patch(format!("{}/v1/routers/{}", s.calls, routers[home].id)).json(&json!({"draining": true}));
    assert_eq!(send(rb.bearer_auth(SECRET)).await.status, 200);
    let (_, u_leaf) = s.user().await;
    let on_leaf = start_follower(&s.calls, &u_leaf, &call, 16);
    // A second leaf client that will not come back after the kill.
    let (_, u_quit) = s.user().await;
    let j = s.join(&call, &u_quit).await;
    assert_eq!(j.status, 200, "{:?}", j.body);
    assert_eq!(j.body["router"], json!(routers[leaf].addr), "joined on the leaf");
    let quitter_pid = j.body["participant_id"].as_u64().unwrap();
    let raw = token::decode_text(j.body["token"].as_str().unwrap()).unwrap();
    let key = corecast_proto::join_key::JoinKey::from_text(j.body["join_key"].as_str().unwrap()).unwrap();
    let addr: SocketAddr = j.body["router"].as_str().unwrap().parse().unwrap();
    let quitter = tokio::task::spawn_blocking(move || Client::join(addr, &raw, &key, quitter_pid, Quality::Hd))
        .await
        .unwrap()
        .expect("the second leaf client joins");
    let flowing =
        eventually(Duration::from_secs(15), || async { on_home.leg_received() >= 50 && on_leaf.leg_received() >= 50 })
            .await;
    assert!(flowing, "media flows across the link before the kill");
    assert_eq!(participants(&s, &owner, &call).await.1.len(), 4);

    // kill -9 of the leaf: no goodbye to calls or to its clients.
    let mut routers = routers;
    routers[leaf].child.kill().expect("kill -9");
    let killed = Instant::now();
    drop(quitter);
    let back =
        eventually(Duration::from_secs(15), || async { on_leaf.rejoins() >= 1 && on_leaf.leg_received() >= 10 }).await;
    let back_ms = killed.elapsed().as_millis();
    println!("leaf failover: the leaf's client back in the call and receiving (10 packets on its new router) {back_ms} ms after the kill");
    if !back {
        let log = std::fs::read_to_string(s.dir.path().join(format!("{}.log", routers[home].id))).unwrap_or_default();
        eprintln!("--- home router {} ---\n{log}", routers[home].id);
    }
    assert!(back, "the leaf's client is back in the call");
    assert!(back_ms <= 5000, "back within 5 s of the kill: {back_ms} ms");

    // After the grace the store lists exactly the connected participants.
    let mut pids = vec![on_home.participant(), on_home2.participant(), on_leaf.participant()];
    pids.sort_unstable();
    let exact = eventually(Duration::from_secs(15), || async { participants(&s, &owner, &call).await.1 == pids }).await;
    let (router_after, listed) = participants(&s, &owner, &call).await;
    println!(
        "leaf failover: the store lists exactly the 3 connected participants {:?} after the kill",
        killed.elapsed()
    );
    assert!(exact, "the store lists {pids:?}, not the leaf client that did not come back ({quitter_pid}): {listed:?}");
    assert_eq!(router_after, routers[home].addr, "the call stays on its home");

    let home_rep = on_home.thread.join().expect("home follower");
    let home2_rep = on_home2.thread.join().expect("second home follower");
    let leaf_rep = on_leaf.thread.join().expect("leaf follower");
    println!("leaf failover: home client {}", home_rep.text().trim_end());
    println!("leaf failover: leaf client {}", leaf_rep.text().trim_end());
    assert_eq!((home_rep.rejoins, home2_rep.rejoins), (0, 0), "the home clients never left their router");
    assert_eq!(leaf_rep.rejoins, 1, "one re-join");
    assert!(pids.contains(&leaf_rep.participant), "the same participant id");
    assert_eq!(
        leaf_rep.routers.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        vec![routers[leaf].addr.clone(), routers[home].addr.clone()],
        "from the leaf to the home"
    );
    assert!(
        leaf_rep.recv.per_sender.contains_key(&home_rep.participant),
        "the leaf client heard the home client: {:?}",
        leaf_rep.recv.per_sender
    );
    // What the home's clients got from the leaf's client: before the kill over the link, after
    // it on their own router. Only what it sent while it had no router is missing (its streams
    // go on with the next sequence numbers after the re-join: starting them again would have
    // the home refuse to seal indexes its receivers' SRTP contexts had used, and drop the rest).
    let from_leaf = |r: &corecast_client::FollowReport| r.recv.per_sender.get(&leaf_rep.participant).copied();
    println!(
        "leaf failover: the home clients received {:?} and {:?} of the {} packets the leaf's client sent",
        from_leaf(&home_rep),
        from_leaf(&home2_rep),
        leaf_rep.sent
    );
    for got in [from_leaf(&home_rep), from_leaf(&home2_rep)] {
        assert!(got.unwrap_or(0) * 10 >= leaf_rep.sent * 6, "{got:?} of {} from the leaf's client", leaf_rep.sent);
    }
    drop(routers);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leafs_native_clients_come_back_and_the_rest_leave_the_store_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    leaf_failover_flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leafs_native_clients_come_back_and_the_rest_leave_the_store_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "a_killed_leafs_native_clients_come_back_and_the_rest_leave_the_store_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    leaf_failover_flow(cfg, dir).await;
}

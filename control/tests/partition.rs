//! Split brain after a partition (#16 item 3), with two real routers in the test's process and
//! native clients that follow their call (`corecast_client::follow`):
//!
//! - Router A reaches calls only through a TCP proxy the test controls. The test cuts it: A's
//!   heartbeats fail, calls declares A dead and moves the call to router B, while A, still
//!   reachable by its clients, keeps serving them (they do not notice).
//! - The test heals the link: A's next heartbeat is answered `"fenced": true` without the call,
//!   A ends it and tells its participants the call ended, and they re-join through calls on B
//!   and receive there; A holds nothing, the store lists both participants on B.
//! - A partition longer than calls' failover grace: calls drops the participants that did not
//!   come to B (they are on A, cut off); on heal they are told, find that they were dropped
//!   (404 on re-join) and join the call anew, on B.
//! - Then B is drained past a deadline: the call moves back to A, which ended it when fenced
//!   and admits it again (calls lists it for A), and the participants follow it there.
//! - The heartbeat answer's `fenced` flag: true for a new router and for one back after being
//!   declared dead, false while it beats.
//!
//! Runs on the embedded stores, and on PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*`
//! is set.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::live_router::{self, LiveRouter};
use common::router_proc::{participants, start_follower, Follower};
use common::*;
use corecast_control::config::Config;
use serde_json::json;
use tokio::sync::watch;

const SECRET: &str = "test-router-secret";
const HEARTBEAT: Duration = Duration::from_millis(500);

/// A TCP proxy between a router's link and calls: `cut` closes every connection through it
/// and refuses new ones until `heal`.
struct LinkProxy {
    url: String,
    cut: watch::Sender<bool>,
}

impl LinkProxy {
    async fn start(to: SocketAddr) -> LinkProxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (cut, rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let mut rx = rx.clone();
                if *rx.borrow() {
                    continue; // dropped: closed at once
                }
                tokio::spawn(async move {
                    let Ok(mut out) = tokio::net::TcpStream::connect(to).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        LinkProxy { url, cut }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn heal(&self) {
        self.cut.send_replace(false);
    }
}

async fn live(s: &Svc, r: &LiveRouter) -> bool {
    let l = s.get(format!("{}/v1/routers", s.calls), Some(SECRET)).await;
    let rs = l.body["routers"].as_array().cloned().unwrap_or_default();
    rs.iter().any(|x| x["id"] == json!(r.id) && x["live"] == json!(true))
}

/// How long the partition lasts.
#[derive(Clone, Copy, PartialEq)]
enum Partition {
    /// Healed before calls' failover grace ends: A's clients re-join as themselves.
    Short,
    /// Healed once calls has dropped A's clients from the call: they join anew.
    Long,
}

async fn partition_flow(mut cfg: Config, dir: tempfile::TempDir, how: Partition) {
    // As deployed: dead after 1.5 s of silence (routers beat every 500 ms). Short: the grace
    // before participants who did not come back are dropped is longer than the test's
    // partition plus the heal, so that the clients held by A are still the call's when they
    // re-join; long: the test waits for the drop.
    cfg.router.dead_after_ms = None;
    cfg.calls.failover_grace_ms = if how == Partition::Short { 10_000 } else { 1500 };
    cfg.calls.max_participants = 8;
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let calls_addr: SocketAddr = s.calls.trim_start_matches("http://").parse().unwrap();
    let proxy = LinkProxy::start(calls_addr).await;
    // A first, alone in the region: the call is placed on it.
    let a = live_router::start(&proxy.url, &region, "pa", HEARTBEAT).await;
    assert!(eventually(Duration::from_secs(10), || live(&s, &a)).await, "router A registers through the proxy");
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let users = [s.user().await.1, s.user().await.1];
    let followers: Vec<Follower> = users.iter().map(|u| start_follower(&s.calls, u, &call, 18)).collect();
    let receiving = |n: u64| {
        let fs = &followers;
        move || async move { fs.iter().all(|f| f.progress.leg_received.load(Ordering::Relaxed) >= n) }
    };
    assert!(eventually(Duration::from_secs(15), receiving(50)).await, "media flows on A");
    assert_eq!(participants(&s, &owner, &call).await.0, a.address(), "the call is on A");
    let b = live_router::start(&s.calls, &region, "pb", HEARTBEAT).await;
    assert!(eventually(Duration::from_secs(10), || live(&s, &b)).await, "router B registers");

    // The partition: A's heartbeats no longer reach calls; its clients still reach A.
    proxy.cut();
    let cut = Instant::now();
    let moved =
        eventually(Duration::from_secs(10), || async { participants(&s, &owner, &call).await.0 == b.address() }).await;
    assert!(moved, "calls declares A dead and moves the call to B");
    let moved_after = cut.elapsed();
    // Split brain: A still serves the participants, who have not noticed.
    let during: Vec<u64> = followers.iter().map(|f| f.progress.leg_received.load(Ordering::Relaxed)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (f, before) in followers.iter().zip(&during) {
        assert_eq!(f.progress.rejoins.load(Ordering::Relaxed), 0, "still on A");
        assert!(f.progress.leg_received.load(Ordering::Relaxed) > *before, "A still serves its clients");
    }
    assert!(a.holds(&call).await.is_some(), "A still holds the call during the partition");
    let first: Vec<u64> = followers.iter().map(|f| f.progress.participant.load(Ordering::Relaxed)).collect();
    if how == Partition::Long {
        let dropped =
            eventually(Duration::from_secs(10), || async { participants(&s, &owner, &call).await.1.is_empty() }).await;
        assert!(dropped, "after the grace, calls drops the participants that did not come to B");
        let held = a.holds(&call).await.unwrap_or_default();
        assert_eq!(held.len(), 2, "A still serves both, cut off from calls");
    }

    // The heal: A's next heartbeat is fenced; A ends the call, its clients re-join on B.
    proxy.heal();
    let healed = Instant::now();
    let on_b = eventually(Duration::from_secs(10), || async {
        followers.iter().all(|f| {
            f.progress.rejoins.load(Ordering::Relaxed) >= 1 && f.progress.leg_received.load(Ordering::Relaxed) >= 10
        })
    })
    .await;
    let back_after = healed.elapsed();
    assert!(on_b, "the participants held by A are told on heal and receive on B");
    let label = if how == Partition::Short { "short" } else { "long" };
    println!("partition ({label}): call moved to B {moved_after:?} after the cut; both participants receiving on B {back_after:?} after the heal");
    let now: Vec<u64> = followers.iter().map(|f| f.progress.participant.load(Ordering::Relaxed)).collect();
    match how {
        Partition::Short => assert_eq!(now, first, "the same participants re-joined"),
        Partition::Long => assert!(now.iter().all(|p| !first.contains(p)), "dropped: they joined anew"),
    }
    let pids: Vec<u64> = {
        let mut v = now;
        v.sort_unstable();
        v
    };
    let mut on_b_pids = b.holds(&call).await.unwrap_or_default();
    on_b_pids.sort_unstable();
    assert_eq!(on_b_pids, pids, "B holds both participants");
    assert_eq!(a.holds(&call).await, None, "A ended the call it no longer has");
    assert_eq!(participants(&s, &owner, &call).await, (b.address(), pids.clone()), "the store: both, on B");

    // Back to A: B is drained with a 1 s deadline, the call moves to A, which ended it when
    // fenced and now admits it again (it is listed for A), and the participants follow it.
    let mut routers_seen = vec![a.address(), b.address()];
    if how == Partition::Short {
        let drain = json!({"draining": true, "deadline_secs": 1});
        let r = send(s.http.patch(format!("{}/v1/routers/{}", s.calls, b.id)).bearer_auth(SECRET).json(&drain)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let drained = Instant::now();
        let on_a = eventually(Duration::from_secs(10), || async {
            followers.iter().all(|f| {
                f.progress.rejoins.load(Ordering::Relaxed) >= 2 && f.progress.leg_received.load(Ordering::Relaxed) >= 10
            })
        })
        .await;
        assert!(on_a, "the call moved back to A admits its participants again");
        println!("partition: moved back to A and receiving there {:?} after B's drain", drained.elapsed());
        let mut on_a_pids = a.holds(&call).await.unwrap_or_default();
        on_a_pids.sort_unstable();
        assert_eq!(on_a_pids, pids, "A holds both participants again");
        routers_seen.push(a.address());
    }

    for f in followers {
        let rep = f.thread.join().expect("follower");
        println!(
            "partition: participant {} re-joined {} time(s) in {:?} ms; routers {:?}; per sender {:?}",
            rep.participant, rep.rejoins, rep.rejoin_ms, rep.routers, rep.recv.per_sender
        );
        assert_eq!(rep.rejoins as usize, routers_seen.len() - 1, "one re-join per move");
        let routers: Vec<String> = rep.routers.iter().map(|r| r.to_string()).collect();
        assert_eq!(routers, routers_seen);
        assert!(!rep.ended, "the call went on");
    }
    a.link.abort();
    b.link.abort();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_router_is_fenced_on_heal_and_its_clients_move_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    partition_flow(cfg, dir, Partition::Short).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_router_is_fenced_on_heal_and_its_clients_move_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "partitioned_router_is_fenced_on_heal_and_its_clients_move_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    partition_flow(cfg, dir, Partition::Short).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_partition_dropped_clients_join_anew_on_heal_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    partition_flow(cfg, dir, Partition::Long).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_partition_dropped_clients_join_anew_on_heal_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let name = "long_partition_dropped_clients_join_anew_on_heal_real_servers";
    let Some(cfg) = real_servers_config(dir.path(), name) else { return };
    partition_flow(cfg, dir, Partition::Long).await;
}

/// The heartbeat answer says `fenced` when the registry had the router as not live: new, or
/// back after being declared dead; not while it beats.
#[tokio::test]
async fn heartbeat_answer_is_fenced_after_the_router_was_dead() {
    let s = start(|c| c.router.dead_after_ms = Some(1000)).await;
    let id = format!("f-{}", uniq());
    let reg = json!({"id": id, "address": "127.0.0.1:41301", "cores": 1, "load": 0.0, "admin": "http://127.0.0.1:9"});
    let beat = || s.post(format!("{}/v1/routers", s.calls), Some(SECRET), reg.clone());
    let r = beat().await;
    assert_eq!((r.status, r.body["fenced"].clone()), (200, json!(true)), "new: {:?}", r.body);
    assert_eq!(beat().await.body["fenced"], json!(false), "beating");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = beat().await;
    assert_eq!((r.status, r.body["fenced"].clone()), (200, json!(true)), "back after being dead: {:?}", r.body);
    assert_eq!(r.body["calls"], json!([]));
    assert_eq!(beat().await.body["fenced"], json!(false));
    s.shutdown().await;
}

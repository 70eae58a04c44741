//! Failover of the SD composite (issue #16 item 3): each router has its codec pool
//! (`corecast-codec` watching that router's admin API), a call with an SD receiver is mixed by
//! the pool of its router; `kill -9` of that router: the call moves, its participants re-join
//! on the other router (the SD receiver asking for SD again), and that router's pool mixes the
//! call there, while the dead router's pool stops its mixer once its router has been silent for
//! `--router-dead-ms`.
//!
//! Real `corecast-router` and `corecast-codec` processes (`cargo build -p corecast-router -p
//! corecast-codec --bins`), embedded stores.

mod common;

use std::time::{Duration, Instant};

use common::router_proc::{self, participants, spawn_codec, start_follower, start_follower_with, CodecProc};
use common::*;
use corecast_proto::session::Quality;

/// The sum of a series' samples (every worker) in a Prometheus text.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// (calls being mixed now, source RTP packets its mixers got so far) by a codec pool. (The
/// followers' synthetic video is not AV1, so no composite frame is encoded from it: what shows
/// the mixer is in the call is its sources' packets reaching it.)
async fn mixing(s: &Svc, pool: &CodecProc) -> (f64, f64) {
    let m = s.get(pool.metrics.clone(), None).await;
    let text = m.body.as_str().unwrap_or_default();
    (total(text, "corecast_codec_composites"), total(text, "corecast_codec_rtp_in_total"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sd_composite_is_mixed_again_on_the_router_the_call_moves_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    // As deployed: dead after 1.5 s of silence (routers beat every 500 ms).
    cfg.router.dead_after_ms = None;
    cfg.calls.failover_grace_ms = 3000;
    cfg.calls.max_participants = 8;
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let routers = router_proc::spawn_live(&s, &region, 2).await;
    let pools: Vec<CodecProc> = routers.iter().map(|r| spawn_codec(&s.calls, r, 2000, s.dir.path())).collect();

    let (owner, call, a) = router_proc::new_call_on(&s, &routers).await;
    let b = 1 - a;
    // Two HD publishers and one SD receiver, following the call.
    let (_, u1) = s.user().await;
    let (_, u2) = s.user().await;
    let (_, u3) = s.user().await;
    let followers = [
        start_follower(&s.calls, &u1, &call, 20),
        start_follower(&s.calls, &u2, &call, 20),
        start_follower_with(&s.calls, &u3, &call, 20, Quality::Sd),
    ];
    let mixed_on_a = eventually(Duration::from_secs(20), || async {
        let (calls, rtp_in) = mixing(&s, &pools[a]).await;
        calls >= 1.0 && rtp_in > 0.0
    })
    .await;
    assert!(mixed_on_a, "the pool of the call's router mixes it: {:?}", mixing(&s, &pools[a]).await);
    let before_b = mixing(&s, &pools[b]).await;
    assert_eq!(before_b.0, 0.0, "the other router's pool mixes nothing yet");

    let mut routers = routers;
    routers[a].child.kill().expect("kill -9");
    let killed = Instant::now();
    let mixed_on_b = eventually(Duration::from_secs(15), || async {
        let (calls, rtp_in) = mixing(&s, &pools[b]).await;
        calls >= 1.0 && rtp_in > before_b.1
    })
    .await;
    let b_ms = killed.elapsed().as_millis();
    println!("failover sd: the composite mixed on the other router {b_ms} ms after the kill");
    assert!(mixed_on_b, "the pool of the router the call moved to mixes it: {:?}", mixing(&s, &pools[b]).await);
    let stopped_on_a = eventually(Duration::from_secs(10), || async { mixing(&s, &pools[a]).await.0 == 0.0 }).await;
    println!(
        "failover sd: the dead router's pool stopped its mixer {} ms after the kill",
        killed.elapsed().as_millis()
    );
    assert!(stopped_on_a, "the dead router's pool lets its mixer go");
    let (router_after, _) = participants(&s, &owner, &call).await;
    assert_eq!(router_after, routers[b].addr, "the call moved to the other router");
    for f in followers {
        let rep = f.thread.join().expect("follower");
        assert_eq!(rep.rejoins, 1, "each participant re-joined once");
    }
    drop(pools);
    drop(routers);
    s.shutdown().await;
}

//! Reserve routers (#16 item 5): a router registered with `"reserve": true`
//! (`corecast-router --reserve`) takes calls only once the regular pool's load passes
//! `calls.reserve_threshold`, and is released when it falls below `calls.reserve_release`;
//! `GET /v1/routers` says whether the reserves are in use. On the embedded stores, and on
//! PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set.

mod common;

use common::*;
use corecast_control::config::Config;
use serde_json::json;

const SECRET: &str = "test-router-secret";

async fn reserve_flow(cfg: Config, dir: tempfile::TempDir) {
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let url = format!("{}/v1/routers", s.calls);
    let (g, v) = (format!("g-{}", uniq()), format!("v-{}", uniq()));
    let register = |id: &str, port: u16, load: f64, reserve: bool| {
        let reg = json!({"id": id, "address": format!("127.0.0.1:{port}"), "cores": 1, "load": load,
                         "admin": "http://127.0.0.1:9", "region": region, "reserve": reserve});
        s.post(url.clone(), Some(SECRET), reg)
    };
    let (_, owner) = s.user().await;
    let start =
        || async { s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await.body["router"].clone() };
    let in_use = || async { s.get(url.clone(), Some(SECRET)).await.body["reserves_in_use"].clone() };
    let (regular, spare) = (json!("127.0.0.1:41201"), json!("127.0.0.1:41202"));

    assert_eq!(register(&g, 41201, 0.5, false).await.status, 200);
    assert_eq!(register(&v, 41202, 0.0, true).await.status, 200);
    assert_eq!(start().await, regular, "the pool is below 0.8: the idle reserve is not used");
    assert_eq!(in_use().await, json!(false));
    let r = s.get(url.clone(), Some(SECRET)).await;
    let listed = r.body["routers"].as_array().unwrap().iter().find(|r| r["id"] == json!(v)).cloned().unwrap();
    assert_eq!(listed["reserve"], json!(true));

    // A peak: the regular pool passes 0.8.
    assert_eq!(register(&g, 41201, 0.85, false).await.status, 200);
    assert_eq!(start().await, spare);
    assert_eq!(in_use().await, json!(true));
    // Down to 0.7: between the thresholds, the reserves stay in use.
    assert_eq!(register(&g, 41201, 0.7, false).await.status, 200);
    assert_eq!(start().await, spare);
    assert_eq!(in_use().await, json!(true));
    // Below 0.6: released (their calls go on; new ones go to the regular pool).
    assert_eq!(register(&g, 41201, 0.5, false).await.status, 200);
    assert_eq!(start().await, regular);
    assert_eq!(in_use().await, json!(false));
    s.shutdown().await;
}

#[tokio::test]
async fn reserves_take_calls_only_past_the_threshold_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    reserve_flow(cfg, dir).await;
}

#[tokio::test]
async fn reserves_take_calls_only_past_the_threshold_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = real_servers_config(dir.path(), "reserves_take_calls_only_past_the_threshold_real_servers") else {
        return;
    };
    reserve_flow(cfg, dir).await;
}

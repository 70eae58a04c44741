//! The control-plane part of the full flow: register → login → start → 3 joins → leave →
//! end → the router is told → the call store holds no record. Runs on the embedded
//! backends, and on PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set.
//! (Media through the router is exercised by the router's own end-to-end test.)

mod common;

use std::time::Duration;

use common::*;
use corecast_control::config::Config;
use serde_json::json;

async fn flow(cfg: Config, dir: tempfile::TempDir) {
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let fake = fake_router().await;
    let reg = json!({"id": format!("r-{}", uniq()), "address": "127.0.0.1:41234", "cores": 2, "load": 0.0, "admin": fake.admin, "region": region});
    let r = s.post(format!("{}/v1/routers", s.calls), Some("test-router-secret"), reg).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let (_, owner) = s.user().await;
    let (_, b) = s.user().await;
    let (_, c) = s.user().await;
    let call = s.start_call(&owner).await;
    for t in [&owner, &b, &c] {
        let r = s.join(&call, t).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["router"], json!("127.0.0.1:41234"));
    }
    let r = s.post(format!("{}/v1/calls/{call}/leave", s.calls), Some(&c), json!({})).await;
    assert_eq!(r.status, 200);
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.body["participants"].as_array().unwrap().len(), 2);
    assert_eq!(s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await.status, 204);
    let ended = fake.ended.clone();
    let id = call.clone();
    let told = eventually(Duration::from_secs(5), || {
        let e = ended.clone();
        let id = id.clone();
        async move { e.lock().unwrap().contains(&id) }
    })
    .await;
    assert!(told, "router told about the end");
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.status, 404, "no record left");
    s.shutdown().await;
}

#[tokio::test]
async fn full_flow_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    flow(cfg, dir).await;
}

#[tokio::test]
async fn full_flow_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = real_servers_config(dir.path(), "full_flow_real_servers") else { return };
    flow(cfg, dir).await;
}

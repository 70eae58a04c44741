//! Draining a router (#16 item 4): an operator marks it with `PATCH /v1/routers/{id}` or
//! `corecast-calls routers drain ID` (the real binary); it takes no new calls, its calls go on,
//! heartbeats keep the flag, and undraining gives it calls again. On the embedded stores, and
//! on PostgreSQL + Redis + Tarantool when `CORECAST_TEST_*` is set.

mod common;

use std::time::Duration;

use common::*;
use corecast_control::config::Config;
use serde_json::json;

const SECRET: &str = "test-router-secret";

/// Runs `corecast-calls routers ARGS…` against `calls`; returns (success, stdout, stderr).
async fn cli(calls: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_corecast-calls"));
    cmd.args(["routers", "--calls-url", calls, "--router-secret", SECRET])
        .args(args)
        .env_remove("CORECAST_CONFIG")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("the CLI finishes").unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn drain_flow(cfg: Config, dir: tempfile::TempDir) {
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let url = format!("{}/v1/routers", s.calls);
    let (a, b) = (format!("a-{}", uniq()), format!("b-{}", uniq()));
    let register = |id: &str, port: u16, load: f64| {
        let reg = json!({"id": id, "address": format!("127.0.0.1:{port}"), "cores": 1, "load": load,
                         "admin": "http://127.0.0.1:9", "region": region});
        s.post(url.clone(), Some(SECRET), reg)
    };
    assert_eq!(register(&a, 41101, 0.0).await.status, 200);
    assert_eq!(register(&b, 41102, 0.5).await.status, 200);
    let (_, owner) = s.user().await;
    let (_, guest) = s.user().await;
    let start = || async { s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await };
    let first = start().await;
    assert_eq!(first.body["router"], json!("127.0.0.1:41101"), "the idle router");
    let call = first.body["call_id"].as_str().unwrap().to_owned();

    // Drained with the CLI: no new calls, whichever load it reports.
    let (ok, out, err) = cli(&s.calls, &["drain", &a]).await;
    assert!(ok, "drain: {out} {err}");
    assert!(out.contains(&a) && out.contains("draining"), "{out}");
    for _ in 0..3 {
        assert_eq!(start().await.body["router"], json!("127.0.0.1:41102"));
    }
    assert_eq!(register(&a, 41101, 0.0).await.status, 200, "it keeps heart-beating");
    assert_eq!(start().await.body["router"], json!("127.0.0.1:41102"), "heartbeats keep the flag");
    let (ok, out, _) = cli(&s.calls, &["list"]).await;
    assert!(ok);
    let line = out.lines().find(|l| l.starts_with(&a)).unwrap_or_else(|| panic!("{a} listed: {out}"));
    assert!(line.contains("live,draining"), "{line}");
    let r = s.get(url.clone(), Some(SECRET)).await;
    let listed = r.body["routers"].as_array().unwrap().iter().find(|r| r["id"] == json!(a)).cloned().unwrap();
    assert_eq!((listed["draining"].clone(), listed["live"].clone()), (json!(true), json!(true)));

    // Its calls go on: a join still goes to it.
    let j = s.join(&call, &guest).await;
    assert_eq!((j.status, j.body["router"].clone()), (200, json!("127.0.0.1:41101")), "{:?}", j.body);

    // Undrained through the API: it takes calls again.
    let patch = |id: &str, body: serde_json::Value, token: Option<&str>| {
        let mut rb = s.http.patch(format!("{url}/{id}")).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        send(rb)
    };
    assert_eq!(patch(&a, json!({"draining": false}), None).await.status, 401);
    assert_eq!(patch(&a, json!({"draining": false}), Some(&owner)).await.status, 401, "a session is not the secret");
    let r = patch(&a, json!({"draining": "no"}), Some(SECRET)).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(patch("no-such-router", json!({"draining": true}), Some(SECRET)).await.status, 404);
    let r = patch(&a, json!({"draining": false}), Some(SECRET)).await;
    assert_eq!((r.status, r.body["draining"].clone()), (200, json!(false)), "{:?}", r.body);
    assert_eq!(start().await.body["router"], json!("127.0.0.1:41101"));
    let (ok, out, _) = cli(&s.calls, &["undrain", &a]).await;
    assert!(ok && out.contains("takes new calls again"), "{out}");

    // A deadline goes with draining only (control/tests/failover.rs moves calls at one).
    let r = patch(&a, json!({"draining": false, "deadline_secs": 5}), Some(SECRET)).await;
    assert_eq!((r.status, r.field()), (422, "deadline_secs"), "{:?}", r.body);
    let r = patch(&a, json!({"draining": true, "deadline_secs": 700_000}), Some(SECRET)).await;
    assert_eq!((r.status, r.field()), (422, "deadline_secs"), "{:?}", r.body);
    let (ok, out, err) = cli(&s.calls, &["drain", &a, "--deadline-secs", "3600"]).await;
    assert!(ok && out.contains("draining"), "{out} {err}");
    assert!(cli(&s.calls, &["undrain", &a]).await.0, "undrained before its deadline: its calls stay");

    // The CLI's failures are errors with the service's answer.
    let (ok, _, err) = cli(&s.calls, &["drain", "no-such-router"]).await;
    assert!(!ok && err.contains("404"), "{err}");
    s.shutdown().await;
}

#[tokio::test]
async fn drained_router_takes_no_new_calls_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    drain_flow(cfg, dir).await;
}

#[tokio::test]
async fn drained_router_takes_no_new_calls_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = real_servers_config(dir.path(), "drained_router_takes_no_new_calls_real_servers") else { return };
    drain_flow(cfg, dir).await;
}

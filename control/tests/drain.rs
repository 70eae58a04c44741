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
    assert!(ok && out.contains("draining") && out.contains(",deadline-in-"), "{out} {err}");
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

/// The drain deadline lives with the router in the shared store: set through one calls
/// instance, which stops right after, and enforced by another instance's sweeper alone (the
/// call moves to the other router once the deadline has passed). Undraining clears it. Real
/// PostgreSQL + Redis + Tarantool only (the embedded stores serve one instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_set_through_one_instance_is_enforced_by_another_real_servers() {
    let name = "drain_deadline_set_through_one_instance_is_enforced_by_another_real_servers";
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some(cfg1) = real_servers_config(d1.path(), name) else { return };
    let mut cfg2 = real_servers_config(d2.path(), name).unwrap();
    cfg2.calls.region = cfg1.calls.region.clone();
    let region = cfg1.calls.region.clone();
    let one = start_with(cfg1, d1).await;
    let two = start_with(cfg2, d2).await;

    let (a, b) = (format!("a-{}", uniq()), format!("b-{}", uniq()));
    for (id, port, load) in [(&a, 41201, 0.0), (&b, 41202, 0.5)] {
        let reg = json!({"id": id, "address": format!("127.0.0.1:{port}"), "cores": 1, "load": load,
                         "admin": "http://127.0.0.1:9", "region": region});
        assert_eq!(one.post(format!("{}/v1/routers", one.calls), Some(SECRET), reg).await.status, 200);
    }
    let (_, owner) = one.user().await;
    let call = one.start_call(&owner).await;
    async fn router_of_call(s: &Svc, call: &str, owner: &str) -> String {
        let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(owner)).await;
        r.body["router"].as_str().unwrap_or_default().to_owned()
    }
    async fn listed(s: &Svc, id: &str) -> serde_json::Value {
        let r = s.get(format!("{}/v1/routers", s.calls), Some(SECRET)).await;
        r.body["routers"].as_array().unwrap().iter().find(|r| r["id"] == json!(id)).cloned().unwrap()
    }
    assert_eq!(router_of_call(&one, &call, &owner).await, "127.0.0.1:41201", "the idle router");

    // Drained through instance 1 with a 2 s deadline; instance 2 lists the same deadline.
    let r = send(
        one.http
            .patch(format!("{}/v1/routers/{a}", one.calls))
            .bearer_auth(SECRET)
            .json(&json!({"draining": true, "deadline_secs": 2})),
    )
    .await;
    assert_eq!((r.status, r.body["draining"].clone(), r.body["drain_due"].clone()), (200, json!(true), json!(false)));
    let deadline = r.body["drain_deadline"].as_u64().expect("the deadline is listed");
    let drained_at = std::time::Instant::now();
    one.shutdown().await;
    assert_eq!(listed(&two, &a).await["drain_deadline"], json!(deadline), "instance 2 sees the deadline");
    assert_eq!(router_of_call(&two, &call, &owner).await, "127.0.0.1:41201", "the call stays until the deadline");

    // Instance 2 alone moves the call at the deadline.
    let moved = eventually(Duration::from_secs(10), || async {
        router_of_call(&two, &call, &owner).await == "127.0.0.1:41202"
    })
    .await;
    println!("drain deadline (2 s) enforced by the other instance: call moved after {:?}", drained_at.elapsed());
    assert!(moved, "the other instance moves the call at the deadline");
    assert!(drained_at.elapsed() >= Duration::from_millis(1900), "not before the deadline");
    assert_eq!(listed(&two, &a).await["drain_due"], json!(true));
    let (ok, out, _) = cli(&two.calls, &["list"]).await;
    let line = out.lines().find(|l| l.starts_with(&a)).unwrap_or_else(|| panic!("{a} listed: {out}"));
    assert!(ok && line.contains("live,draining,deadline-passed"), "{line}");
    let text = scrape(&two.http, &two.calls).await;
    assert_eq!(sample(&text, "corecast_calls_moved_total{service=\"calls\",reason=\"drained\"}"), Some(1.0), "{text}");

    // Undraining clears the deadline; a drain without one has none.
    let (ok, out, err) = cli(&two.calls, &["undrain", &a]).await;
    assert!(ok, "{out} {err}");
    let l = listed(&two, &a).await;
    assert_eq!(
        (l["draining"].clone(), l.get("drain_deadline"), l["drain_due"].clone()),
        (json!(false), None, json!(false))
    );
    assert!(cli(&two.calls, &["drain", &a]).await.0);
    assert_eq!(listed(&two, &a).await.get("drain_deadline"), None, "a drain without a deadline");
    two.shutdown().await;
}

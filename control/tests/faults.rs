//! Fault tests: stop a real PostgreSQL, Redis or Tarantool under the running services, check
//! for 503 JSON errors and no half-written state, restart it and check the services recover
//! by themselves. Need `control/scripts/test-with-servers.sh` (skipped otherwise).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// The scenarios stop shared servers, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Script {
    path: String,
    dir: String,
}

fn script(test: &str) -> Option<Script> {
    let path = std::env::var("CORECAST_TEST_SERVERS_SCRIPT").ok()?;
    let dir = std::env::var("CORECAST_TEST_SERVERS_DIR").ok()?;
    if real_servers().pg.is_none() {
        skip(test, "CORECAST_TEST_PG");
        return None;
    }
    Some(Script { path, dir })
}

impl Script {
    async fn run(&self, cmd: &str, server: &str) {
        let st = tokio::process::Command::new("bash")
            .arg(&self.path)
            .arg(cmd)
            .arg(&self.dir)
            .arg(server)
            .status()
            .await
            .expect("run servers.sh");
        assert!(st.success(), "servers.sh {cmd} {server} failed");
    }
}

fn assert_503(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {:?}", r.body);
    assert_eq!(r.code(), "unavailable", "{what}");
    assert!(r.headers.contains_key("retry-after"));
}

const RECOVERY: Duration = Duration::from_secs(30);

/// The store errors `service`'s `/metrics` counts for `store` (every op and kind).
async fn store_errors(s: &Svc, service: &str, store: &str) -> f64 {
    let base = if service == "auth" { &s.auth } else { &s.calls };
    let text = scrape(&s.http, base).await;
    let prefix = format!("corecast_store_errors_total{{service=\"{service}\",store=\"{store}\",");
    text.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// `/readyz` of `base` is 503 and names `stores` as failing.
async fn unready(s: &Svc, base: &str, stores: &[&str]) {
    let (status, body) = probe(&s.http, base, "/readyz").await;
    assert_eq!(status, 503, "{base}/readyz: {body}");
    for st in stores {
        assert!(body.contains(&format!("\"{st}\"")), "{base}/readyz names {st}: {body}");
    }
}

#[tokio::test]
async fn postgres_down_then_back() {
    let Some(sc) = script("postgres_down_then_back") else {
        return skip("postgres_down_then_back", "CORECAST_TEST_SERVERS_SCRIPT");
    };
    let _g = SERIAL.lock().await;
    let pg = real_servers().pg.unwrap();
    let s = start(|c| c.stores.postgres_url = Some(pg)).await;
    let (login, _) = s.user().await;
    sc.run("stop-one", "pg").await;
    let ghost = format!("g{}", uniq());
    assert_503(&s.register(&ghost).await, "register with postgres down");
    assert_503(&s.login(&login, "correct horse").await, "login with postgres down");
    let text = scrape(&s.http, &s.auth).await;
    let failed = |op: &str| {
        format!("corecast_store_errors_total{{service=\"auth\",store=\"users\",op=\"{op}\",kind=\"unavailable\"}}")
    };
    assert_eq!(sample(&text, &failed("create")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &failed("by_login")), Some(1.0), "{text}");
    unready(&s, &s.auth, &["users"]).await;
    sc.run("start-one", "pg").await;
    let back = eventually(RECOVERY, || async { s.login(&login, "correct horse").await.status == 200 }).await;
    assert!(back, "auth recovers when postgres is back");
    assert_eq!(probe(&s.http, &s.auth, "/readyz").await.0, 200, "ready again");
    assert_eq!(s.login(&ghost, "correct horse").await.status, 401, "nothing half-written");
    assert_eq!(s.register(&ghost).await.status, 201);
    s.shutdown().await;
}

#[tokio::test]
async fn redis_down_then_back() {
    let Some(sc) = script("redis_down_then_back") else {
        return skip("redis_down_then_back", "CORECAST_TEST_SERVERS_SCRIPT");
    };
    let _g = SERIAL.lock().await;
    let redis = real_servers().redis.unwrap();
    let s = start(|c| c.stores.redis_url = Some(redis)).await;
    let (login, token) = s.user().await;
    let me = format!("{}/v1/me", s.auth);
    assert_eq!(s.get(me.clone(), Some(&token)).await.status, 200);
    sc.run("stop-one", "redis").await;
    assert_503(&s.get(me.clone(), Some(&token)).await, "me with redis down");
    assert_503(&s.login(&login, "correct horse").await, "login with redis down");
    assert_503(&s.post(format!("{}/v1/calls", s.calls), Some(&token), json!({})).await, "start with redis down");
    let text = scrape(&s.http, &s.auth).await;
    let failed = |store: &str, op: &str| {
        format!("corecast_store_errors_total{{service=\"auth\",store=\"{store}\",op=\"{op}\",kind=\"unavailable\"}}")
    };
    assert_eq!(sample(&text, &failed("sessions", "touch")), Some(1.0), "the /v1/me: {text}");
    assert_eq!(sample(&text, &failed("failures", "count")), Some(1.0), "the login's throttle check: {text}");
    let text = scrape(&s.http, &s.calls).await;
    let line = "corecast_store_errors_total{service=\"calls\",store=\"sessions\",op=\"touch\",kind=\"unavailable\"}";
    assert_eq!(sample(&text, line), Some(1.0), "the start: {text}");
    unready(&s, &s.auth, &["sessions", "failures"]).await;
    unready(&s, &s.calls, &["sessions"]).await;
    sc.run("start-one", "redis").await;
    let back = eventually(RECOVERY, || async { s.login(&login, "correct horse").await.status == 200 }).await;
    assert!(back, "auth recovers when redis is back");
    assert_eq!(probe(&s.http, &s.auth, "/readyz").await.0, 200, "auth ready again");
    assert_eq!(probe(&s.http, &s.calls, "/readyz").await.0, 200, "calls ready again");
    s.shutdown().await;
}

#[tokio::test]
async fn tarantool_down_then_back() {
    let Some(sc) = script("tarantool_down_then_back") else {
        return skip("tarantool_down_then_back", "CORECAST_TEST_SERVERS_SCRIPT");
    };
    let _g = SERIAL.lock().await;
    let tt = real_servers().tarantool.unwrap();
    let region = format!("t-{}", uniq());
    let s = start(|c| {
        c.stores.tarantool_url = Some(tt);
        c.calls.region = region.clone();
    })
    .await;
    let routers = format!("{}/v1/routers", s.calls);
    let reg = json!({"id": format!("f-{}", uniq()), "address": "127.0.0.1:41301", "cores": 1, "load": 0.0,
                     "admin": "http://127.0.0.1:9", "region": region});
    assert_eq!(s.post(routers.clone(), Some("test-router-secret"), reg.clone()).await.status, 200);
    let (_, owner) = s.user().await;
    let (_, other) = s.user().await;
    let call = s.start_call(&owner).await;
    assert_eq!(s.join(&call, &owner).await.status, 200);
    sc.run("stop-one", "tarantool").await;
    // The router registry is in Tarantool too: a heartbeat is refused (the router retries at
    // its next interval) and the operators' list is unavailable.
    assert_503(
        &s.post(routers.clone(), Some("test-router-secret"), reg.clone()).await,
        "heartbeat with tarantool down",
    );
    assert_503(&s.get(routers.clone(), Some("test-router-secret")).await, "router list with tarantool down");
    assert_503(&s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await, "start with tarantool down");
    assert_503(&s.join(&call, &other).await, "join with tarantool down");
    assert_503(&s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await, "get with tarantool down");
    let text = scrape(&s.http, &s.calls).await;
    // A start places the call and stores it in one step of the router registry's store.
    let line =
        "corecast_store_errors_total{service=\"calls\",store=\"routers\",op=\"place_call\",kind=\"unavailable\"}";
    assert_eq!(sample(&text, line), Some(1.0), "{text}");
    assert!(store_errors(&s, "calls", "calls").await >= 2.0, "join and get failed: {text}");
    unready(&s, &s.calls, &["calls"]).await;
    sc.run("start-one", "tarantool").await;
    let url = format!("{}/v1/calls/{call}", s.calls);
    let back = eventually(RECOVERY, || async { s.get(url.clone(), Some(&owner)).await.status == 200 }).await;
    assert!(back, "calls recovers when tarantool is back");
    let r = s.get(url.clone(), Some(&owner)).await;
    let n = r.body["participants"].as_array().unwrap().len();
    assert_eq!(n, 1, "the join refused during the outage left nothing behind: {:?}", r.body);
    assert_eq!(s.join(&call, &other).await.status, 200);
    assert_eq!(s.post(routers.clone(), Some("test-router-secret"), reg).await.status, 200, "heartbeats again");
    let r = s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await;
    assert_eq!((r.status, r.body["router"].as_str()), (201, Some("127.0.0.1:41301")), "placed on it: {:?}", r.body);
    assert_eq!(s.delete(url.clone(), Some(&owner)).await.status, 204);
    assert_eq!(probe(&s.http, &s.calls, "/readyz").await.0, 200, "ready again");
    s.shutdown().await;
}

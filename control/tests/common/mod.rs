//! Shared test harness: starts both services in-process on ephemeral ports.
#![allow(dead_code)]

pub mod live_router;
pub mod router_proc;

use std::time::Duration;

use corecast_control::config::Config;
use corecast_control::run::{self, Running};
use serde_json::{json, Value};

/// URLs of real servers from `control/scripts/servers.sh` (absent: those tests skip).
pub struct RealServers {
    pub pg: Option<String>,
    pub redis: Option<String>,
    pub tarantool: Option<String>,
}

pub fn real_servers() -> RealServers {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    RealServers {
        pg: get("CORECAST_TEST_PG"),
        redis: get("CORECAST_TEST_REDIS"),
        tarantool: get("CORECAST_TEST_TARANTOOL"),
    }
}

pub fn skip(test: &str, var: &str) {
    // `make test` sets this: there, a missing server is a failure, not a skip.
    if std::env::var_os("CORECAST_TEST_REQUIRE_SERVERS").is_some() {
        panic!("{test}: {var} is not set but CORECAST_TEST_REQUIRE_SERVERS is");
    }
    eprintln!("SKIPPED {test}: {var} is not set (run control/scripts/test-with-servers.sh)");
}

/// A short unique suffix (logins are ≤ 20 characters).
pub fn uniq() -> String {
    let mut b = [0u8; 5];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

pub struct Svc {
    pub running: Option<Running>,
    pub http: reqwest::Client,
    pub auth: String,
    pub calls: String,
    pub dir: tempfile::TempDir,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.stores.data_dir = dir.to_owned();
    // The routers the tests start accept tokens signed with the development key.
    cfg.insecure_dev_keys = true;
    cfg.auth.hash_workers = 2;
    cfg.calls.max_participants = 3;
    cfg.router.secret = Some("test-router-secret".into());
    cfg.router.address = "127.0.0.1:40000".into();
    cfg.router.admin = "http://127.0.0.1:9".into();
    // The tests' routers register by hand, now and then: not dead for a while (failover.rs
    // sets its own).
    cfg.router.dead_after_ms = Some(15_000);
    cfg
}

/// [`test_config`] on the real PostgreSQL, Redis and Tarantool (`None`, after saying the
/// test `name` is skipped, when they are not configured), in a region of its own: the shared
/// Tarantool holds other tests' routers.
pub fn real_servers_config(dir: &std::path::Path, name: &str) -> Option<Config> {
    let rs = real_servers();
    let (Some(pg), Some(redis), Some(tt)) = (rs.pg, rs.redis, rs.tarantool) else {
        skip(name, "CORECAST_TEST_PG/REDIS/TARANTOOL");
        return None;
    };
    let mut cfg = test_config(dir);
    cfg.stores.postgres_url = Some(pg);
    cfg.stores.redis_url = Some(redis);
    cfg.stores.tarantool_url = Some(tt);
    cfg.calls.region = format!("t-{}", uniq());
    Some(cfg)
}

pub async fn start(f: impl FnOnce(&mut Config)) -> Svc {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    f(&mut cfg);
    start_with(cfg, dir).await
}

pub async fn start_with(cfg: Config, dir: tempfile::TempDir) -> Svc {
    let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let c = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = run::start_both(&cfg, a, c).await.expect("start services");
    let auth = format!("http://{}", running.auth_addr);
    let calls = format!("http://{}", running.calls_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    Svc { running: Some(running), http, auth, calls, dir }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Resp { status, headers, body }
}

impl Svc {
    pub async fn post(&self, url: String, token: Option<&str>, body: Value) -> Resp {
        let mut rb = self.http.post(url).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        send(rb).await
    }

    pub async fn get(&self, url: String, token: Option<&str>) -> Resp {
        let mut rb = self.http.get(url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        send(rb).await
    }

    pub async fn delete(&self, url: String, token: Option<&str>) -> Resp {
        let mut rb = self.http.delete(url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        send(rb).await
    }

    pub async fn register(&self, login: &str) -> Resp {
        let body = json!({"login": login, "email": format!("{login}@example.org"), "name": "Test User", "password": "correct horse"});
        self.post(format!("{}/v1/register", self.auth), None, body).await
    }

    pub async fn login(&self, login: &str, password: &str) -> Resp {
        self.post(format!("{}/v1/login", self.auth), None, json!({"login": login, "password": password})).await
    }

    /// Registers a fresh user and logs in; returns (login, session token).
    pub async fn user(&self) -> (String, String) {
        let login = format!("u{}", uniq());
        let r = self.register(&login).await;
        assert_eq!(r.status, 201, "register: {:?}", r.body);
        let r = self.login(&login, "correct horse").await;
        assert_eq!(r.status, 200, "login: {:?}", r.body);
        (login, r.body["session"].as_str().expect("session").to_owned())
    }

    pub async fn start_call(&self, token: &str) -> String {
        let r = self.post(format!("{}/v1/calls", self.calls), Some(token), json!({})).await;
        assert_eq!(r.status, 201, "start: {:?}", r.body);
        r.body["call_id"].as_str().expect("call_id").to_owned()
    }

    pub async fn join(&self, call: &str, token: &str) -> Resp {
        self.post(format!("{}/v1/calls/{call}/join", self.calls), Some(token), json!({})).await
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// The value of one sample of a Prometheus text scrape (`name{labels}` exactly as written).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `GET {base}/metrics` (a 200 in the Prometheus text format), as text.
pub async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let r = http.get(format!("{base}/metrics")).send().await.expect("scrape");
    assert_eq!(r.status().as_u16(), 200, "{base}/metrics");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{base}/metrics: {ct}");
    r.text().await.expect("metrics text")
}

/// The status of `GET {base}{path}` (`/healthz`, `/readyz`) and its body.
pub async fn probe(http: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let r = http.get(format!("{base}{path}")).send().await.expect("probe");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A fake router admin API recording `DELETE /v1/calls/{id}`.
pub struct FakeRouter {
    pub admin: String,
    pub ended: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// What `GET /v1/calls` answers.
    pub held: std::sync::Arc<std::sync::Mutex<Value>>,
}

pub async fn fake_router() -> FakeRouter {
    use axum::extract::{Path, State};
    use axum::routing::{delete, get};
    let ended = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let held = std::sync::Arc::new(std::sync::Mutex::new(json!({"calls": []})));
    let h2 = held.clone();
    let app = axum::Router::new()
        .route(
            "/v1/calls/{id}",
            delete(
                |State(e): State<std::sync::Arc<std::sync::Mutex<Vec<String>>>>, Path(id): Path<String>| async move {
                    e.lock().unwrap().push(id);
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .route("/v1/calls", get(move || async move { axum::Json(h2.lock().unwrap().clone()) }))
        .with_state(ended.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    FakeRouter { admin, ended, held }
}

/// Polls `f` until it returns true or `max` elapses.
pub async fn eventually<F, Fut>(max: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() >= max {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The whole flow with a real router: register → login → start → 3 joins →
//! media flows through the router for all three with the issued tokens →
//! leave → end → the router has dropped the call and the call store holds no
//! record of it. Runs on the embedded stores, and on PostgreSQL + Redis +
//! Tarantool when `CORECAST_TEST_*` is set.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::live_router::{self, LiveRouter};
use common::*;
use corecast_client::{Client, MediaPlan};
use corecast_control::config::Config;
use corecast_core::RouterConfig;
use corecast_proto::join_key::JoinKey;
use corecast_proto::session::Quality;
use corecast_proto::token;
use serde_json::json;

async fn start_router(calls_url: &str, region: &str) -> LiveRouter {
    // A short silence timeout, so that the test can watch a silent participant time out.
    let core = RouterConfig { silence_timeout: Duration::from_secs(3), ..RouterConfig::default() };
    live_router::start_with(calls_url, region, "live", Duration::from_millis(200), core).await
}

async fn flow(cfg: Config, dir: tempfile::TempDir) {
    let region = cfg.calls.region.clone();
    let s = start_with(cfg, dir).await;
    let r = start_router(&s.calls, &region).await;
    let router_addr = r.server.addresses()[0].to_string();

    let (_, owner) = s.user().await;
    let (_, b) = s.user().await;
    let (_, c) = s.user().await;
    // The call is placed on the live router once it has registered.
    let mut call = String::new();
    let mut starts = std::collections::BTreeMap::<u16, u64>::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call.is_empty() && std::time::Instant::now() < deadline {
        let resp = s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await;
        *starts.entry(resp.status).or_default() += 1;
        if resp.status == 201 && resp.body["router"] == json!(router_addr) {
            call = resp.body["call_id"].as_str().unwrap().to_string();
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let placed = !call.is_empty();
    assert!(placed, "a call is placed on the registered router");

    let mut grants = Vec::new();
    for t in [&owner, &b, &c] {
        let resp = s.join(&call, t).await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        assert_eq!(resp.body["router"], json!(router_addr));
        grants.push((
            resp.body["participant_id"].as_u64().unwrap(),
            token::decode_text(resp.body["token"].as_str().unwrap()).unwrap(),
            JoinKey::from_text(resp.body["join_key"].as_str().unwrap()).expect("a join key beside the token"),
        ));
    }
    let addr = r.server.addresses()[0];
    let reports = tokio::task::spawn_blocking(move || {
        let clients: Vec<Client> = grants
            .iter()
            .map(|(pid, tok, key)| Client::join(addr, tok, key, *pid, Quality::Hd).expect("router admits the token"))
            .collect();
        let rx: Vec<_> = clients.iter().map(|c| c.start_receiving(false)).collect();
        let plan = MediaPlan { video_fps: 50, max_packets: Some(300), ..Default::default() };
        std::thread::scope(|sc| {
            for c in &clients {
                sc.spawn(|| c.send_media(&plan, false));
            }
        });
        for h in &rx {
            h.wait_for(600, Duration::from_secs(20));
        }
        let reps: Vec<_> = rx.into_iter().map(|h| h.finish()).collect();
        // The third participant leaves through the router.
        clients[2].leave().unwrap();
        (reps, clients)
    })
    .await
    .unwrap();
    let (reps, clients) = reports;
    // The owner (and B, until B leaves through the calls service) keep their
    // places with keepalives until told to go silent: on a slow machine the
    // steps below may take longer than the 3 s silence timeout.
    let clients = Arc::new(clients);
    let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keepalive = {
        let (clients, alive) = (clients.clone(), alive.clone());
        std::thread::spawn(move || {
            while alive.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = clients[0].keepalive();
                let _ = clients[1].keepalive();
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    for rep in &reps {
        assert_eq!(
            (rep.unique, rep.corrupt, rep.per_sender.len()),
            (600, 0, 2),
            "every participant gets the other two"
        );
    }
    // The router reports the leave; the calls service forgets the participant.
    let forgotten = eventually(Duration::from_secs(10), || async {
        let g = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
        g.body["participants"].as_array().map(|a| a.len()) == Some(2)
    })
    .await;
    assert!(forgotten, "a leave at the router reaches the call store");
    // B leaves through the calls service: the router drops B at once.
    let left = s.post(format!("{}/v1/calls/{call}/leave", s.calls), Some(&b), json!({})).await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    let srv = r.server.clone();
    let only_owner = eventually(Duration::from_secs(10), || {
        let srv = srv.clone();
        async move {
            tokio::task::spawn_blocking(move || srv.snapshot().first().map(|c| c.participants.len()) == Some(1))
                .await
                .unwrap()
        }
    })
    .await;
    assert!(only_owner, "a leave through the calls service reaches the router");

    // The owner goes silent: the router times it out and the call store
    // forgets it too (after the router's report of B's removal, which must not
    // hold later events back).
    alive.store(false, std::sync::atomic::Ordering::Relaxed);
    keepalive.join().unwrap();
    let timed_out = eventually(Duration::from_secs(20), || async {
        let g = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
        g.body["participants"].as_array().map(|a| a.len()) == Some(0)
    })
    .await;
    assert!(timed_out, "a silence timeout at the router reaches the call store");

    // End: the router drops the call at once and the store holds nothing.
    assert_eq!(s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await.status, 204);
    let srv = r.server.clone();
    let dropped = eventually(Duration::from_secs(10), || {
        let srv = srv.clone();
        async move { tokio::task::spawn_blocking(move || srv.snapshot().is_empty()).await.unwrap() }
    })
    .await;
    assert!(dropped, "the router dropped the call");
    assert_eq!(s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await.status, 404, "no record left");
    scrapes_agree(&s, &r, &starts).await;
    drop(clients);
    r.server.shutdown();
    s.shutdown().await;
}

/// Every service's `/metrics` after the call counts the requests and packets the flow made,
/// and every service is live and ready.
async fn scrapes_agree(s: &Svc, r: &LiveRouter, starts: &std::collections::BTreeMap<u16, u64>) {
    for base in [&s.auth, &s.calls, &r.admin] {
        assert_eq!(probe(&s.http, base, "/healthz").await.0, 200, "{base}/healthz");
        let (status, body) = probe(&s.http, base, "/readyz").await;
        assert_eq!(status, 200, "{base}/readyz: {body}");
    }
    // Auth: three users registered and logged in on the auth listener.
    let auth = scrape(&s.http, &s.auth).await;
    let req = |route: &str, method: &str, status: u16| {
        format!("corecast_http_requests_total{{service=\"auth\",route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
    };
    assert_eq!(sample(&auth, &req("/v1/register", "POST", 201)), Some(3.0), "{auth}");
    assert_eq!(sample(&auth, &req("/v1/login", "POST", 200)), Some(3.0), "{auth}");
    let count = "corecast_http_request_duration_seconds_count{service=\"auth\",route=\"/v1/login\",method=\"POST\"}";
    assert_eq!(sample(&auth, count), Some(3.0), "{auth}");
    assert!(!auth.contains("corecast_store_errors_total{"), "no store failed: {auth}");
    // Calls: the starts (until the router had registered), three joins, a leave, an end.
    let calls = scrape(&s.http, &s.calls).await;
    let req = |route: &str, method: &str, status: u16| {
        format!("corecast_http_requests_total{{service=\"calls\",route=\"{route}\",method=\"{method}\",status=\"{status}\"}}")
    };
    for (status, n) in starts {
        assert_eq!(sample(&calls, &req("/v1/calls", "POST", *status)), Some(*n as f64), "{calls}");
    }
    assert_eq!(sample(&calls, &req("/v1/calls/{id}/join", "POST", 200)), Some(3.0), "{calls}");
    assert_eq!(sample(&calls, &req("/v1/calls/{id}/leave", "POST", 200)), Some(1.0), "{calls}");
    assert_eq!(sample(&calls, &req("/v1/calls/{id}", "DELETE", 204)), Some(1.0), "{calls}");
    assert_eq!(sample(&calls, &req("/v1/calls/{id}", "GET", 404)), Some(1.0), "{calls}");
    assert!(sample(&calls, &req("/v1/routers", "POST", 200)).unwrap_or(0.0) >= 1.0, "heartbeats: {calls}");
    let count =
        "corecast_http_request_duration_seconds_count{service=\"calls\",route=\"/v1/calls/{id}/join\",method=\"POST\"}";
    assert_eq!(sample(&calls, count), Some(3.0), "{calls}");
    assert!(!calls.contains("corecast_store_errors_total{"), "no store failed: {calls}");
    // Router: three joins; each participant's 300 packets forwarded to the two others.
    let router = scrape(&s.http, &r.admin).await;
    assert_eq!(sample(&router, "corecast_joins_total{worker=\"0\"}"), Some(3.0), "{router}");
    assert_eq!(sample(&router, "corecast_forwarded_rtp_total{worker=\"0\"}"), Some(1800.0), "{router}");
    assert_eq!(sample(&router, "corecast_timeouts_total{worker=\"0\"}"), Some(1.0), "{router}");
    assert_eq!(sample(&router, "corecast_participants{worker=\"0\"}"), Some(0.0), "{router}");
    assert!(sample(&router, "corecast_rx_datagrams_total{worker=\"0\"}").unwrap() >= 900.0 + 3.0, "{router}");
    assert!(sample(&router, "corecast_tx_datagrams_total{worker=\"0\"}").unwrap() >= 1800.0, "{router}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_media_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_media_real_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = real_servers_config(dir.path(), "full_flow_with_media_real_servers") else { return };
    flow(cfg, dir).await;
}

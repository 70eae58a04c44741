//! The whole flow with a real router: register → login → start → 3 joins →
//! media flows through the router for all three with the issued tokens →
//! leave → end → the router has dropped the call and the call store holds no
//! record of it. Runs on the embedded stores, and on PostgreSQL + Redis +
//! Tarantool when `CORECAST_TEST_*` is set.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use corecast_client::{Client, MediaPlan};
use corecast_control::config::Config;
use corecast_core::RouterConfig;
use corecast_proto::join_key::{JoinKey, JoinSecret};
use corecast_proto::session::Quality;
use corecast_proto::token;
use corecast_router::server::{RouterServer, ServerConfig};
use corecast_router::{admin, link};
use serde_json::json;

struct LiveRouter {
    server: Arc<RouterServer>,
}

async fn start_router(calls_url: &str, region: &str) -> LiveRouter {
    let server = Arc::new(
        RouterServer::start(ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise_ip: None,
            workers: 1,
            cpus: vec![],
            backend: "auto".into(),
            // Short, so that the test can watch a silent participant time out.
            core: RouterConfig {
                silence_timeout: Duration::from_secs(3),
                join_secret: Some(JoinSecret::new(b"test-router-secret")),
                ..RouterConfig::default()
            },
            public_key: token::dev_signing_key().verifying_key(),
            io: Default::default(),
        })
        .expect("router starts"),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", l.local_addr().unwrap());
    let app = admin::routes(admin::AdminState { server: server.clone(), secret: Some("test-router-secret".into()) });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events = server.events().clone();
    std::thread::spawn(move || {
        while let Ok(e) = events.recv() {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    let cfg = link::LinkConfig {
        calls_url: calls_url.to_string(),
        router_id: format!("live-{}", uniq()),
        region: region.to_owned(),
        reserve: false,
        secret: Some("test-router-secret".into()),
        admin_url,
        heartbeat: Duration::from_millis(200),
    };
    tokio::spawn(link::run(cfg, server.clone(), rx));
    LiveRouter { server }
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
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call.is_empty() && std::time::Instant::now() < deadline {
        let resp = s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await;
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
    drop(clients);
    r.server.shutdown();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_media_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    flow(cfg, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_media_real_servers() {
    let rs = real_servers();
    let (Some(pg), Some(redis), Some(tt)) = (rs.pg, rs.redis, rs.tarantool) else {
        return skip("full_flow_with_media_real_servers", "CORECAST_TEST_PG/REDIS/TARANTOOL");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.stores.postgres_url = Some(pg);
    cfg.stores.redis_url = Some(redis);
    cfg.stores.tarantool_url = Some(tt);
    // The shared Tarantool holds other tests' routers: a region of its own keeps them apart.
    cfg.calls.region = format!("t-{}", uniq());
    flow(cfg, dir).await;
}

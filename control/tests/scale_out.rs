//! Scale-out of the calls service (#16 item 1): two calls instances on their own ports over
//! one Tarantool (users in PostgreSQL, sessions in Redis) behind a round-robin HTTP balancer,
//! as nginx would put them. Two real routers register and heart-beat through the balancer,
//! so each heartbeat reaches either instance; both instances place calls on both routers;
//! a leg opened through one instance and closed through the other, joins and leaves split
//! across them, and an end through the other instance leave the store and the router right.
//! Needs the real servers (`control/scripts/test-with-servers.sh`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::live_router::{self, LiveRouter};
use common::*;
use corecast_control::stores::tarantool::TarantoolCallStore;
use corecast_control::stores::CallStore;
use corecast_control::tarantool::{Tarantool, TarantoolUrl};
use serde_json::{json, Value};

const SECRET: &str = "test-router-secret";
const WHIP_OFFER: &str = include_str!("../../router/proto/tests/fixtures/sdp/chromium-whip-offer.sdp");

/// A round-robin HTTP balancer: each request (not each connection, as nginx with upstream
/// keep-alive) goes to the next backend. Records which backend each router registration
/// (`POST /v1/routers`, by router id) reached.
struct Balancer {
    url: String,
    registrations: Arc<Mutex<Vec<(String, usize)>>>,
}

async fn balancer(backends: Vec<String>) -> Balancer {
    let next = Arc::new(AtomicUsize::new(0));
    let registrations = Arc::new(Mutex::new(Vec::new()));
    let seen = registrations.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().unwrap();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (http, backends, next, seen) = (http.clone(), backends.clone(), next.clone(), seen.clone());
        async move {
            let i = next.fetch_add(1, Ordering::Relaxed) % backends.len();
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            if parts.method == axum::http::Method::POST && parts.uri.path() == "/v1/routers" {
                if let Some(id) =
                    serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["id"].as_str().map(String::from))
                {
                    seen.lock().unwrap().push((id, i));
                }
            }
            let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let mut rb = http.request(parts.method.clone(), format!("{}{path}", backends[i])).body(body);
            for (k, v) in &parts.headers {
                if k != axum::http::header::HOST {
                    rb = rb.header(k, v);
                }
            }
            match rb.send().await {
                Ok(r) => {
                    let mut out = axum::http::Response::builder().status(r.status());
                    for (k, v) in r.headers() {
                        out = out.header(k, v);
                    }
                    out.body(axum::body::Body::from(r.bytes().await.unwrap_or_default())).unwrap()
                }
                Err(_) => axum::http::Response::builder().status(502).body(axum::body::Body::empty()).unwrap(),
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    Balancer { url, registrations }
}

/// A real router registering through `calls_url`, beating every second (as deployed: 1/3 of
/// the time-to-live, calls' dead_after_ms of 3 s).
async fn start_router(calls_url: &str, region: &str) -> LiveRouter {
    live_router::start(calls_url, region, "so", Duration::from_secs(1)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_instances_share_the_router_registry_and_the_calls() {
    let rs = real_servers();
    let (Some(pg), Some(redis), Some(tt)) = (rs.pg, rs.redis, rs.tarantool) else {
        return skip("two_calls_instances_share_the_router_registry_and_the_calls", "CORECAST_TEST_PG/REDIS/TARANTOOL");
    };
    // The shared Tarantool holds other tests' routers: a region of its own keeps them apart.
    let region = format!("t-{}", uniq());
    let instance = |dir: &std::path::Path| {
        let mut cfg = test_config(dir);
        cfg.stores.postgres_url = Some(pg.clone());
        cfg.stores.redis_url = Some(redis.clone());
        cfg.stores.tarantool_url = Some(tt.clone());
        cfg.calls.region = region.clone();
        cfg.router.dead_after_ms = Some(3000);
        cfg
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_with(instance(da.path()), da).await;
    let b = start_with(instance(db.path()), db).await;
    let lb = balancer(vec![a.calls.clone(), b.calls.clone()]).await;
    let store = TarantoolCallStore::new(Tarantool::new(&TarantoolUrl::parse(&tt).unwrap()));

    let r1 = start_router(&lb.url, &region).await;
    let r2 = start_router(&lb.url, &region).await;
    let address_of = |id: &str| if id == r1.id { r1.address() } else { r2.address() };

    // Both routers registered through the balancer; each instance lists both as live.
    let both_live = |s: &Svc| {
        let url = format!("{}/v1/routers", s.calls);
        let (ids, http) = ([r1.id.clone(), r2.id.clone()], s.http.clone());
        async move {
            let r = send(http.get(url).bearer_auth(SECRET)).await;
            let live: Vec<&str> = r.body["routers"]
                .as_array()
                .map(|a| a.iter().filter(|r| r["live"] == json!(true)).filter_map(|r| r["id"].as_str()).collect())
                .unwrap_or_default();
            ids.iter().all(|id| live.contains(&id.as_str()))
        }
    };
    assert!(eventually(Duration::from_secs(10), || both_live(&a)).await, "instance A sees both routers");
    assert!(both_live(&b).await, "instance B sees both routers");
    let r = b.get(format!("{}/v1/routers", b.calls), None).await;
    assert_eq!(r.status, 401, "the registry is for operators with the router secret");
    // Heartbeats went to both instances.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let regs = lb.registrations.lock().unwrap();
            (0..2).all(|i| regs.iter().any(|(_, b)| *b == i))
        })
        .await,
        "registrations reached both instances: {:?}",
        lb.registrations.lock().unwrap()
    );

    // Calls started through either instance are placed on the registered routers; each
    // instance places on both (a heartbeat resets a router's placement count, so keep
    // starting until both have been chosen: bounded).
    let (_, owner) = a.user().await;
    let (_, guest) = b.user().await;
    let mut calls = Vec::new();
    for s in [&a, &b] {
        let mut used = std::collections::BTreeSet::new();
        for _ in 0..12 {
            let r = s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            let call = r.body["call_id"].as_str().unwrap().to_owned();
            let id: uuid::Uuid = call.parse().unwrap();
            let stored = store.get(id).await.unwrap().expect("the call is in Tarantool");
            assert!(
                [&r1.id, &r2.id].contains(&&stored.router.id),
                "placed on a registered router: {:?}",
                stored.router
            );
            assert_eq!(
                r.body["router"],
                json!(address_of(&stored.router.id)),
                "the client is sent where it was placed"
            );
            used.insert(stored.router.id.clone());
            calls.push((call, stored.router.id));
            if used.len() == 2 {
                break;
            }
        }
        assert_eq!(used.len(), 2, "{} placed calls on both routers", s.calls);
    }

    // A call started through A: a WebRTC leg opened through B reaches the call's router
    // (its admin URL and the secret come from the shared store), joins and leaves split
    // across the instances, and an end through B.
    let (call, router_id) = calls[0].clone();
    let router = if router_id == r1.id { &r1 } else { &r2 };
    let r = send(
        b.http
            .post(format!("{}/v1/calls/{call}/whip", b.calls))
            .bearer_auth(&owner)
            .header("content-type", "application/sdp")
            .body(WHIP_OFFER),
    )
    .await;
    assert_eq!(r.status, 201, "WHIP through the other instance: {:?}", r.body);
    let location = r.headers["location"].to_str().unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(5), || async { router.holds(&call).await.is_some_and(|p| p.len() == 1) }).await,
        "the router holds the leg opened through B"
    );
    let j = a.join(&call, &guest).await;
    assert_eq!(j.status, 200, "{:?}", j.body);
    assert_eq!(j.body["router"], json!(router.address()));
    let guest_pid = j.body["participant_id"].as_u64().unwrap();
    let id: uuid::Uuid = call.parse().unwrap();
    let pids = |c: corecast_control::stores::Call| c.participants.iter().map(|p| p.participant_id).collect::<Vec<_>>();
    assert_eq!(pids(store.get(id).await.unwrap().unwrap()).len(), 2, "the leg and the guest");
    let r = b.post(format!("{}/v1/calls/{call}/leave", b.calls), Some(&guest), json!({})).await;
    assert_eq!((r.status, r.body["participant_id"].as_u64()), (200, Some(guest_pid)), "leave through B: {:?}", r.body);
    let left = pids(store.get(id).await.unwrap().unwrap());
    assert_eq!(left.len(), 1, "only the leg is left in the store: {left:?}");
    assert!(!left.contains(&guest_pid));
    for s in [&a, &b] {
        let v = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
        assert_eq!(v.body["participants"].as_array().map(Vec::len), Some(1), "{} reads the same call", s.calls);
    }
    // The leg closed through A (opened through B): gone from the store and the router.
    let r = a.delete(format!("{}{location}", a.calls), Some(&owner)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(store.get(id).await.unwrap().unwrap().participants.is_empty());
    assert!(
        eventually(Duration::from_secs(5), || async { router.holds(&call).await.is_none_or(|p| p.is_empty()) }).await,
        "the router dropped the leg closed through A"
    );
    // Ended through B (started through A): no record left, and the router is told.
    let r = a.join(&call, &owner).await;
    assert_eq!(r.status, 200);
    assert_eq!(b.delete(format!("{}/v1/calls/{call}", b.calls), Some(&owner)).await.status, 204);
    assert_eq!(store.get(id).await.unwrap(), None, "no record left");
    assert!(
        eventually(Duration::from_secs(5), || async { router.holds(&call).await.is_none() }).await,
        "the router ended the call"
    );
    assert_eq!(a.get(format!("{}/v1/calls/{call}", a.calls), Some(&owner)).await.status, 404);

    // A router that stops heart-beating is no longer chosen by either instance (3 intervals).
    r2.link.abort();
    let gone = eventually(Duration::from_secs(10), || async {
        let r = a.get(format!("{}/v1/routers", a.calls), Some(SECRET)).await;
        r.body["routers"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["id"] == json!(r2.id) && r["live"] == json!(false)))
    })
    .await;
    assert!(gone, "the silent router is declared not live");
    for s in [&a, &b, &a, &b] {
        let r = s.post(format!("{}/v1/calls", s.calls), Some(&owner), json!({})).await;
        assert_eq!(r.body["router"], json!(r1.address()), "only the live router is chosen: {:?}", r.body);
    }

    r1.link.abort();
    r1.server.shutdown();
    r2.server.shutdown();
    a.shutdown().await;
    b.shutdown().await;
}

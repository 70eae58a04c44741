//! The router's admin API and its link to the calls service: registration
//! with re-sync (fenced after a partition: shares of calls homed elsewhere end too; a call
//! listed again admits again), leave reports, and ending a call over HTTP.
//!
//! The calls side here is a minimal stand-in that records what it is sent;
//! the control crate's full-flow test runs the real calls service.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::Json;
use corecast_client::Client;
use corecast_core::RouterConfig;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_router::{admin, link};
use serde_json::{json, Value};

fn tok(call: CallId, pid: u64) -> Vec<u8> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    let c = Claims { call_id: call, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms: exp };
    token::sign(&token::dev_signing_key(), &c).to_vec()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn registration_resyncs_leaves_are_reported_and_admin_ends_calls() {
    let server = Arc::new(common::start_with("basic", 1, RouterConfig::default()));
    let router = server.addresses()[0];
    let (call_a, call_b) = (CallId([0xA; 16]), CallId([0xB; 16]));
    let p1 = Client::join_dev(router, &tok(call_a, 1), 1, Quality::Hd).unwrap();
    let p2 = Client::join_dev(router, &tok(call_a, 2), 2, Quality::Hd).unwrap();
    let _ghost = Client::join_dev(router, &tok(call_a, 5), 5, Quality::Hd).unwrap();
    let _other = Client::join_dev(router, &tok(call_b, 3), 3, Quality::Hd).unwrap();
    // The call's mixer: calls issued its token but does not list it.
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    let mc = Claims { call_id: call_a, participant_id: ParticipantId(9), role: Role::Mixer, expires_at_ms: exp };
    let _mixer = Client::join_dev(router, &token::sign(&token::dev_signing_key(), &mc), 9, Quality::Hd).unwrap();
    let r1 = p1.start_receiving(false);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let registrations: Arc<Mutex<Vec<Value>>> = Arc::default();
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (regs, evs) = (registrations.clone(), events.clone());
    let call_a_text = call_a.to_string();
    let calls_stub = axum::Router::new()
        .route(
            "/v1/routers",
            post(move |Json(v): Json<Value>| {
                let regs = regs.clone();
                let call_a_text = call_a_text.clone();
                async move {
                    regs.lock().unwrap().push(v);
                    Json(json!({ "calls": [{ "call_id": call_a_text, "participants": [1, 2] }] }))
                }
            }),
        )
        .route(
            "/v1/routers/{id}/events",
            post(move |Json(v): Json<Value>| {
                let evs = evs.clone();
                async move {
                    evs.lock().unwrap().extend(v["events"].as_array().cloned().unwrap_or_default());
                    Json(json!({}))
                }
            }),
        );
    let (calls_url, admin_url) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let calls_url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, calls_stub).await.unwrap() });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_url = format!("http://{}", l.local_addr().unwrap());
        let app = admin::routes(admin::AdminState { server: server.clone(), secret: Some("s3cret".into()) });
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (calls_url, admin_url)
    });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let evs_in = server.events().clone();
    std::thread::spawn(move || {
        while let Ok(e) = evs_in.recv() {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    let cfg = link::LinkConfig {
        calls_url,
        router_id: "r1".into(),
        region: String::new(),
        reserve: false,
        secret: Some("s3cret".into()),
        admin_url: admin_url.clone(),
        heartbeat: Duration::from_millis(200),
    };
    rt.spawn(link::run(cfg, server.clone(), rx));

    // Re-sync: call B and participant 5 are unknown to the calls service; the mixer stays.
    wait_until("re-sync", || {
        let s = server.snapshot();
        s.len() == 1
            && s[0].call == call_a
            && s[0].participants.iter().map(|p| p.participant.0).collect::<std::collections::BTreeSet<_>>()
                == [1, 2, 9].into_iter().collect()
    });
    let reg = registrations.lock().unwrap()[0].clone();
    assert_eq!(reg["id"], "r1");
    assert_eq!(reg["address"], router.to_string());
    assert_eq!(reg["admin"], admin_url);

    // A leave is reported to the calls service.
    p2.leave().unwrap();
    wait_until("leave report", || {
        events.lock().unwrap().iter().any(|e| e["type"] == "left" && e["participant_id"] == 2)
    });
    assert!(events.lock().unwrap().iter().any(|e| e["type"] == "removed" && e["participant_id"] == 5));

    // Admin API: the secret is required; ending the call drops participant 1.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let url = format!("{admin_url}/v1/calls/{call_a}");
    let status = rt.block_on(async { http.delete(&url).send().await.unwrap().status() });
    assert_eq!(status, 401);
    let listed: Value = rt.block_on(async {
        http.get(format!("{admin_url}/v1/calls")).bearer_auth("s3cret").send().await.unwrap().json().await.unwrap()
    });
    let mut listed: Vec<u64> =
        listed["calls"][0]["participants"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    listed.sort_unstable();
    assert_eq!(listed, vec![1, 9]);
    let status = rt.block_on(async { http.delete(&url).bearer_auth("s3cret").send().await.unwrap().status() });
    assert_eq!(status, 204);
    wait_until("call end", || server.snapshot().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert!(r1.finish().call_ended);
    let metrics =
        rt.block_on(async { http.get(format!("{admin_url}/metrics")).send().await.unwrap().text().await.unwrap() });
    assert!(metrics.contains("corecast_joins_total{worker=\"0\"} 5"), "{metrics}");
    server.shutdown();
}

/// Re-sync after a partition: an answer without `fenced` leaves a share of a call homed on
/// another router (this router a leaf) alone; a fenced answer ends it too and tells its
/// participant. A call this router ended is admitted again once calls lists it here.
#[test]
fn a_fenced_resync_ends_leaf_shares_and_a_listed_call_admits_again() {
    let server = common::start_with("basic", 1, RouterConfig::default());
    let router = server.addresses()[0];
    let (leaf, ended) = (CallId([0xC; 16]), CallId([0xD; 16]));
    // This router's share of `leaf` links up to the call's home (another router).
    let home: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    server.command(corecast_core::Command::OpenPipe {
        call: leaf,
        peer: home,
        uplink: true,
        key: corecast_proto::pipe_seal::PipeKey::new([7; 32]),
    });
    let p = Client::join_dev(router, &tok(leaf, 1), 1, Quality::Hd).unwrap();
    let rx = p.start_receiving(false);
    wait_until("the leaf share", || server.snapshot().iter().any(|c| c.call == leaf && c.links == vec![(home, true)]));
    link::resync(&server, &[], false);
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.snapshot().iter().any(|c| c.call == leaf), "not fenced: the leaf share stays");
    link::resync(&server, &[], true);
    wait_until("fenced: the leaf share ends", || server.snapshot().iter().all(|c| c.call != leaf));
    wait_until("its participant is told", || rx.call_ended());

    // A call ended here refuses its tokens...
    let q = Client::join_dev(router, &tok(ended, 2), 2, Quality::Hd).unwrap();
    server.end_call(ended);
    wait_until("call end", || server.snapshot().iter().all(|c| c.call != ended));
    drop(q);
    assert!(Client::join_dev(router, &tok(ended, 3), 3, Quality::Hd).is_err(), "an ended call refuses its tokens");
    // ...until calls lists it for this router again (it moved back).
    link::resync(&server, &[json!({"call_id": ended.to_string(), "participants": [3]})], false);
    let mut back = None;
    wait_until("the moved-back call admits", || {
        back = Client::join_dev(router, &tok(ended, 3), 3, Quality::Hd).ok();
        back.is_some()
    });
    server.shutdown();
}

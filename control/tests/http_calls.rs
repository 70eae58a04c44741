//! HTTP-level tests of the calls service and the router link (embedded backends).

mod common;

use std::time::Duration;

use common::*;
use corecast_proto::token;
use serde_json::json;

#[tokio::test]
async fn every_calls_endpoint_needs_a_session() {
    let s = start(|_| {}).await;
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let rs = [
        s.post(format!("{}/v1/calls", s.calls), None, json!({})).await,
        s.get(format!("{}/v1/calls/{id}", s.calls), None).await,
        s.delete(format!("{}/v1/calls/{id}", s.calls), None).await,
        s.post(format!("{}/v1/calls/{id}/join", s.calls), None, json!({})).await,
        s.post(
            format!("{}/v1/calls/{id}/leave", s.calls),
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            json!({}),
        )
        .await,
    ];
    for r in rs {
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{:?}", r.body);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn start_join_leave_end_with_all_the_refusals() {
    let s = start(|c| c.calls.max_participants = 3).await;
    let (_, owner) = s.user().await;
    let (_, b) = s.user().await;
    let (_, c) = s.user().await;
    let (_, d) = s.user().await;
    let call = s.start_call(&owner).await;
    let keys = s.get(format!("{}/v1/keys", s.calls), None).await;
    let vk = token::verifying_key_from_hex(keys.body["public_key_hex"].as_str().unwrap()).unwrap();

    let mut pids = vec![];
    for t in [&owner, &b, &c] {
        let r = s.join(&call, t).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["router"], json!("127.0.0.1:40000"));
        let tok = token::decode_text(r.body["token"].as_str().unwrap()).unwrap();
        let claims = token::verify(&vk, &tok, corecast_control::util::now_ms()).unwrap();
        assert_eq!(claims.call_id, token::CallId::parse(&call).unwrap());
        assert_eq!(claims.participant_id.0, r.body["participant_id"].as_u64().unwrap());
        assert_eq!(claims.role, token::Role::Publisher);
        assert_eq!(claims.expires_at_ms, r.body["expires_at"].as_u64().unwrap());
        assert!(claims.expires_at_ms > corecast_control::util::now_ms() + 50_000, "60 s TTL");
        pids.push(claims.participant_id.0);
    }
    let r = s.join(&call, &d).await;
    assert_eq!((r.status, r.code()), (409, "call_full"), "over-cap join");
    let r = s.join(&call, &b).await;
    assert_eq!((r.status, r.code()), (409, "already_joined"), "double join");
    let r = s.post(format!("{}/v1/calls/{call}/leave", s.calls), Some(&d), json!({})).await;
    assert_eq!((r.status, r.code()), (409, "not_joined"), "leave when not joined");
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&d)).await;
    assert_eq!(r.status, 403, "non-members cannot see the call");
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&b)).await;
    assert_eq!(r.status, 200);
    let got: Vec<u64> =
        r.body["participants"].as_array().unwrap().iter().map(|p| p["participant_id"].as_u64().unwrap()).collect();
    assert_eq!(got, pids);

    let r = s.post(format!("{}/v1/calls/{call}/leave", s.calls), Some(&c), json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["participant_id"].as_u64(), Some(pids[2]));
    let r = s.post(format!("{}/v1/calls/{call}/join", s.calls), Some(&d), json!({"role": "subscriber"})).await;
    assert_eq!(r.status, 200, "room after a leave");
    assert_eq!(r.body["role"], json!("subscriber"));
    let tok = token::decode_text(r.body["token"].as_str().unwrap()).unwrap();
    assert_eq!(token::peek(&tok).unwrap().role, token::Role::Subscriber);

    let r = s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&b)).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "non-owner end");
    let r = s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.status, 204);
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.status, 404);
    let r = s.join(&call, &c).await;
    assert_eq!(r.status, 404);
    let r = s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.status, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn bad_ids_roles_and_bodies() {
    let s = start(|_| {}).await;
    let (_, t) = s.user().await;
    let r = s.get(format!("{}/v1/calls/not-a-uuid", s.calls), Some(&t)).await;
    assert_eq!(r.status, 404);
    let r = s.join("67e55044-10b1-426f-9247-bb680e5fe0c8", &t).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let call = s.start_call(&t).await;
    let url = format!("{}/v1/calls/{call}/join", s.calls);
    let r = s.post(url.clone(), Some(&t), json!({"role": "mixer"})).await;
    assert_eq!((r.status, r.field()), (422, "role"));
    let r = send(s.http.post(&url).bearer_auth(&t).body("{oops")).await;
    assert_eq!((r.status, r.code()), (400, "malformed_json"));
    let r = s.post(url.clone(), Some(&t), json!({"rolle": "publisher"})).await;
    assert_eq!((r.status, r.code()), (422, "invalid_body"));
    let r = send(s.http.post(&url).bearer_auth(&t).body(vec![b' '; 64 * 1024])).await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    // Empty body: default role.
    let r = send(s.http.post(&url).bearer_auth(&t)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["role"], json!("publisher"));
    s.shutdown().await;
}

#[tokio::test]
async fn router_registration_placement_events_and_end() {
    let s = start(|c| c.router.dead_after_ms = Some(3000)).await;
    let fake = fake_router().await;
    let reg = json!({"id": "r1", "address": "127.0.0.1:41000", "cores": 2, "load": 0.1, "admin": fake.admin});
    let url = format!("{}/v1/routers", s.calls);
    let r = s.post(url.clone(), None, reg.clone()).await;
    assert_eq!(r.status, 401, "secret required");
    let r = s.post(url.clone(), Some("wrong"), reg.clone()).await;
    assert_eq!(r.status, 401);
    let r = s.post(url.clone(), Some("test-router-secret"), reg.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"calls": [], "fenced": true}), "new: fenced (it holds nothing to end)");

    let (_, owner) = s.user().await;
    let (_, b) = s.user().await;
    let call = s.start_call(&owner).await;
    let j1 = s.join(&call, &owner).await;
    assert_eq!(j1.body["router"], json!("127.0.0.1:41000"), "placed on the registered router");
    let j2 = s.join(&call, &b).await;
    let p1 = j1.body["participant_id"].as_u64().unwrap();
    let p2 = j2.body["participant_id"].as_u64().unwrap();

    // The registration answer lists the calls calls believes live on that router.
    let r = s.post(url.clone(), Some("test-router-secret"), reg.clone()).await;
    assert_eq!(r.body["calls"][0]["call_id"], json!(call));
    assert_eq!(r.body["calls"][0]["participants"], json!([p1, p2]));

    // The codec pool gets mixer tokens with the router secret; the mixer is
    // not stored as a participant.
    let mx = format!("{}/v1/calls/{call}/mixer", s.calls);
    assert_eq!(s.post(mx.clone(), None, json!({})).await.status, 401);
    assert_eq!(s.post(mx.clone(), Some(&owner), json!({})).await.status, 401, "a session is not the secret");
    let r = s.post(mx.clone(), Some("test-router-secret"), json!({})).await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("mixer")), "{:?}", r.body);
    assert_eq!(r.body["router"], json!("127.0.0.1:41000"));
    let raw = token::decode_text(r.body["token"].as_str().unwrap()).unwrap();
    let claims = token::peek(&raw).unwrap();
    assert_eq!(claims.role, token::Role::Mixer);
    assert_eq!(claims.participant_id.0, r.body["participant_id"].as_u64().unwrap());
    let missing = format!("{}/v1/calls/{}/mixer", s.calls, uuid::Uuid::new_v4());
    assert_eq!(s.post(missing, Some("test-router-secret"), json!({})).await.status, 404);
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.body["participants"].as_array().unwrap().len(), 2, "the mixer is no participant");

    // Router events remove participants, idempotently.
    let ev = format!("{}/v1/routers/r1/events", s.calls);
    let body = json!({"events": [{"type": "timeout", "call_id": call, "participant_id": p2}]});
    let r = s.post(ev.clone(), Some("test-router-secret"), body.clone()).await;
    assert_eq!((r.status, r.body["removed"].as_u64()), (200, Some(1)));
    let r = s.post(ev.clone(), Some("test-router-secret"), body).await;
    assert_eq!((r.status, r.body["removed"].as_u64()), (200, Some(0)));
    // Every kind of leave the router reports is accepted ("removed": dropped by
    // the router itself, e.g. on a re-sync); the call store keeps no ghost.
    let (_, c) = s.user().await;
    let p3 = s.join(&call, &c).await.body["participant_id"].as_u64().unwrap();
    let body = json!({"events": [{"type": "removed", "call_id": call, "participant_id": p3}]});
    // ... and name the call's dominant speaker, shown while it is in the call.
    let dominant = |pid: u64| json!({"events": [{"type": "dominant_speaker", "call_id": call, "participant_id": pid}]});
    let view = format!("{}/v1/calls/{call}", s.calls);
    assert_eq!(s.get(view.clone(), Some(&owner)).await.body["dominant_speaker"], json!(null));
    assert_eq!(s.post(ev.clone(), Some("test-router-secret"), dominant(p3)).await.status, 200);
    assert_eq!(s.post(ev.clone(), Some("test-router-secret"), dominant(424_242)).await.status, 200, "unknown: ignored");
    assert_eq!(s.get(view.clone(), Some(&owner)).await.body["dominant_speaker"], json!(p3));
    let r = s.post(ev.clone(), Some("test-router-secret"), body).await;
    assert_eq!((r.status, r.body["removed"].as_u64()), (200, Some(1)), "{:?}", r.body);
    assert_eq!(s.get(view, Some(&owner)).await.body["dominant_speaker"], json!(null), "gone: not shown");
    let r = s.post(ev.clone(), None, json!({"events": []})).await;
    assert_eq!(r.status, 401);
    let r = s
        .post(
            ev.clone(),
            Some("test-router-secret"),
            json!({"events": [{"type": "bogus", "call_id": call, "participant_id": 1}]}),
        )
        .await;
    assert_eq!((r.status, r.field()), (422, "type"));
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.body["participants"].as_array().unwrap().len(), 1);

    // Ending tells the router.
    assert_eq!(s.delete(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await.status, 204);
    let ended = fake.ended.clone();
    let c2 = call.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let e = ended.clone();
            let c = c2.clone();
            async move { e.lock().unwrap().contains(&c) }
        })
        .await
    );

    // A router silent for 3 heartbeats is not chosen: back to the default.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let call2 = s.start_call(&owner).await;
    let r = s.join(&call2, &owner).await;
    assert_eq!(r.body["router"], json!("127.0.0.1:40000"));
    s.shutdown().await;
}

#[tokio::test]
async fn least_loaded_router_wins() {
    let s = start(|_| {}).await;
    let url = format!("{}/v1/routers", s.calls);
    for (id, load, port) in [("busy", 0.9, 41001), ("idle", 0.05, 41002)] {
        let reg = json!({"id": id, "address": format!("127.0.0.1:{port}"), "cores": 2, "load": load, "admin": "http://127.0.0.1:9"});
        assert_eq!(s.post(url.clone(), Some("test-router-secret"), reg).await.status, 200);
    }
    let (_, t) = s.user().await;
    let call = s.start_call(&t).await;
    assert_eq!(s.join(&call, &t).await.body["router"], json!("127.0.0.1:41002"));
    let bad = json!({"id": "", "address": "x", "cores": 1, "load": 0.0, "admin": "ftp://x"});
    let r = s.post(url, Some("test-router-secret"), bad).await;
    assert_eq!((r.status, r.field()), (422, "id"));
    s.shutdown().await;
}

#[tokio::test]
async fn restarted_router_is_reconciled() {
    let s = start(|c| {
        c.router.dead_after_ms = Some(3000);
        c.calls.token_ttl_secs = 1;
    })
    .await;
    let fake = fake_router().await;
    let reg = json!({"id": "r9", "address": "127.0.0.1:41009", "cores": 1, "load": 0.0, "admin": fake.admin});
    let url = format!("{}/v1/routers", s.calls);
    assert_eq!(s.post(url.clone(), Some("test-router-secret"), reg.clone()).await.status, 200);
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let pid = s.join(&call, &owner).await.body["participant_id"].as_u64().unwrap();
    // The router holds the participant, plus a call that calls no longer knows.
    let stale = "11111111-2222-4333-8444-555555555555";
    *fake.held.lock().unwrap() =
        json!({"calls": [{"call_id": call, "participants": [pid]}, {"call_id": stale, "participants": [7]}]});
    // The router goes silent (3 heartbeats), restarts empty, and registers again.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    *fake.held.lock().unwrap() = json!({"calls": []});
    let r = s.post(url.clone(), Some("test-router-secret"), reg.clone()).await;
    assert_eq!(r.body["calls"][0]["participants"], json!([pid]), "calls sends its view back");
    let get = format!("{}/v1/calls/{call}", s.calls);
    let gone = eventually(Duration::from_secs(5), || async {
        s.get(get.clone(), Some(&owner)).await.body["participants"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    assert!(gone, "participant unknown to the restarted router, token expired: dropped");
    s.shutdown().await;
}

#[tokio::test]
async fn calls_unknown_to_the_store_are_ended_on_the_router() {
    let s = start(|c| c.router.dead_after_ms = Some(3000)).await;
    let fake = fake_router().await;
    let stale = "11111111-2222-4333-8444-555555555555";
    *fake.held.lock().unwrap() = json!({"calls": [{"call_id": stale, "participants": [7]}]});
    let reg = json!({"id": "r8", "address": "127.0.0.1:41008", "cores": 1, "load": 0.0, "admin": fake.admin});
    assert_eq!(s.post(format!("{}/v1/routers", s.calls), Some("test-router-secret"), reg).await.status, 200);
    let ended = fake.ended.clone();
    let told = eventually(Duration::from_secs(5), || {
        let e = ended.clone();
        async move { e.lock().unwrap().iter().any(|c| c == stale) }
    })
    .await;
    assert!(told, "stale call ended on the router");
    s.shutdown().await;
}

#[tokio::test]
async fn separate_calls_service_checks_sessions_with_auth() {
    // auth runs with its own (memory) sessions; a separate calls service asks it over HTTP.
    let s = start(|_| {}).await;
    let (_, token) = s.user().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.calls.auth_url = Some(s.auth.clone());
    let sessions = corecast_control::run::calls_session_store(&cfg).unwrap();
    let state = corecast_control::run::calls_state(&cfg, sessions).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let calls = format!("http://{}", l.local_addr().unwrap());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(corecast_control::run::serve(l, corecast_control::calls::router(state), cfg.http.clone(), rx));
    let r = s.post(format!("{calls}/v1/calls"), Some(&token), json!({})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s.post(format!("{calls}/v1/calls"), Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), json!({})).await;
    assert_eq!(r.status, 401);
    s.shutdown().await;
}

/// Every endpoint that takes a JSON body: malformed JSON is 400, an oversize
/// body 413, both with a JSON error, and neither changes anything stored.
#[tokio::test]
async fn every_json_endpoint_rejects_malformed_and_oversize_bodies() {
    let s = start(|_| {}).await;
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(64 * 1024));
    let secret = "test-router-secret";
    let endpoints: Vec<(String, Option<&str>)> = vec![
        (format!("{}/v1/register", s.auth), None),
        (format!("{}/v1/login", s.auth), None),
        (format!("{}/v1/calls/{call}/join", s.calls), Some(&owner)),
        (format!("{}/v1/routers", s.calls), Some(secret)),
        (format!("{}/v1/routers/r9/events", s.calls), Some(secret)),
    ];
    for (url, token) in &endpoints {
        let with = |rb: reqwest::RequestBuilder| match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let r = send(with(s.http.post(url).header("content-type", "application/json").body("{oops"))).await;
        assert_eq!((r.status, r.code()), (400, "malformed_json"), "{url}");
        let r = send(with(s.http.post(url).header("content-type", "application/json").body(big.clone()))).await;
        assert_eq!((r.status, r.code()), (413, "body_too_large"), "{url}");
    }
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.body["participants"].as_array().map(Vec::len), Some(0), "nothing was joined");
    s.shutdown().await;
}

/// An expired session is refused by every calls endpoint.
#[tokio::test]
async fn expired_sessions_are_refused_by_every_calls_endpoint() {
    let s = start(|c| c.sessions.ttl_secs = 1).await;
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let c = &s.calls;
    let rs = [
        s.post(format!("{c}/v1/calls"), Some(&owner), json!({})).await,
        s.get(format!("{c}/v1/calls/{call}"), Some(&owner)).await,
        s.post(format!("{c}/v1/calls/{call}/join"), Some(&owner), json!({})).await,
        s.post(format!("{c}/v1/calls/{call}/leave"), Some(&owner), json!({})).await,
        s.delete(format!("{c}/v1/calls/{call}"), Some(&owner)).await,
    ];
    for r in rs {
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{:?}", r.body);
    }
    s.shutdown().await;
}

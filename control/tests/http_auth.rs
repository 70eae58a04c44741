//! HTTP-level tests of the auth service (embedded backends).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn register_login_me_logout() {
    let s = start(|_| {}).await;
    let login = format!("u{}", uniq());
    let r = s.register(&login).await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_i64().unwrap();
    let r = s.login(&login, "correct horse").await;
    assert_eq!(r.status, 200);
    let token = r.body["session"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43, "256-bit token");
    assert!(r.body["expires_at"].as_u64().unwrap() > 0);
    let r = s.get(format!("{}/v1/me", s.auth), Some(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"].as_i64(), Some(id));
    assert_eq!(r.body["login"], json!(login));
    assert!(r.body.get("password_hash").is_none());
    let r = s.post(format!("{}/v1/logout", s.auth), Some(&token), json!({})).await;
    assert_eq!(r.status, 204);
    let r = s.get(format!("{}/v1/me", s.auth), Some(&token)).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = s.post(format!("{}/v1/logout", s.auth), Some(&token), json!({})).await;
    assert_eq!(r.status, 401);
    s.shutdown().await;
}

#[tokio::test]
async fn duplicates_are_409_naming_the_field() {
    let s = start(|_| {}).await;
    let login = format!("u{}", uniq());
    assert_eq!(s.register(&login).await.status, 201);
    let r = s.register(&login).await;
    assert_eq!((r.status, r.field()), (409, "login"));
    let body = json!({"login": format!("v{}", uniq()), "email": format!("{}@EXAMPLE.org", login.to_uppercase()), "name": "N", "password": "12345678"});
    let r = s.post(format!("{}/v1/register", s.auth), None, body).await;
    assert_eq!((r.status, r.field()), (409, "email"), "emails are case-insensitive");
    s.shutdown().await;
}

#[tokio::test]
async fn every_validation_rule_names_its_field() {
    let s = start(|_| {}).await;
    let good = json!({"login": "alice", "email": "a@example.org", "name": "Alice", "password": "12345678"});
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("login", json!(null)),
        ("login", json!("")),
        ("login", json!("a".repeat(21))),
        ("login", json!("bad login")),
        ("email", json!(null)),
        ("email", json!("no-at-sign")),
        ("email", json!("a@nodot")),
        ("email", json!("a b@example.org")),
        ("email", json!(format!("{}@example.org", "a".repeat(20)))),
        ("name", json!(null)),
        ("name", json!("   ")),
        ("name", json!("n".repeat(31))),
        ("password", json!(null)),
        ("password", json!("1234567")),
        ("password", json!("p".repeat(129))),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value.clone();
        }
        let r = s.post(format!("{}/v1/register", s.auth), None, body).await;
        assert_eq!((r.status, r.field()), (422, field), "{field}={value}: {:?}", r.body);
        assert_eq!(r.code(), "invalid_field");
    }
    // Boundary values are accepted.
    let body = json!({"login": format!("b{}", "x".repeat(19)), "email": format!("{}@ex.org", "e".repeat(23)), "name": "n".repeat(30), "password": "p".repeat(128)});
    let r = s.post(format!("{}/v1/register", s.auth), None, body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = s.post(format!("{}/v1/login", s.auth), None, json!({"password": "x"})).await;
    assert_eq!((r.status, r.field()), (422, "login"));
    let r = s.post(format!("{}/v1/login", s.auth), None, json!({"login": "x"})).await;
    assert_eq!((r.status, r.field()), (422, "password"));
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_wrong_type_and_oversize_bodies() {
    let s = start(|_| {}).await;
    let url = format!("{}/v1/register", s.auth);
    let r = send(s.http.post(&url).header("content-type", "application/json").body("{\"login\": ")).await;
    assert_eq!((r.status, r.code()), (400, "malformed_json"));
    let r = send(s.http.post(&url).header("content-type", "text/plain").body("{}")).await;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
    let r = s.post(url.clone(), None, json!({"login": 5})).await;
    assert_eq!((r.status, r.code()), (422, "invalid_body"));
    let big = format!("{{\"login\": \"{}\"}}", "a".repeat(64 * 1024));
    let r = send(s.http.post(&url).header("content-type", "application/json").body(big)).await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    let r = s.get(format!("{}/v1/nope", s.auth), None).await;
    assert_eq!(r.status, 404);
    assert!(r.body["error"]["message"].is_string());
    s.shutdown().await;
}

#[tokio::test]
async fn login_failures_look_the_same_and_are_throttled() {
    let s = start(|c| {
        c.auth.max_failures_per_login = 3;
        c.auth.max_failures_per_ip = 100;
    })
    .await;
    let (login, _) = s.user().await;
    let wrong = s.login(&login, "wrong password").await;
    let unknown = s.login(&format!("n{}", uniq()), "wrong password").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body, "no hint whether the login exists");
    s.login(&login, "wrong password").await;
    s.login(&login, "wrong password").await;
    let r = s.login(&login, "correct horse").await;
    assert_eq!((r.status, r.code()), (429, "throttled"), "locked even with the right password");
    let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(ra >= 1);
    s.shutdown().await;
}

#[tokio::test]
async fn failures_from_one_address_are_throttled() {
    let s = start(|c| {
        c.auth.max_failures_per_login = 100;
        c.auth.max_failures_per_ip = 4;
    })
    .await;
    for _ in 0..4 {
        assert_eq!(s.login(&format!("n{}", uniq()), "whatever1").await.status, 401);
    }
    let r = s.login(&format!("n{}", uniq()), "whatever1").await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains_key("retry-after"));
    s.shutdown().await;
}

#[tokio::test]
async fn missing_malformed_and_expired_sessions() {
    let s = start(|c| c.sessions.ttl_secs = 1).await;
    let me = format!("{}/v1/me", s.auth);
    let r = s.get(me.clone(), None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = s.get(me.clone(), Some("garbage")).await;
    assert_eq!(r.status, 401);
    let r = send(s.http.get(&me).header("authorization", "Basic Zm9vOmJhcg==")).await;
    assert_eq!(r.status, 401);
    let (_, token) = s.user().await;
    // Sliding renewal: used every 400 ms for 1.6 s, it outlives its 1 s TTL.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(s.get(me.clone(), Some(&token)).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = s.get(me.clone(), Some(&token)).await;
    assert_eq!(r.status, 401, "expired");
    s.shutdown().await;
}

#[tokio::test]
async fn embedded_users_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let s = start_with(cfg.clone(), tempfile::tempdir().unwrap()).await;
    let login = format!("u{}", uniq());
    assert_eq!(s.register(&login).await.status, 201);
    s.shutdown().await;
    let s = start_with(cfg, tempfile::tempdir().unwrap()).await;
    assert_eq!(s.login(&login, "correct horse").await.status, 200);
    assert_eq!(s.register(&login).await.status, 409);
    s.shutdown().await;
}

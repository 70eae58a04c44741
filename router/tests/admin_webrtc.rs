//! The admin API's WebRTC routes (`POST /v1/calls/{id}/webrtc`, `PATCH .../webrtc/{session}`):
//! the router secret, request validation, and refusals as HTTP statuses.

use std::sync::Arc;

use corecast_proto::token;
use corecast_router::admin;
use corecast_router::server::{RouterServer, ServerConfig};
use serde_json::{json, Value};

const CALL: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

async fn admin_api() -> (Arc<RouterServer>, String) {
    let server = Arc::new(
        RouterServer::start(ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise_ip: None,
            workers: 1,
            cpus: vec![],
            backend: "auto".into(),
            core: corecast_core::RouterConfig {
                join_secret: Some(corecast_proto::join_key::JoinSecret::dev()),
                ..Default::default()
            },
            public_key: token::dev_signing_key().verifying_key(),
            io: Default::default(),
        })
        .expect("router starts"),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let app = admin::routes(admin::AdminState { server: server.clone(), secret: Some("s3cret".into()) });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (server, url)
}

async fn call(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null))
}

fn offer(role: &str, subscribe: Value) -> Value {
    json!({ "participant_id": 7, "role": role, "subscribe": subscribe, "offer": "v=0\r\n", "expires_ms": 1u64 << 42 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_routes_need_the_secret_and_a_well_formed_request() {
    let (server, url) = admin_api().await;
    let http = reqwest::Client::new();
    let open = format!("{url}/v1/calls/{CALL}/webrtc");
    let patch = format!("{url}/v1/calls/{CALL}/webrtc/abcd");

    let (s, _) = call(http.post(&open).json(&offer("publisher", Value::Null))).await;
    assert_eq!(s, 401, "no secret");
    let (s, _) = call(http.post(&open).bearer_auth("wrong").json(&offer("publisher", Value::Null))).await;
    assert_eq!(s, 401, "wrong secret");
    let (s, _) = call(http.patch(&patch).json(&json!({ "fragment": "a=mid:0" }))).await;
    assert_eq!(s, 401, "no secret on PATCH");

    let bad = [
        offer("mixer", Value::Null),
        offer("publisher", json!("composite")),
        offer("subscriber", Value::Null),
        offer("subscriber", json!("grid")),
        offer("subscriber", json!({ "participant_id": "x" })),
        json!({ "participant_id": 7, "role": "publisher", "offer": "v=0" }),
        json!({ "participant_id": 0, "role": "publisher", "subscribe": null, "offer": "v=0", "expires_ms": 1 }),
    ];
    for body in bad {
        let (s, v) = call(http.post(&open).bearer_auth("s3cret").json(&body)).await;
        assert_eq!(s, 400, "{body}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (s, _) = call(
        http.post(format!("{url}/v1/calls/nope/webrtc")).bearer_auth("s3cret").json(&offer("publisher", Value::Null)),
    )
    .await;
    assert_eq!(s, 400, "bad call id");
    let (s, _) =
        call(http.post(&open).bearer_auth("s3cret").header("content-type", "application/json").body("{")).await;
    assert_eq!(s, 400, "malformed JSON");

    // Well-formed requests reach the router: answered or refused with a mapped status.
    for body in [
        offer("publisher", Value::Null),
        offer("subscriber", json!({ "participant_id": 9 })),
        offer("subscriber", json!("composite")),
    ] {
        let (s, v) = call(http.post(&open).bearer_auth("s3cret").json(&body)).await;
        assert!(matches!(s, 201 | 400 | 404 | 409 | 422), "{body}: {s} {v}");
        if s == 201 {
            assert!(v["answer"].is_string() && v["session"].is_string(), "{v}");
        } else {
            assert!(v["error"].is_string(), "{v}");
        }
    }
    let (s, v) = call(http.patch(&patch).bearer_auth("s3cret").json(&json!({ "fragment": "a=mid:0" }))).await;
    assert_eq!(s, 404, "unknown session: {v}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_limits_are_integers_in_range_on_subscriber_legs_only() {
    let (server, url) = admin_api().await;
    let http = reqwest::Client::new();
    let open = format!("{url}/v1/calls/{CALL}/webrtc");
    let watch = || json!({ "participant_id": 9 });
    // max_fps 1..=60 (a frame-rate cap), max_height 16..=4320 (a requested size), last_n 1..=255.
    for (name, outside, inside) in [
        ("max_fps", [json!(0), json!(61), json!(-5), json!(7.5), json!("15")], [json!(1), json!(60)]),
        ("max_height", [json!(0), json!(15), json!(4321), json!(360.5), json!("360")], [json!(16), json!(4320)]),
        ("last_n", [json!(0), json!(256), json!(-1), json!(1.5), json!("2")], [json!(1), json!(255)]),
    ] {
        let with = |role: &str, subscribe: Value, v: &Value| {
            let mut body = offer(role, subscribe);
            body[name] = v.clone();
            body
        };
        let mut refused: Vec<Value> = outside.iter().map(|v| with("subscriber", watch(), v)).collect();
        refused.push(with("subscriber", json!("composite"), &json!(100_000)));
        refused.push(with("publisher", Value::Null, &inside[0]));
        for body in refused {
            let (s, v) = call(http.post(&open).bearer_auth("s3cret").json(&body)).await;
            assert_eq!(s, 400, "{body}");
            assert!(v["error"].as_str().is_some_and(|e| e.contains(name)), "{body}: {v}");
        }
        // In range (or null, or absent; on a publisher null is fine): past the check, whatever the router makes of the offer.
        let mut passed: Vec<Value> = inside.iter().map(|v| with("subscriber", watch(), v)).collect();
        passed.push(with("subscriber", json!("composite"), &inside[1]));
        passed.push(with("subscriber", watch(), &Value::Null));
        passed.push(with("publisher", Value::Null, &Value::Null));
        for body in passed {
            let (s, v) = call(http.post(&open).bearer_auth("s3cret").json(&body)).await;
            assert!(matches!(s, 201 | 400 | 404 | 409 | 422), "{body}: {s} {v}");
            assert!(!v["error"].as_str().is_some_and(|e| e.contains(name)), "{body}: {v}");
        }
    }
    server.shutdown();
}

/// `PATCH .../webrtc/{session}` with `preferences`: each checked as at the
/// leg's opening, 0 also taken (it lifts the limit); a body with both a
/// fragment and preferences, or neither, is refused; a well-formed one for
/// an unknown session is a 404 (an existing leg's change: the core's
/// `a_viewers_requested_size_changes_while_it_plays`, and in Chromium
/// webrtc-e2e's `svc-patch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leg_preferences_are_checked_as_at_opening_and_zero_lifts() {
    let (server, url) = admin_api().await;
    let http = reqwest::Client::new();
    let patch = format!("{url}/v1/calls/{CALL}/webrtc/abcd");
    for (prefs, name) in [
        (json!({ "max_height": 15 }), "max_height"),
        (json!({ "max_height": "360" }), "max_height"),
        (json!({ "max_fps": 61 }), "max_fps"),
        (json!({ "last_n": 256 }), "last_n"),
        (json!({ "last_n": -1 }), "last_n"),
    ] {
        let (s, v) = call(http.patch(&patch).bearer_auth("s3cret").json(&json!({ "preferences": prefs }))).await;
        assert_eq!(s, 400, "{prefs}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(name)), "{prefs}: {v}");
    }
    for body in
        [json!({}), json!({ "fragment": "a=mid:0", "preferences": {} }), json!({ "preferences": { "size": 1 } })]
    {
        let (s, _) = call(http.patch(&patch).bearer_auth("s3cret").json(&body)).await;
        assert_eq!(s, 400, "{body}");
    }
    for prefs in [json!({ "max_height": 0 }), json!({ "max_height": 360, "max_fps": 0, "last_n": 3 }), json!({})] {
        let (s, v) = call(http.patch(&patch).bearer_auth("s3cret").json(&json!({ "preferences": prefs }))).await;
        assert_eq!(s, 404, "{prefs}: past the checks, no such session: {v}");
    }
    server.shutdown();
}

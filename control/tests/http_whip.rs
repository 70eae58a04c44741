//! WHIP/WHEP on the calls service, over real HTTP, with a real in-process router behind it
//! (its admin API with the router secret). On PostgreSQL + Redis + Tarantool when
//! `CORECAST_TEST_*` is set (`control/scripts/test-with-servers.sh`), else on the embedded
//! stores.
//!
//! The success path opens real legs on the router (answers with its ICE-lite candidate and
//! DTLS fingerprint); no media flows here (the browser test does that).

mod common;

use std::sync::Arc;

use common::*;
use corecast_control::whip_resource::ResourceKey;
use corecast_proto::token;
use corecast_router::admin;
use corecast_router::server::{RouterServer, ServerConfig};
use serde_json::json;
use uuid::Uuid;

/// A browser-shaped offer: BUNDLEd Opus audio and VP8 video, send and receive.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS s\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Zx9q\r\n\
a=ice-pwd:0123456789abcdefghijklmn\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:s a\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=ssrc:1111 cname:c\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Zx9q\r\n\
a=ice-pwd:0123456789abcdefghijklmn\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=msid:s v\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=ssrc:2222 cname:c\r\n";

/// An offer the router refuses (no DTLS fingerprint): a 422 naming what is missing.
fn refused_offer() -> String {
    OFFER.lines().filter(|l| !l.starts_with("a=fingerprint")).map(|l| format!("{l}\n")).collect()
}

/// A WHEP offer as Chromium makes it (recvonly audio and video).
const WHEP_OFFER: &str = include_str!("../../router/proto/tests/fixtures/sdp/chromium-whep-offer.sdp");

const FRAGMENT: &str = "a=ice-ufrag:Zx9q\r\na=ice-pwd:0123456789abcdefghijklmn\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";

struct Env {
    s: Svc,
    router: Arc<RouterServer>,
}

impl Env {
    async fn shutdown(self) {
        self.router.shutdown();
        self.s.shutdown().await;
    }
}

/// The services (real servers when configured) with a real router as their default router.
async fn env(f: impl FnOnce(&mut corecast_control::config::Config)) -> Env {
    let router = Arc::new(
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
    let admin_url = format!("http://{}", l.local_addr().unwrap());
    let app = admin::routes(admin::AdminState { server: router.clone(), secret: Some("test-router-secret".into()) });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.router.admin = admin_url;
    cfg.router.address = router.addresses()[0].to_string();
    let rs = real_servers();
    if let (Some(pg), Some(redis), Some(tt)) = (rs.pg, rs.redis, rs.tarantool) {
        cfg.stores.postgres_url = Some(pg);
        cfg.stores.redis_url = Some(redis);
        cfg.stores.tarantool_url = Some(tt);
        // Other tests' routers in the shared Tarantool are not this test's default router.
        cfg.calls.region = format!("t-{}", uniq());
    } else {
        skip("http_whip on real servers (running on the embedded stores)", "CORECAST_TEST_PG/REDIS/TARANTOOL");
    }
    f(&mut cfg);
    Env { s: start_with(cfg, dir).await, router }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.s.calls)
    }

    async fn offer(&self, path: &str, token: Option<&str>, content_type: &str, body: String) -> Resp {
        let mut rb = self.s.http.post(self.url(path)).header("content-type", content_type).body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        send(rb).await
    }

    async fn participants(&self, call: &str, token: &str) -> Vec<u64> {
        let r = self.s.get(self.url(&format!("/v1/calls/{call}")), Some(token)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["participants"].as_array().unwrap().iter().map(|p| p["participant_id"].as_u64().unwrap()).collect()
    }

    async fn native_join(&self, call: &str, token: &str, role: &str) -> u64 {
        let r = self.s.post(self.url(&format!("/v1/calls/{call}/join")), Some(token), json!({ "role": role })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["participant_id"].as_u64().unwrap()
    }

    async fn patch(&self, path: &str, token: &str, content_type: &str, body: &str) -> Resp {
        let rb = self.s.http.patch(self.url(path)).bearer_auth(token).header("content-type", content_type);
        send(rb.body(body.to_owned())).await
    }
}

/// The new participant's id a `201` names (`X-Participant-Id`).
fn participant_id(r: &Resp) -> u64 {
    r.headers["x-participant-id"].to_str().unwrap().parse().unwrap()
}

/// The session resource the calls service would have named for `pid`'s router session.
fn resource(call: &str, pid: u64, session: &str) -> String {
    let key = ResourceKey::from_signing_key(&token::dev_signing_key());
    format!("/v1/calls/{call}/sessions/{}", key.encode(Uuid::parse_str(call).unwrap(), pid, session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_need_a_session() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let pid = e.native_join(&call, &owner, "publisher").await;
    let bogus = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for token in [None, Some(bogus)] {
        for path in [format!("/v1/calls/{call}/whip"), format!("/v1/calls/{call}/whep?view=composite")] {
            let r = e.offer(&path, token, "application/sdp", OFFER.into()).await;
            assert_eq!((r.status, r.code()), (401, "unauthorized"), "{path}: {:?}", r.body);
        }
    }
    let res = resource(&call, pid, "sess");
    let r = send(e.s.http.patch(e.url(&res)).header("content-type", "application/trickle-ice-sdpfrag")).await;
    assert_eq!(r.status, 401);
    let r = e.s.delete(e.url(&res), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(e.participants(&call, &owner).await, vec![pid], "nothing changed");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_types_are_415_and_large_bodies_413() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let (_, b) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let bpid = e.native_join(&call, &b, "publisher").await;
    for (path, ct) in [
        (format!("/v1/calls/{call}/whip"), "application/json"),
        (format!("/v1/calls/{call}/whip"), "text/plain"),
        (format!("/v1/calls/{call}/whep?view=composite"), "application/trickle-ice-sdpfrag"),
        (format!("/v1/calls/{call}/whep?participant={bpid}"), ""),
    ] {
        let r = e.offer(&path, Some(&owner), ct, OFFER.into()).await;
        assert_eq!((r.status, r.code()), (415, "unsupported_media_type"), "{path} {ct}");
    }
    // Parameters and case of the media type do not matter.
    let r =
        e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "Application/SDP; charset=utf-8", OFFER.into()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let leg = participant_id(&r);

    // Offers above the JSON body limit (16 KiB here) but within 64 KiB reach the router
    // (whose SDP parser refuses this one: too many attributes in one section).
    let sizable = format!("{OFFER}{}", "a=x\r\n".repeat(40 * 1024 / 5));
    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "application/sdp", sizable).await;
    assert_eq!(r.status, 400, "a 40 KiB offer is read: {:?}", r.body);
    assert!(r.body.as_str().unwrap_or("").contains("attributes"), "{:?}", r.body);

    let big = format!("{OFFER}{}", "a=x\r\n".repeat(64 * 1024 / 5 + 1));
    assert!(big.len() > 64 * 1024);
    for path in [format!("/v1/calls/{call}/whip"), format!("/v1/calls/{call}/whep?view=composite")] {
        let r = e.offer(&path, Some(&owner), "application/sdp", big.clone()).await;
        assert_eq!((r.status, r.code()), (413, "body_too_large"), "{path}");
    }
    // Sent chunked, without a Content-Length: refused once it passes the limit.
    assert_eq!(chunked_status(&e.url(&format!("/v1/calls/{call}/whip")), &owner, &big).await, 413, "chunked");

    // On a session resource: the trickle content type only, and the same size limit.
    let res = resource(&call, bpid, "sess");
    let r = e.patch(&res, &b, "application/sdp", FRAGMENT).await;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
    let r = e.patch(&res, &b, "application/trickle-ice-sdpfrag", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(e.participants(&call, &owner).await, vec![bpid, leg], "nothing changed");
    e.shutdown().await;
}

/// POSTs `body` as one chunk of a chunked request over a raw connection; the status code.
async fn chunked_status(url: &str, token: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut c = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/sdp\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = c.write_all(body.as_bytes()).await;
    let _ = c.write_all(b"\r\n0\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match c.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    std::str::from_utf8(&buf[..n]).unwrap_or("").split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_needs_exactly_one_existing_participant_or_the_composite() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let (_, b) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let bpid = e.native_join(&call, &b, "publisher").await;
    for q in ["", "?", "?view=grid", "?participant=abc", &format!("?participant={bpid}&view=composite")] {
        let r = e.offer(&format!("/v1/calls/{call}/whep{q}"), Some(&owner), "application/sdp", OFFER.into()).await;
        assert_eq!((r.status, r.code()), (400, "bad_query"), "{q}: {:?}", r.body);
    }
    let unknown = bpid ^ 1;
    let r = e
        .offer(&format!("/v1/calls/{call}/whep?participant={unknown}"), Some(&owner), "application/sdp", OFFER.into())
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{:?}", r.body);
    let other = Uuid::new_v4();
    let r =
        e.offer(&format!("/v1/calls/{other}/whep?view=composite"), Some(&owner), "application/sdp", OFFER.into()).await;
    assert_eq!(r.status, 404, "unknown call");
    assert_eq!(e.participants(&call, &owner).await, vec![bpid], "nothing changed");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_headers() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let paths = [
        format!("/v1/calls/{call}/whip"),
        format!("/v1/calls/{call}/whep"),
        resource(&call, 7, "sess"),
        format!("/v1/calls/{call}"),
    ];
    for path in &paths {
        let r = send(
            e.s.http
                .request(reqwest::Method::OPTIONS, e.url(path))
                .header("origin", "https://page.example")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization, content-type"),
        )
        .await;
        assert!(r.status == 204 || r.status == 200, "{path}: {}", r.status);
        let h = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        assert_eq!(h("access-control-allow-origin"), "*", "{path}");
        for m in ["post", "patch", "delete", "options"] {
            assert!(h("access-control-allow-methods").contains(m), "{path}: {m}");
        }
        for a in ["authorization", "content-type", "if-match"] {
            assert!(h("access-control-allow-headers").contains(a), "{path}: {a}");
        }
        for x in ["location", "etag", "link", "x-participant-id"] {
            assert!(h("access-control-expose-headers").contains(x), "{path}: {x}");
        }
    }
    // Error answers carry them too, so a page can read the status.
    let r = e.offer(&paths[0], None, "application/sdp", OFFER.into()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    // So does the call's participant list (whom to subscribe to), and its refusals.
    let r = send(e.s.http.get(e.url(&paths[3])).bearer_auth(&owner)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let r = send(e.s.http.get(e.url(&paths[3]))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    e.shutdown().await;

    let e = env(|c| c.calls.cors_allow_origin = Some("https://app.example".into())).await;
    let r = send(e.s.http.request(reqwest::Method::OPTIONS, e.url(&format!("/v1/calls/{call}/whip")))).await;
    assert_eq!(r.headers["access-control-allow-origin"], "https://app.example");
    assert!(r.headers.get_all("vary").iter().any(|v| v.to_str().unwrap_or("").contains("Origin")));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_sees_the_call_with_names_and_what_each_publishes() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let (_, b) = e.s.user().await;
    let (_, c) = e.s.user().await;
    let (_, stranger) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let bpid = e.native_join(&call, &b, "publisher").await;
    let cpid = e.native_join(&call, &c, "subscriber").await;
    for t in [&owner, &b, &c] {
        let r = e.s.get(e.url(&format!("/v1/calls/{call}")), Some(t)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ps = r.body["participants"].as_array().unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0]["participant_id"].as_u64(), Some(bpid));
        assert_eq!(ps[0]["name"], json!("Test User"));
        assert_eq!(ps[0]["role"], json!("publisher"));
        assert_eq!(ps[0]["publishes"], json!(["audio", "video"]));
        assert_eq!(ps[1]["participant_id"].as_u64(), Some(cpid));
        assert_eq!(ps[1]["role"], json!("subscriber"));
        assert_eq!(ps[1]["publishes"], json!([]));
        assert!(ps[1]["user_id"].is_i64());
    }
    let r = e.s.get(e.url(&format!("/v1/calls/{call}")), Some(&stranger)).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_is_a_participant_of_its_own_and_a_receiver_may_ask_for_fewer_frames() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let (_, viewer) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "application/sdp", OFFER.into()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let camera = participant_id(&r);
    for q in ["?source=window", "?source="] {
        let r = e.offer(&format!("/v1/calls/{call}/whip{q}"), Some(&owner), "application/sdp", OFFER.into()).await;
        assert_eq!((r.status, r.code()), (400, "bad_query"), "{q}: {:?}", r.body);
    }
    // Its own SSRCs: a participant of its own.
    let screen_offer = OFFER.replace("a=ssrc:1111", "a=ssrc:3333").replace("a=ssrc:2222", "a=ssrc:4444");
    let r =
        e.offer(&format!("/v1/calls/{call}/whip?source=screen"), Some(&owner), "application/sdp", screen_offer).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let screen = participant_id(&r);
    let g = e.s.get(e.url(&format!("/v1/calls/{call}")), Some(&owner)).await;
    let ps = g.body["participants"].as_array().unwrap();
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert_eq!((ps[0]["participant_id"].as_u64(), &ps[0]["role"]), (Some(camera), &json!("publisher")));
    assert_eq!((ps[1]["participant_id"].as_u64(), &ps[1]["role"]), (Some(screen), &json!("screen")));
    assert_eq!(ps[1]["publishes"], json!(["video"]));
    assert_eq!(ps[1]["name"], ps[0]["name"], "the same person's");
    // A screen share has no microphone or camera to mute.
    let path = format!("/v1/calls/{call}/participants/{screen}");
    let r = e.patch(&path, &owner, "application/json", r#"{"audio_muted": true}"#).await;
    assert_eq!((r.status, r.code()), (409, "not_publisher"), "{:?}", r.body);

    for q in ["0", "61", "-1", "abc", "8.5"] {
        let path = format!("/v1/calls/{call}/whep?participant={screen}&max_fps={q}");
        let r = e.offer(&path, Some(&viewer), "application/sdp", WHEP_OFFER.into()).await;
        assert_eq!((r.status, r.code()), (400, "bad_query"), "{q}: {:?}", r.body);
    }
    for q in ["0", "15", "4321", "-360", "abc", "360.5"] {
        let path = format!("/v1/calls/{call}/whep?participant={screen}&max_height={q}");
        let r = e.offer(&path, Some(&viewer), "application/sdp", WHEP_OFFER.into()).await;
        assert_eq!((r.status, r.code()), (400, "bad_query"), "{q}: {:?}", r.body);
    }
    for q in ["0", "256", "-1", "abc", "1.5"] {
        let path = format!("/v1/calls/{call}/whep?participant={screen}&last_n={q}");
        let r = e.offer(&path, Some(&viewer), "application/sdp", WHEP_OFFER.into()).await;
        assert_eq!((r.status, r.code()), (400, "bad_query"), "{q}: {:?}", r.body);
    }
    let r = e
        .offer(
            &format!("/v1/calls/{call}/whep?view=composite&last_n=2"),
            Some(&viewer),
            "application/sdp",
            WHEP_OFFER.into(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "bad_query"), "no Last-N of the composite: {:?}", r.body);
    assert_eq!(e.participants(&call, &owner).await, vec![camera, screen], "nothing changed");
    let path = format!("/v1/calls/{call}/whep?participant={screen}&max_fps=8&max_height=360&last_n=3");
    let r = e.offer(&path, Some(&viewer), "application/sdp", WHEP_OFFER.into()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let vpid = participant_id(&r);
    let srv = e.router.clone();
    let leg = tokio::task::spawn_blocking(move || {
        srv.snapshot().into_iter().flat_map(|c| c.participants).find(|p| p.participant.0 == vpid)
    })
    .await
    .unwrap()
    .expect("the router holds the viewer's leg");
    assert_eq!((leg.max_fps, leg.max_height, leg.last_n), (Some(8), Some(360), Some(3)), "the router was told");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sessions_user_may_patch_or_delete_it() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let (_, a) = e.s.user().await;
    let (_, stranger) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let apid = e.native_join(&call, &a, "publisher").await;
    let res = resource(&call, apid, "sess");
    for t in [&stranger, &owner] {
        let r = e.patch(&res, t, "application/trickle-ice-sdpfrag", FRAGMENT).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
        let r = e.s.delete(e.url(&res), Some(t)).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    }
    assert_eq!(e.participants(&call, &owner).await, vec![apid], "nothing changed");
    // A resource that the calls service did not name is not found, even for the right user.
    let forged = res.replace(".sess", ".x").replace(&format!("/{apid}."), &format!("/{apid}.c2Vzcw."));
    for bad in [forged, format!("/v1/calls/{call}/sessions/{apid}.c2Vzcw.AAAAAAAAAAAAAAAAAAAAAA")] {
        let r = e.s.delete(e.url(&bad), Some(&a)).await;
        assert_eq!(r.status, 404, "{bad}");
    }
    // The router does not know the session (its legs are not built): its 404 passes through.
    let r = e.patch(&res, &a, "application/trickle-ice-sdpfrag", FRAGMENT).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // The session's user deletes it: the participant leaves.
    let r = e.s.delete(e.url(&res), Some(&a)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(e.participants(&call, &owner).await.is_empty(), "left");
    let r = e.s.delete(e.url(&res), Some(&a)).await;
    assert_eq!(r.status, 404, "already gone");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_refusal_is_passed_on_and_leaves_the_call_unchanged() {
    let e = env(|c| c.calls.max_participants = 2).await;
    let (_, owner) = e.s.user().await;
    let (_, b) = e.s.user().await;
    let (_, c) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let bpid = e.native_join(&call, &b, "publisher").await;
    for path in [
        format!("/v1/calls/{call}/whip"),
        format!("/v1/calls/{call}/whep?view=composite"),
        format!("/v1/calls/{call}/whep?participant={bpid}"),
    ] {
        let r = e.offer(&path, Some(&owner), "application/sdp", refused_offer()).await;
        assert_eq!(r.status, 422, "{path}: {:?}", r.body);
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
        assert!(r.body.as_str().unwrap_or("").contains("fingerprint"), "{:?}", r.body);
        assert!(r.headers.get("location").is_none());
        assert_eq!(e.participants(&call, &owner).await, vec![bpid], "{path}: the participant was released");
    }
    // A user may hold several legs (and a native participant): it reaches the router.
    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&b), "application/sdp", refused_offer()).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(e.participants(&call, &owner).await, vec![bpid], "released");
    // The same refusals as a native join, before the router is asked.
    e.native_join(&call, &c, "subscriber").await;
    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "application/sdp", OFFER.into()).await;
    assert_eq!((r.status, r.code()), (409, "call_full"));
    assert_eq!(e.participants(&call, &owner).await.len(), 2);
    assert_eq!(e.s.delete(e.url(&format!("/v1/calls/{call}")), Some(&owner)).await.status, 204);
    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "application/sdp", OFFER.into()).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "ended call");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_router_releases_the_participant() {
    let e = env(|c| c.router.admin = "http://127.0.0.1:9".into()).await;
    let (_, owner) = e.s.user().await;
    let call = e.s.start_call(&owner).await;
    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "application/sdp", OFFER.into()).await;
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{:?}", r.body);
    assert!(e.participants(&call, &owner).await.is_empty());
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn whip_and_whep_open_legs_and_delete_makes_the_participant_leave() {
    let e = env(|_| {}).await;
    let (_, owner) = e.s.user().await;
    let (_, viewer) = e.s.user().await;
    let call = e.s.start_call(&owner).await;

    let r = e.offer(&format!("/v1/calls/{call}/whip"), Some(&owner), "application/sdp", OFFER.into()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.headers["content-type"], "application/sdp");
    let answer = r.body.as_str().expect("SDP answer");
    assert!(answer.starts_with("v=0"), "{answer}");
    let location = r.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("/v1/calls/{call}/sessions/")), "{location}");
    let etag = r.headers["etag"].to_str().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let pid = participant_id(&r);
    let g = e.s.get(e.url(&format!("/v1/calls/{call}")), Some(&owner)).await;
    assert_eq!(g.body["participants"][0]["participant_id"].as_u64(), Some(pid));
    assert_eq!(g.body["participants"][0]["publishes"], json!(["audio", "video"]));

    let r = e
        .offer(&format!("/v1/calls/{call}/whep?participant={pid}"), Some(&viewer), "application/sdp", WHEP_OFFER.into())
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let viewer_location = r.headers["location"].to_str().unwrap().to_owned();
    let vpid = participant_id(&r);
    // The publisher also receives the composite: a second leg of the same user.
    let r = e
        .offer(&format!("/v1/calls/{call}/whep?view=composite"), Some(&owner), "application/sdp", WHEP_OFFER.into())
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let composite_location = r.headers["location"].to_str().unwrap().to_owned();
    let cpid = participant_id(&r);
    assert_eq!(e.participants(&call, &owner).await, vec![pid, vpid, cpid]);
    let r = e.s.delete(e.url(&composite_location), Some(&owner)).await;
    assert_eq!(r.status, 200);
    assert_eq!(e.participants(&call, &owner).await, vec![pid, vpid], "only that leg left");

    // Trickle: 204.
    let r = e.patch(&location, &owner, "application/trickle-ice-sdpfrag", FRAGMENT).await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    // A WHEP session's preferences while it plays (JSON): applied by the router, 0 lifts one.
    let leg = |srv: Arc<RouterServer>| {
        let p = srv.snapshot().into_iter().flat_map(|c| c.participants).find(|p| p.participant.0 == vpid).unwrap();
        (p.max_height, p.max_fps, p.last_n)
    };
    let prefs = r#"{"max_height": 360, "max_fps": 15, "last_n": 2}"#;
    let r = e.patch(&viewer_location, &viewer, "application/json", prefs).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(leg(e.router.clone()), (Some(360), Some(15), Some(2)));
    let r = e.patch(&viewer_location, &viewer, "application/json", r#"{"max_fps": 0}"#).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(leg(e.router.clone()), (Some(360), None, Some(2)), "lifted the one given, kept the others");
    for bad in [r#"{"max_height": 15}"#, r#"{"max_fps": 61}"#, r#"{"last_n": 256}"#, r#"{}"#, r#"{"size": 1}"#, "["] {
        let r = e.patch(&viewer_location, &viewer, "application/json", bad).await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
    assert_eq!(leg(e.router.clone()), (Some(360), None, Some(2)), "a refused PATCH changes nothing");
    let r = e.patch(&location, &owner, "application/json", r#"{"max_height": 360}"#).await;
    assert_eq!(r.status, 409, "a WHIP session receives nothing: {:?}", r.body);
    let r = e.patch(&viewer_location, &owner, "application/json", r#"{"max_height": 360}"#).await;
    assert_eq!(r.status, 403, "another user's session: {:?}", r.body);

    let r = e.s.delete(e.url(&viewer_location), Some(&viewer)).await;
    assert_eq!(r.status, 200);
    let r = e.s.delete(e.url(&location), Some(&owner)).await;
    assert_eq!(r.status, 200);
    assert!(e.participants(&call, &owner).await.is_empty(), "both left");
    let srv = e.router.clone();
    let gone = eventually(std::time::Duration::from_secs(5), || {
        let srv = srv.clone();
        async move {
            tokio::task::spawn_blocking(move || srv.snapshot().iter().all(|c| c.participants.is_empty())).await.unwrap()
        }
    })
    .await;
    assert!(gone, "the router dropped both legs");
    e.shutdown().await;
}

//! Abuse at the HTTP level: a client that trickles its request headers, or its body, is
//! disconnected at the header (body) read timeout while other requests are served; SQL-shaped and script-shaped
//! input is stored and returned verbatim (on the real PostgreSQL, Redis and Tarantool when
//! `control/scripts/test-with-servers.sh` runs the tests, else on the embedded stores).
//!
//! Covered elsewhere: oversize and malformed bodies on every JSON endpoint (413 / 400,
//! nothing stored: `http_calls::every_json_endpoint_rejects_malformed_and_oversize_bodies`,
//! `http_auth`, `http_whip::wrong_content_types_are_415_and_large_bodies_413`, chunked
//! too); login brute force (429 per login and per address:
//! `http_auth::login_failures_look_the_same_and_are_throttled`,
//! `http_auth::failures_from_one_address_are_throttled`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header (and body) read timeout the tests configure (the defaults: 10 s and 30 s).
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
/// How much later than the timeout a loaded machine may close the connection.
const SLACK: Duration = Duration::from_secs(5);

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("address")
}

/// Connects to `to`, sends `at_once`, then `slowly` one byte every 100 ms (it would take
/// about a minute); returns how long after connecting the server closed the connection, and
/// what it sent before closing.
async fn trickle(to: SocketAddr, at_once: &str, slowly: &str) -> (Duration, String) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(to).await.expect("connect");
    s.write_all(at_once.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    for b in slowly.bytes() {
        if s.write_all(&[b]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Err(_) => continue,                            // nothing yet: trickle on
            Ok(Ok(0)) | Ok(Err(_)) => break,               // closed
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]), // an error response, then the close
        }
        assert!(t0.elapsed() < HEADER_TIMEOUT + SLACK + SLACK, "still open after {:?}", t0.elapsed());
    }
    // Whatever was answered, the connection must be closed now.
    let rest = tokio::time::timeout(SLACK, s.read_to_end(&mut got)).await;
    assert!(rest.is_ok(), "the connection stays open");
    (t0.elapsed(), String::from_utf8_lossy(&got).into_owned())
}

/// A request head whose headers come slowly.
fn slow_head(to: SocketAddr) -> (String, String) {
    (format!("GET /v1/keys HTTP/1.1\r\nHost: {to}\r\n"), format!("{}\r\n", "X-Slow: a\r\n".repeat(50)))
}

/// A registration whose (JSON) body comes slowly.
fn slow_body(to: SocketAddr) -> (String, String) {
    let body = format!("{{\"login\": \"slow\", \"padding\": \"{}\"}}", "a".repeat(600));
    let head = format!(
        "POST /v1/register HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body)
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected_and_others_are_served() {
    let s = start(|c| c.http.header_read_timeout_ms = HEADER_TIMEOUT.as_millis() as u64).await;
    let (calls, auth) = (addr_of(&s.calls), addr_of(&s.auth));
    // Three slow clients on calls, one on auth; meanwhile ordinary requests, 5 a second.
    let slow: Vec<_> = [calls, calls, calls, auth]
        .into_iter()
        .map(|a| {
            let (head, slowly) = slow_head(a);
            tokio::spawn(async move { trickle(a, &head, &slowly).await })
        })
        .collect();
    let t0 = Instant::now();
    let mut served = 0;
    while t0.elapsed() < HEADER_TIMEOUT + Duration::from_millis(500) {
        let r = s.get(format!("{}/v1/keys", s.calls), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = s.get(format!("{}/v1/me", s.auth), None).await;
        assert_eq!(r.status, 401);
        served += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served >= 2, "{served}"); // 8 or so; fewer only on a very loaded machine
    for t in slow {
        let (after, answered) = t.await.expect("slow client");
        eprintln!("closed after {after:?}, answered {answered:?}");
        assert!(after >= HEADER_TIMEOUT - Duration::from_millis(100), "closed too early: {after:?}");
        assert!(after <= HEADER_TIMEOUT + SLACK, "closed late: {after:?}");
        assert!(answered.is_empty() || answered.starts_with("HTTP/1.1 408"), "{answered}");
    }
    // The services are fine afterwards, and a client that opens a connection and sends
    // nothing at all is closed as well.
    assert_eq!(s.get(format!("{}/v1/keys", s.calls), None).await.status, 200);
    let t0 = Instant::now();
    let mut idle = TcpStream::connect(calls).await.expect("connect");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(HEADER_TIMEOUT + SLACK, idle.read_to_end(&mut got)).await;
    assert!(closed.is_ok() && t0.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(100), "{:?}", t0.elapsed());
    s.shutdown().await;
}

/// A body that comes slowly fails its request when the body read timeout passes (400, then
/// the connection is closed), and stores nothing; others are served meanwhile.
#[tokio::test]
async fn a_client_that_trickles_its_body_is_refused_and_disconnected() {
    let s = start(|c| c.http.body_read_timeout_ms = HEADER_TIMEOUT.as_millis() as u64).await;
    let auth = addr_of(&s.auth);
    let (head, slowly) = slow_body(auth);
    let slow = tokio::spawn(async move { trickle(auth, &head, &slowly).await });
    let t0 = Instant::now();
    while t0.elapsed() < HEADER_TIMEOUT {
        assert_eq!(s.get(format!("{}/v1/me", s.auth), None).await.status, 401);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (after, answered) = slow.await.expect("slow client");
    eprintln!("closed after {after:?}, answered {answered:?}");
    assert!(after >= HEADER_TIMEOUT - Duration::from_millis(100), "closed too early: {after:?}");
    assert!(after <= HEADER_TIMEOUT + SLACK, "closed late: {after:?}");
    assert!(answered.starts_with("HTTP/1.1 400"), "{answered}");
    assert_eq!(s.login("slow", "whatever1").await.status, 401);
    s.shutdown().await;
}

/// An oversize body is refused before anything is read into a handler: 413, and the user it
/// would have registered does not exist (the same registration, small, succeeds).
#[tokio::test]
async fn an_oversize_body_is_refused_and_stores_nothing() {
    let s = start(|_| {}).await;
    let login = format!("b{}", uniq());
    let url = format!("{}/v1/register", s.auth);
    let mut body =
        json!({"login": login, "email": format!("{login}@example.org"), "name": "Big", "password": "correct horse"});
    body["padding"] = json!("x".repeat(64 * 1024));
    let r = send(s.http.post(&url).json(&body)).await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    assert_eq!(s.login(&login, "correct horse").await.status, 401, "not registered");
    assert_eq!(s.register(&login).await.status, 201, "the login is free");
    s.shutdown().await;
}

/// Display names, emails and passwords that look like SQL or HTML are data: stored as they
/// are, returned as they are (as JSON strings), and never change what is stored otherwise.
#[tokio::test]
async fn sql_and_script_shaped_input_is_stored_and_returned_verbatim() {
    let rs = real_servers();
    let s = start(|c| {
        c.stores.postgres_url = rs.pg.clone();
        c.stores.redis_url = rs.redis.clone();
        c.stores.tarantool_url = rs.tarantool.clone();
        c.calls.region = format!("t-{}", uniq());
    })
    .await;
    if rs.pg.is_none() || rs.redis.is_none() || rs.tarantool.is_none() {
        // `make test` requires the real servers; without them this runs on the embedded stores.
        assert!(std::env::var_os("CORECAST_TEST_REQUIRE_SERVERS").is_none(), "CORECAST_TEST_PG/REDIS/TARANTOOL unset");
        eprintln!("sql_and_script_shaped_input: on the embedded stores (run control/scripts/test-with-servers.sh)");
    }
    let names = [
        "'; DROP TABLE users; --",
        "\" OR 1=1 --",
        "Robert'); DELETE FROM users;--",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "\\x00' || pg_sleep(5) --",
        "{{7*7}} ${7*7} %s %n",
    ];
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let mut expected = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let login = format!("q{}", uniq());
        let email = format!("o'{login}@ex.org");
        let password = format!("' OR '1'='1 {i}");
        let body = json!({"login": login, "email": email, "name": name, "password": password});
        let r = s.post(format!("{}/v1/register", s.auth), None, body).await;
        assert_eq!(r.status, 201, "{name}: {:?}", r.body);
        // The SQL-shaped password is a password like any other: it logs in; a shape that
        // would be true in SQL does not.
        let r = s.login(&login, "' OR '1'='1").await;
        assert_eq!(r.status, 401, "{name}");
        let r = s.login(&login, &password).await;
        assert_eq!(r.status, 200, "{name}: {:?}", r.body);
        let token = r.body["session"].as_str().unwrap().to_owned();
        let me = s.get(format!("{}/v1/me", s.auth), Some(&token)).await;
        assert_eq!((me.body["name"].as_str(), me.body["email"].as_str()), (Some(*name), Some(email.as_str())));
        let ct = me.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(ct.starts_with("application/json"), "{ct}");
        if i < 2 {
            assert_eq!(s.join(&call, &token).await.status, 200, "{name}");
            expected.push(name.to_string());
        }
    }
    // A login shaped like SQL is refused as a login (its characters), not run.
    let r = s.login("admin' --", "x").await;
    assert!(r.status == 401 || r.status == 422, "{}: {:?}", r.status, r.body);
    let body =
        json!({"login": "x'; DROP TABLE users;--", "email": "x@example.org", "name": "n", "password": "12345678"});
    let r = s.post(format!("{}/v1/register", s.auth), None, body).await;
    assert_eq!((r.status, r.field()), (422, "login"));
    // The call's members see the names as they were given, in JSON.
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(&owner)).await;
    assert_eq!(r.status, 200);
    let got: Vec<String> =
        r.body["participants"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, expected);
    // Everything stored is still there: the first user logs in as before.
    let (_, again) = s.user().await;
    assert_eq!(s.get(format!("{}/v1/me", s.auth), Some(&again)).await.status, 200);
    s.shutdown().await;
}

/// "Rendered harmlessly by the web app", checked on its source (the browser test,
/// `tests/browser/webapp-e2e.mjs`, shows names in tiles and lists): no script of `web/` hands
/// text to an HTML parser; the one element builder (`h` in `web/app/ui.js`) appends children
/// as text nodes and binds `on…` attributes only to functions, and no call gives it an `on…`
/// string; the page's CSP allows no inline script (`http_web` checks the header is sent).
#[test]
fn the_web_app_never_parses_text_as_html() {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let mut files = vec![web.join("index.html")];
    for e in std::fs::read_dir(web.join("app")).expect("web/app") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "js") {
            files.push(p);
        }
    }
    assert!(files.len() > 5, "{files:?}");
    let sinks = [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "setHTMLUnsafe",
        "parseFromString",
        "createContextualFragment",
        "srcdoc",
    ];
    for f in &files {
        let src = std::fs::read_to_string(f).expect("read");
        for s in sinks {
            assert!(!src.contains(s), "{} uses {s}", f.display());
        }
        // `h(tag, { onclick: '…' })` would set an inline handler from a string.
        let inline_handler = src.match_indices(" on").any(|(i, _)| {
            let rest = &src[i + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].trim_start().starts_with(':') && {
                let v = rest[name_len..].trim_start()[1..].trim_start();
                v.starts_with('\'') || v.starts_with('"') || v.starts_with('`')
            }
        });
        assert!(!inline_handler, "{} gives an on… attribute a string", f.display());
    }
    let ui = std::fs::read_to_string(web.join("app/ui.js")).expect("ui.js");
    assert!(ui.contains("document.createTextNode(String(c))"), "children become text nodes");
    assert!(ui.contains("k.startsWith('on') && typeof v === 'function'"), "on… only for functions");
    let csp =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web.rs")).expect("web.rs");
    assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-inline"), "no inline script");
}

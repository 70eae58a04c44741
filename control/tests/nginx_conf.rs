//! The nginx config in `tuning/nginx/corecast.conf` (TLS, the routers' internal address, the
//! regions table through the `geo` module, per-region upstreams, rate limits), tested as
//! shipped with only its file paths and addresses moved into a temporary directory and
//! loopback ports:
//!
//! - `nginx -t` accepts it, with the regions table the calls service reads
//!   (`calls.regions_file`), which parses there too.
//! - A running nginx (its own master, `daemon off`, killed at the end) carries real HTTPS
//!   traffic to small backends standing for each region's calls instances, which answer who
//!   they are: a client from 127.0.0.2 (region eu-west in the test's table) reaches eu-west's,
//!   from 127.0.0.3 us-east's, from an address in no range the single-site upstream; with
//!   eu-west's instances stopped its clients are served by us-east (the backup) without an
//!   error, and by eu-west again once they are back; a burst on `/v1/login` over its rate gets
//!   429 beyond the burst allowance while requests within the rate pass; `/v1/routers` is
//!   refused on the public address.
//! - The same with the real services behind it (auth and calls in the test's process, every
//!   calls upstream one calls instance reading the same regions table, trusting nginx's
//!   X-Forwarded-For): a user registers and logs in through nginx, and a call started through
//!   nginx from 127.0.0.2 is placed on eu-west's router, from 127.0.0.3 on us-east's.
//!
//! Needs Debian's `nginx-light` (`make deps`) and curl (the client: TLS from a chosen source
//! address). Without them the tests are skipped, and fail under `make test`
//! (`CORECAST_TEST_REQUIRE_SERVERS`) and in CI (`CI`).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corecast_control::geo::RegionTable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const NGINX: &str = "/usr/sbin/nginx";
const CURL: &str = "/usr/bin/curl";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether the test can run: nginx and curl are installed (else skipped, or failed under
/// `make test` and CI).
fn tools(test: &str) -> bool {
    if Path::new(NGINX).exists() && Path::new(CURL).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: nginx or curl is missing (apt-get install nginx-light curl) and CI is set");
    }
    common::skip(test, "nginx (apt-get install nginx-light) and curl");
    false
}

/// Where the shipped config's upstreams and listeners go in the test.
struct Ports {
    public: u16,
    internal: u16,
    auth: u16,
    calls: u16,
    /// eu-west's two calls instances (10.1.0.12, 10.1.0.13), then us-east's (10.2.0.12, 10.2.0.13).
    regions: [u16; 4],
}

/// Writes the shipped config, its regions table, a throwaway certificate and a main
/// `nginx.conf` including it into `d`; only paths and addresses are replaced.
fn render(d: &str, regions: &str, p: &Ports) {
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=corecast-test", "-keyout", &format!("{d}/key.pem"), "-out", &format!("{d}/cert.pem")])
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::write(format!("{d}/regions.conf"), regions).unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tuning/nginx/corecast.conf")).unwrap();
    let lo = |port: u16| format!("127.0.0.1:{port}");
    let moved = [
        ("/etc/corecast/regions.conf", format!("{d}/regions.conf")),
        ("/etc/corecast/tls/fullchain.pem", format!("{d}/cert.pem")),
        ("/etc/corecast/tls/privkey.pem", format!("{d}/key.pem")),
        ("listen 443 ssl http2;", format!("listen {} ssl http2;", lo(p.public))),
        ("listen 10.0.0.1:8090;", format!("listen {};", lo(p.internal))),
        ("server 127.0.0.1:8081;", format!("server {};", lo(p.auth))),
        ("server 127.0.0.1:8082;", format!("server {};", lo(p.calls))),
        ("10.1.0.12:8082", lo(p.regions[0])),
        ("10.1.0.13:8082", lo(p.regions[1])),
        ("10.2.0.12:8082", lo(p.regions[2])),
        ("10.2.0.13:8082", lo(p.regions[3])),
    ];
    let mut conf = shipped;
    for (from, to) in &moved {
        assert!(conf.contains(from), "the shipped config has {from:?}");
        conf = conf.replace(from, to);
    }
    std::fs::write(format!("{d}/corecast.conf"), conf).unwrap();
    // The main file is the test's: its own master in the foreground, logs and temporary files
    // in the directory.
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("  {t}_temp_path {d}/{t};\n"))
        .collect();
    let main = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n{temp}  include {d}/corecast.conf;\n}}\n"
    );
    std::fs::write(format!("{d}/nginx.conf"), main).unwrap();
}

fn ports() -> Ports {
    Ports {
        public: free_port(),
        internal: free_port(),
        auth: free_port(),
        calls: free_port(),
        regions: [free_port(), free_port(), free_port(), free_port()],
    }
}

#[test]
fn nginx_accepts_the_shipped_config_with_the_regions_table() {
    if !tools("nginx_accepts_the_shipped_config_with_the_regions_table") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let regions = "# address range -> region\n10.1.0.0/16 eu-west;\n10.2.0.0/16 us-east;\ndefault eu-west;\n";
    let table = RegionTable::parse(regions).expect("the calls service reads the same table");
    assert_eq!(table.region_of("10.2.3.4".parse().unwrap()), Some("us-east"));
    render(&d, regions, &ports());
    let t = Command::new(NGINX).args(["-t", "-p", &d, "-c", &format!("{d}/nginx.conf")]).output().expect("nginx runs");
    let said = String::from_utf8_lossy(&t.stderr);
    assert!(t.status.success() && said.contains("test is successful"), "nginx -t: {said}");
}

/// A running nginx, stopped (TERM, then KILL) when dropped.
struct Nginx {
    child: Child,
    dir: String,
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(format!("{}/error.log", self.dir)).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for a calls (or auth) instance: answers every HTTP/1.1 request (keep-alive)
/// with 200 and its name in `x-who`. `stop` closes its listener and its connections.
struct Backend {
    port: u16,
    stop: watch::Sender<bool>,
}

impl Backend {
    async fn start(name: &'static str, port: u16) -> Backend {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("backend binds");
        let (stop, rx) = watch::channel(false);
        let mut accept_rx = rx.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = l.accept() => c,
                    _ = accept_rx.wait_for(|s| *s) => return,
                };
                let Ok((sock, _)) = conn else { return };
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(sock, name) => {}
                        _ = rx.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Backend { port, stop }
    }

    fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// Serves one connection: each request (headers, then a `Content-Length` body) gets 200.
async fn serve(mut sock: tokio::net::TcpStream, name: &str) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let body_len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        while buf.len() < end + 4 + body_len {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + body_len);
        let reply = format!("HTTP/1.1 200 OK\r\nx-who: {name}\r\ncontent-length: {}\r\n\r\n{name}", name.len());
        if sock.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// `count` requests through one curl (one TLS connection) from source address `from`:
/// each answer's status and `x-who`.
async fn curl(from: &str, method: &str, url: &str, count: usize) -> Vec<(u16, String)> {
    let mut c = tokio::process::Command::new(CURL);
    c.args(["-sk", "--interface", from, "-X", method, "--max-time", "20"]);
    if method == "POST" {
        c.args(["-H", "content-type: application/json", "-d", "{}"]);
    }
    for _ in 0..count {
        c.args(["-o", "/dev/null", "-w", "%{http_code} %header{x-who}\\n", url]);
    }
    let out = c.stderr(Stdio::inherit()).output().await.expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| {
            let (code, who) = l.split_once(' ').unwrap_or((l, ""));
            (code.parse().unwrap_or(0), who.trim().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_routes_by_region_fails_over_and_limits_rates() {
    if !tools("nginx_routes_by_region_fails_over_and_limits_rates") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // The test's table: a client's loopback address is its region (no default: an address
    // in no range goes to the single-site upstream).
    let regions = "127.0.0.2/32 eu-west;\n127.0.0.3/32 us-east;\n";
    let table = RegionTable::parse(regions).expect("the calls service reads the same table");
    assert_eq!(table.region_of("127.0.0.3".parse().unwrap()), Some("us-east"));
    let p = ports();
    render(&d, regions, &p);
    let _auth = Backend::start("auth", p.auth).await;
    let _calls = Backend::start("calls", p.calls).await;
    let names = ["eu-west-1", "eu-west-2", "us-east-1", "us-east-2"];
    let mut regional = Vec::new();
    for (name, port) in names.iter().zip(p.regions) {
        regional.push(Backend::start(name, port).await);
    }
    let child = Command::new(NGINX)
        .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let nginx = Nginx { child, dir: d.clone() };
    let public: SocketAddr = format!("127.0.0.1:{}", p.public).parse().unwrap();
    let up =
        common::eventually(Duration::from_secs(10), || async { tokio::net::TcpStream::connect(public).await.is_ok() })
            .await;
    assert!(up, "nginx listens: {}", nginx.error_log());
    let base = format!("https://127.0.0.1:{}", p.public);
    let calls_url = format!("{base}/v1/calls/00000000-0000-0000-0000-000000000001");
    let who = |answers: &[(u16, String)]| answers.iter().map(|(c, w)| format!("{c} {w}")).collect::<Vec<_>>();

    // Region routing: each client reaches its region's calls instances (both, in turn).
    let eu = curl("127.0.0.2", "GET", &calls_url, 4).await;
    assert!(eu.iter().all(|(c, w)| *c == 200 && w.starts_with("eu-west-")), "127.0.0.2: {:?}", who(&eu));
    let us = curl("127.0.0.3", "GET", &calls_url, 4).await;
    assert!(us.iter().all(|(c, w)| *c == 200 && w.starts_with("us-east-")), "127.0.0.3: {:?}", who(&us));
    let none = curl("127.0.0.6", "GET", &calls_url, 2).await;
    assert!(none.iter().all(|(c, w)| *c == 200 && w == "calls"), "no region: {:?}", who(&none));
    let denied = curl("127.0.0.2", "GET", &format!("{base}/v1/routers"), 1).await;
    assert_eq!(denied[0].0, 403, "/v1/routers is internal");

    // Health: eu-west's instances stop; its clients are served by us-east (the backup) with
    // no error (the failed attempts are retried on the next server), then by eu-west again
    // once it is back (after fail_timeout).
    regional[0].stop();
    regional[1].stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut during = Vec::new();
    for _ in 0..5 {
        during.extend(curl("127.0.0.2", "GET", &calls_url, 2).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        during.iter().all(|(c, w)| *c == 200 && w.starts_with("us-east-")),
        "eu-west down: served by us-east without errors: {:?}",
        who(&during)
    );
    let us_again = curl("127.0.0.3", "GET", &calls_url, 2).await;
    assert!(us_again.iter().all(|(c, w)| *c == 200 && w.starts_with("us-east-")), "{:?}", who(&us_again));
    let back: Vec<Backend> =
        vec![Backend::start(names[0], regional[0].port).await, Backend::start(names[1], regional[1].port).await];
    let back_at = Instant::now();
    let mut errors = Vec::new();
    let mut returned = false;
    while !returned && back_at.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let a = curl("127.0.0.2", "GET", &calls_url, 1).await;
        errors.extend(a.iter().filter(|(c, _)| *c != 200).cloned());
        returned = a.iter().any(|(c, w)| *c == 200 && w.starts_with("eu-west-"));
    }
    assert!(returned, "eu-west serves its clients again once back: {}", nginx.error_log());
    assert!(errors.is_empty(), "no error while it came back: {errors:?}");
    println!(
        "nginx: eu-west down: {} requests served by us-east; back on eu-west {:?} after its instances returned",
        during.len(),
        back_at.elapsed()
    );
    drop(back);

    // Rate limits: /v1/login takes 10 requests/s per address with a burst of 20 (nodelay).
    let login = format!("{base}/v1/login");
    let started = Instant::now();
    let burst = curl("127.0.0.4", "POST", &login, 60).await;
    let took = started.elapsed().as_secs_f64();
    let passed = burst.iter().filter(|(c, _)| *c == 200).count();
    let limited = burst.iter().filter(|(c, _)| *c == 429).count();
    println!("nginx: a burst of 60 logins in {took:.2} s: {passed} passed, {limited} got 429");
    assert_eq!(passed + limited, 60, "only 200 or 429: {:?}", who(&burst));
    assert!(burst.iter().filter(|(c, _)| *c == 200).all(|(_, w)| w == "auth"));
    assert!(passed >= 21, "the burst allowance (20) and the first pass: {passed}");
    assert!(limited >= 1, "beyond the burst, 429");
    assert!(passed as f64 <= 22.0 + 10.0 * took, "no more than the rate lets through: {passed} in {took:.2} s");
    // Within the rate (4/s, below 10/s), from the same address, every request passes.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let a = curl("127.0.0.4", "POST", &login, 1).await;
        assert_eq!(a.first().map(|x| x.0), Some(200), "request {i} within the rate: {:?}", who(&a));
    }
    drop(nginx);
}

/// One request through curl from source address `from`, with a JSON body and a bearer token:
/// the status and the JSON answer.
async fn curl_json(
    from: &str,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut c = tokio::process::Command::new(CURL);
    c.args(["-sk", "--interface", from, "-X", method, "--max-time", "20", "-H", "content-type: application/json"]);
    if let Some(t) = token {
        c.args(["-H", &format!("authorization: Bearer {t}")]);
    }
    c.args(["-d", &body.to_string(), "-w", "\n%{http_code}", url]);
    let out = c.stderr(Stdio::inherit()).output().await.expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_brings_each_region_to_its_routers_through_the_real_services() {
    if !tools("nginx_brings_each_region_to_its_routers_through_the_real_services") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let regions = "127.0.0.2/32 eu-west;\n127.0.0.3/32 us-east;\n";
    let sdir = tempfile::tempdir().unwrap();
    let table = sdir.path().join("regions.conf");
    std::fs::write(&table, regions).unwrap();
    let mut cfg = common::test_config(sdir.path());
    cfg.calls.regions_file = Some(table);
    cfg.calls.trust_forwarded_for = true;
    let fallback = cfg.router.address.clone();
    let s = common::start_with(cfg, sdir).await;
    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let calls = port(&s.calls);
    let p = Ports { public: free_port(), internal: free_port(), auth: port(&s.auth), calls, regions: [calls; 4] };
    render(&d, regions, &p);
    for (id, addr, region) in [("eu-1", "127.0.0.1:41401", "eu-west"), ("us-1", "127.0.0.1:41402", "us-east")] {
        let reg = serde_json::json!({"id": id, "address": addr, "cores": 1, "load": 0.1,
                                     "admin": "http://127.0.0.1:9", "region": region});
        assert_eq!(s.post(format!("{}/v1/routers", s.calls), Some("test-router-secret"), reg).await.status, 200);
    }
    let child = Command::new(NGINX)
        .args(["-p", &d, "-c", &format!("{d}/nginx.conf")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let nginx = Nginx { child, dir: d.clone() };
    let public: SocketAddr = format!("127.0.0.1:{}", p.public).parse().unwrap();
    let up =
        common::eventually(Duration::from_secs(10), || async { tokio::net::TcpStream::connect(public).await.is_ok() })
            .await;
    assert!(up, "nginx listens: {}", nginx.error_log());
    let base = format!("https://127.0.0.1:{}", p.public);
    let login = format!("u{}", common::uniq());
    let user = serde_json::json!({"login": login, "email": format!("{login}@example.org"), "name": "Test User", "password": "correct horse"});
    let (st, body) = curl_json("127.0.0.2", "POST", &format!("{base}/v1/register"), None, &user).await;
    assert_eq!(st, 201, "register through nginx: {body}");
    let creds = serde_json::json!({"login": login, "password": "correct horse"});
    let (st, body) = curl_json("127.0.0.2", "POST", &format!("{base}/v1/login"), None, &creds).await;
    assert_eq!(st, 200, "login through nginx: {body}");
    let session = body["session"].as_str().expect("session").to_owned();
    let start = |from: &'static str| {
        let (url, session) = (format!("{base}/v1/calls"), session.clone());
        async move { curl_json(from, "POST", &url, Some(&session), &serde_json::json!({})).await }
    };
    for (from, router) in
        [("127.0.0.2", "127.0.0.1:41401"), ("127.0.0.3", "127.0.0.1:41402"), ("127.0.0.6", fallback.as_str())]
    {
        let (st, body) = start(from).await;
        assert_eq!((st, body["router"].as_str()), (201, Some(router)), "a call started from {from}: {body}");
    }
    drop(nginx);
    s.shutdown().await;
}

//! `corecast-router` processes for tests that `kill -9` one (failover), and native clients
//! that follow their call (`corecast_client::follow`).
//!
//! Needs the binaries: `cargo build -p corecast-router --bins` (found next to the test's
//! `deps/` directory, or in `CORECAST_BIN_DIR`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use corecast_client::{follow, ControlClient, FollowConfig, FollowProgress, FollowReport, MediaPlan, Via};
use corecast_proto::session::Quality;
use serde_json::json;

use super::{eventually, uniq, Svc};

/// The router secret the test services are configured with.
pub const SECRET: &str = "test-router-secret";

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CORECAST_BIN_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(|d| d.parent()).expect("target/<profile>").to_owned()
}

/// A `corecast-router` process (killed when dropped).
pub struct RouterProc {
    pub child: std::process::Child,
    pub id: String,
    pub addr: String,
    /// Its admin API (`host:port`).
    pub admin: String,
}

impl Drop for RouterProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = std::net::TcpListener::bind(format!("127.0.0.1:{}", u.local_addr().unwrap().port()));
    match t {
        Ok(t) => t.local_addr().unwrap().port(),
        Err(_) => free_port(),
    }
}

/// Starts a router of `region` registering with `calls`; its log goes to `log/<id>.log`.
pub fn spawn(calls: &str, region: &str, public_key: &str, log: &Path) -> RouterProc {
    let bin = bin_dir().join("corecast-router");
    assert!(bin.exists(), "{} missing: cargo build -p corecast-router --bins", bin.display());
    let id = format!("rp-{}", uniq());
    let addr = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let err = std::fs::File::create(log.join(format!("{id}.log"))).unwrap();
    let child = std::process::Command::new(bin)
        .args(["--listen", &addr, "--admin-listen", &admin, "--workers", "1", "--stats-interval", "0"])
        .args(["--calls-url", calls, "--router-id", &id, "--region", region, "--public-key-hex", public_key])
        .args(["--router-secret", SECRET, "--insecure-dev-keys"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("corecast-router starts");
    RouterProc { child, id, addr, admin }
}

/// `n` routers registered and live in `region` (their logs printed if they do not).
pub async fn spawn_live(s: &Svc, region: &str, n: usize) -> Vec<RouterProc> {
    let pk = s.get(format!("{}/v1/keys", s.calls), None).await.body["public_key_hex"].as_str().unwrap().to_owned();
    let rs: Vec<RouterProc> = (0..n).map(|_| spawn(&s.calls, region, &pk, s.dir.path())).collect();
    let live = eventually(Duration::from_secs(20), || async {
        let r = s.get(format!("{}/v1/routers", s.calls), Some(SECRET)).await;
        let listed = r.body["routers"].as_array().cloned().unwrap_or_default();
        rs.iter().all(|p| listed.iter().any(|r| r["id"] == json!(p.id) && r["live"] == json!(true)))
    })
    .await;
    if !live {
        for r in &rs {
            let log = std::fs::read_to_string(s.dir.path().join(format!("{}.log", r.id))).unwrap_or_default();
            eprintln!("--- {} ---\n{log}", r.id);
        }
    }
    assert!(live, "the routers register");
    rs
}

/// A native participant following its call on a thread.
pub struct Follower {
    pub progress: Arc<FollowProgress>,
    pub thread: std::thread::JoinHandle<FollowReport>,
}

impl Follower {
    /// Packets received on its current router.
    pub fn leg_received(&self) -> u64 {
        self.progress.leg_received.load(Ordering::Relaxed)
    }

    /// Packets received in all.
    pub fn received(&self) -> u64 {
        self.progress.received.load(Ordering::Relaxed)
    }

    /// Re-joins so far.
    pub fn rejoins(&self) -> u32 {
        self.progress.rejoins.load(Ordering::Relaxed)
    }

    /// Its participant id (0 until it joined).
    pub fn participant(&self) -> u64 {
        self.progress.participant.load(Ordering::Relaxed)
    }
}

/// Joins call `call` as the user of `session` and follows it for `seconds`, at modest rates
/// (audio at 50 packets/s, 10 video frames of 1 packet a second).
pub fn start_follower(calls: &str, session: &str, call: &str, seconds: u64) -> Follower {
    start_follower_with(calls, session, call, seconds, Quality::Hd)
}

/// [`start_follower`] asking for `quality` (SD: the codec pool's composite).
pub fn start_follower_with(calls: &str, session: &str, call: &str, seconds: u64, quality: Quality) -> Follower {
    let via = Via { calls: calls.to_owned(), session: session.to_owned(), call: call.to_owned() };
    let plan = MediaPlan {
        video_fps: 10,
        video_packets_per_frame: 1,
        video_packet_size: 600,
        duration: Duration::from_secs(seconds),
        ..Default::default()
    };
    let cfg = FollowConfig { plan, quality, ..Default::default() };
    let progress = Arc::new(FollowProgress::default());
    let p = progress.clone();
    let thread = std::thread::spawn(move || follow(&ControlClient::new(), &via, &cfg, &p).expect("follower joins"));
    Follower { progress, thread }
}

/// A `corecast-codec` process (killed when dropped).
pub struct CodecProc {
    pub child: std::process::Child,
    /// Its `/metrics` URL.
    pub metrics: String,
}

impl Drop for CodecProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a codec pool for `router` (its admin API), getting mixer tokens from `calls`; it
/// takes its router for dead after `router_dead_ms` without an answer. Log in `log/<name>.log`.
pub fn spawn_codec(calls: &str, router: &RouterProc, router_dead_ms: u64, log: &Path) -> CodecProc {
    let bin = bin_dir().join("corecast-codec");
    assert!(bin.exists(), "{} missing: cargo build -p corecast-codec --bins", bin.display());
    let listen = format!("127.0.0.1:{}", free_port());
    let err = std::fs::File::create(log.join(format!("codec-{}.log", router.id))).unwrap();
    let child = std::process::Command::new(bin)
        .args(["--router-admin", &format!("http://{}", router.admin), "--calls-url", calls])
        .args(["--router-secret", SECRET, "--listen", &listen, "--poll-ms", "200"])
        .args(["--router-dead-ms", &router_dead_ms.to_string(), "--fps", "10", "--bitrate-kbps", "200"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("corecast-codec starts");
    CodecProc { child, metrics: format!("http://{listen}/metrics") }
}

/// A fresh user starts a call: its token, the call id, and which of `routers` the call is on.
pub async fn new_call_on(s: &Svc, routers: &[RouterProc]) -> (String, String, usize) {
    let (_, owner) = s.user().await;
    let call = s.start_call(&owner).await;
    let (home_addr, _) = participants(s, &owner, &call).await;
    let home = routers.iter().position(|r| r.addr == home_addr).expect("the call on a router of the test");
    (owner, call, home)
}

/// Call `call` as its owner sees it: the router it is on and its participants' ids, sorted.
pub async fn participants(s: &Svc, owner: &str, call: &str) -> (String, Vec<u64>) {
    let r = s.get(format!("{}/v1/calls/{call}", s.calls), Some(owner)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut ps: Vec<u64> =
        r.body["participants"].as_array().unwrap().iter().filter_map(|p| p["participant_id"].as_u64()).collect();
    ps.sort_unstable();
    (r.body["router"].as_str().unwrap_or_default().to_owned(), ps)
}

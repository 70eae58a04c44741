//! Cascading over loopback: one call over three real routers, linked by the
//! test through their admin APIs (a star around the home router), with two
//! native clients on each. Every client gets every other client's packets
//! byte for byte, and the routers' `/metrics` count each packet once per link.
//!
//! Modest rates, large socket buffers and bounded waits (a loaded 2-core
//! machine must pass it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corecast_client::{Client, MediaPlan};
use corecast_core::{cascade_open, cascade_seal, PipeMessage, RouterConfig};
use corecast_proto::pipe_seal::PipeKey;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_router::admin;
use corecast_router::server::{RouterServer, ServerConfig};
use serde_json::{json, Value};

const SECRET: &str = "s3cret";

fn tok(call: CallId, pid: u64) -> Vec<u8> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 120_000;
    let c = Claims { call_id: call, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms: exp };
    token::sign(&token::dev_signing_key(), &c).to_vec()
}

/// One router and its admin API.
struct Node {
    server: Arc<RouterServer>,
    url: String,
}

struct Admin {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Admin {
    fn new() -> Admin {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        Admin { rt, http }
    }

    /// A router with `workers` workers, each taking at most `per_worker` receivers of a call.
    fn start(&self, workers: usize, per_worker: usize) -> Node {
        let server = Arc::new(
            RouterServer::start(ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                advertise_ip: None,
                workers,
                cpus: Vec::new(),
                backend: "mmsg".into(),
                core: RouterConfig {
                    join_secret: Some(corecast_proto::join_key::JoinSecret::dev()),
                    max_receivers_per_worker: per_worker,
                    ..Default::default()
                },
                public_key: token::dev_signing_key().verifying_key(),
                io: Default::default(),
            })
            .expect("router starts"),
        );
        let s = server.clone();
        let url = self.rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            let app = admin::routes(admin::AdminState { server: s, secret: Some(SECRET.into()) });
            tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
            url
        });
        Node { server, url }
    }

    fn request(&self, method: reqwest::Method, url: String, body: Option<Value>) -> (u16, String) {
        self.rt.block_on(async {
            let mut r = self.http.request(method, url).bearer_auth(SECRET);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// Where `node` takes `call`'s pipe datagrams.
    fn pipe_address(&self, node: &Node, call: CallId) -> SocketAddr {
        let (status, body) = self.request(reqwest::Method::GET, format!("{}/v1/calls/{call}/pipe", node.url), None);
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["address"].as_str().unwrap().parse().unwrap()
    }

    /// Links `node`'s share of `call` to the router at `peer` with `key`
    /// (`uplink`: `peer` is the call's home).
    fn open(&self, node: &Node, call: CallId, peer: SocketAddr, uplink: bool, key: &PipeKey) {
        let url = format!("{}/v1/calls/{call}/pipes", node.url);
        let body = json!({ "peer": peer.to_string(), "uplink": uplink, "key": key.to_hex() });
        let (status, body) = self.request(reqwest::Method::POST, url, Some(body));
        assert_eq!(status, 200, "{body}");
    }

    fn metrics(&self, node: &Node) -> String {
        self.request(reqwest::Method::GET, format!("{}/metrics", node.url), None).1
    }
}

/// A per-link counter summed over the router's workers.
fn link_sum(text: &str, name: &str, peer: SocketAddr) -> u64 {
    let tail = format!(",peer=\"{peer}\"}}");
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?.strip_prefix("{worker=\"")?;
            labels.ends_with(&tail).then(|| value.parse::<u64>().ok())?
        })
        .sum()
}

/// Media packets on the link from `node` to `peer`, RTP only, as its metrics count them.
fn rtp_out(text: &str, peer: SocketAddr) -> u64 {
    link_sum(text, "corecast_link_media_out_total", peer) - link_sum(text, "corecast_link_rtcp_out_total", peer)
}

fn rtp_in(text: &str, peer: SocketAddr) -> u64 {
    link_sum(text, "corecast_link_media_in_total", peer) - link_sum(text, "corecast_link_rtcp_in_total", peer)
}

/// A per-worker series summed over the router's workers.
fn worker_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            series.strip_prefix(name)?.strip_prefix("{worker=\"")?.strip_suffix("\"}")?;
            value.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn a_call_over_three_routers_is_exact_and_each_packet_crosses_each_link_once() {
    three_routers(1, RouterConfig::default().max_receivers_per_worker);
}

/// Two workers per router, one receiver of the call per worker: on each router the second
/// participant is spread to the other worker, so the call's pipes are a star of workers on
/// each router joined to the star of routers at the owning workers (one tree).
#[test]
fn a_call_over_three_two_worker_routers_spread_over_their_workers_is_exact() {
    three_routers(2, 1);
}

fn three_routers(workers: usize, per_worker: usize) {
    let admin = Admin::new();
    let nodes: Vec<Node> = (0..3).map(|_| admin.start(workers, per_worker)).collect();
    let call = CallId(rand::random());
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| admin.pipe_address(n, call)).collect();
    // A star around router 0, the call's home, a key per link (the home opened first).
    for leaf in 1..3 {
        let key = PipeKey::new(rand::random());
        admin.open(&nodes[0], call, addrs[leaf], false, &key);
        admin.open(&nodes[leaf], call, addrs[0], true, &key);
    }
    // Refused: a malformed peer, no key, a malformed key, no secret.
    let url = format!("{}/v1/calls/{call}/pipes", nodes[0].url);
    let key = PipeKey::new([1; 32]).to_hex();
    for body in [
        json!({ "peer": "nowhere", "key": key }),
        json!({ "peer": "127.0.0.1:9" }),
        json!({ "peer": "127.0.0.1:9", "key": "00ff" }),
    ] {
        let (status, _) = admin.request(reqwest::Method::POST, url.clone(), Some(body));
        assert_eq!(status, 400);
    }
    let status = admin.rt.block_on(async { admin.http.post(url).json(&json!({"peer": "127.0.0.1:9"})).send().await });
    assert_eq!(status.unwrap().status().as_u16(), 401);

    // Two publishers on each router.
    let router_of = |pid: u64| ((pid - 1) / 2) as usize;
    let clients: Vec<Client> = (1..=6u64)
        .map(|pid| {
            let c = Client::join_dev(addrs[router_of(pid)], &tok(call, pid), pid, Quality::Hd).unwrap();
            let on = &nodes[router_of(pid)].server;
            assert!(on.addresses().contains(&c.router()), "participant {pid} on its router");
            // With one receiver per worker, a router's second participant is on its other worker.
            let spread = per_worker == 1 && pid % 2 == 0;
            assert_eq!(c.router() != addrs[router_of(pid)], spread, "participant {pid}");
            c
        })
        .collect();
    // The announcements of the last joins cross before any media.
    std::thread::sleep(Duration::from_millis(300));
    let receivers: Vec<_> = clients.iter().map(|c| c.start_receiving(true)).collect();
    let per_client = 300u64;
    let plan = MediaPlan {
        audio: true,
        video_fps: 50,
        video_packets_per_frame: 2,
        video_packet_size: 900,
        duration: Duration::from_secs(20),
        max_packets: Some(per_client),
        ..Default::default()
    };
    let sent: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = clients.iter().map(|c| s.spawn(|| c.send_media(&plan, true))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for s in &sent {
        assert_eq!(s.sent, per_client);
    }
    let others = 5 * per_client;
    for r in &receivers {
        r.wait_for(others, Duration::from_secs(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // would-be duplicates or loops
    let reports: Vec<_> = receivers.into_iter().map(|r| r.finish()).collect();
    for (i, rep) in reports.iter().enumerate() {
        let (want, got) = rep.others_and_got(&sent, i);
        assert_eq!(got.len() as u64, others, "participant {} received {} of {others}", i + 1, got.len());
        assert!(got == want, "participant {} did not get the others' packets byte for byte", i + 1);
        assert_eq!((rep.duplicates, rep.corrupt), (0, 0));
        assert_eq!(rep.per_sender.len(), 5);
    }

    // From the routers' metrics: each packet crossed each link of the star
    // once, away from its router, and nothing came back.
    let m: Vec<String> = nodes.iter().map(|n| admin.metrics(n)).collect();
    let by_router = 2 * per_client;
    for leaf in 1..3 {
        let other = 3 - leaf;
        assert_eq!(rtp_out(&m[leaf], addrs[0]), by_router, "leaf {leaf} -> home: its own publishers' packets");
        assert_eq!(rtp_in(&m[0], addrs[leaf]), by_router, "home <- leaf {leaf}");
        assert_eq!(rtp_out(&m[0], addrs[leaf]), 2 * by_router, "home -> leaf {leaf}: the home's and leaf {other}'s");
        assert_eq!(rtp_in(&m[leaf], addrs[0]), 2 * by_router, "leaf {leaf} <- home");
        assert_eq!(rtp_out(&m[leaf], addrs[other]), 0, "leaves are not linked");
        assert_eq!(worker_sum(&m[leaf], "corecast_cascade_links"), 1);
    }
    assert_eq!(worker_sum(&m[0], "corecast_cascade_links"), 2);
    // At most the `Open` of an end that opened before the other did; every
    // datagram opened with its link's key.
    for (i, n) in nodes.iter().enumerate() {
        let refused: u64 = n.server.stats().iter().map(|w| w.router.dropped_pipe_unadmitted).sum();
        assert!(refused <= 1, "router {i}: {refused}");
        let unauthentic: u64 =
            n.server.stats().iter().map(|w| w.router.dropped_pipe_auth_failed + w.router.dropped_pipe_replayed).sum();
        assert_eq!(unauthentic, 0, "router {i}");
    }
    // Each router forwarded to its own two receivers only: 5 senders' packets each.
    for (i, n) in nodes.iter().enumerate() {
        let forwarded: u64 = n.server.stats().iter().map(|s| s.router.forwarded_rtp).sum();
        assert_eq!(forwarded, 2 * others, "router {i}");
    }
}

/// The counter of drops for `reason`, summed over workers, once it reaches `want` (or the
/// wait ends).
fn dropped_until(admin: &Admin, node: &Node, reason: &str, want: u64) -> u64 {
    let series = format!("corecast_dropped_total{{worker=\"0\",reason=\"{reason}\"}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = admin.metrics(node);
        let v = text.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse::<u64>().ok()).unwrap_or(0);
        if v >= want || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A socket the test owns, linked to a real router as if it were the leaf: what comes
/// from its address is taken only if sealed with the link's key, never twice.
#[test]
fn a_pipe_datagram_from_a_linked_address_without_the_key_is_dropped_and_counted() {
    let admin = Admin::new();
    let node = admin.start(1, RouterConfig::default().max_receivers_per_worker);
    let call = CallId(rand::random());
    let home = admin.pipe_address(&node, call);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let key = PipeKey::new(rand::random());
    admin.open(&node, call, sock.local_addr().unwrap(), false, &key);
    // What the router sends on the link is sealed: it opens with the leaf's keys only.
    let mut leaf = key.keys(false);
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("the home's Open");
    assert_eq!(cascade_open(&mut leaf, &buf[..n]), Ok((call, PipeMessage::Open)));
    assert!(cascade_open(&mut PipeKey::new([7; 32]).keys(false), &buf[..n]).is_err());

    // Spoofed from the linked address: another key under the link's key id, a plain
    // (version 1) datagram, then a genuine one twice.
    let mut forged =
        cascade_seal(&PipeKey::new(rand::random()).keys(false), call, &PipeMessage::Open).unwrap().to_vec();
    forged[18..22].copy_from_slice(&key.id().to_be_bytes());
    sock.send_to(&forged, home).unwrap();
    assert_eq!(dropped_until(&admin, &node, "pipe_auth_failed", 1), 1);
    let mut plain = vec![0xCC, 0x12];
    plain.extend_from_slice(&call.0);
    sock.send_to(&plain, home).unwrap();
    assert_eq!(dropped_until(&admin, &node, "malformed", 1), 1);
    let genuine = cascade_seal(&leaf, call, &PipeMessage::Left(corecast_proto::token::ParticipantId(9))).unwrap();
    sock.send_to(&genuine, home).unwrap();
    sock.send_to(&genuine, home).unwrap();
    assert_eq!(dropped_until(&admin, &node, "pipe_replayed", 1), 1);
    let taken: u64 = node.server.stats().iter().map(|w| w.router.cascade_control_in).sum();
    assert_eq!(taken, 1, "the genuine datagram, once");
    let text = admin.metrics(&node);
    for reason in ["pipe_auth_failed", "pipe_replayed"] {
        assert!(text.contains(&format!("reason=\"{reason}\"")), "{reason} in /metrics");
    }
    assert!(text.contains("# HELP corecast_dropped"), "HELP");
}

//! The admin API's `/metrics`, `/healthz` and `/readyz` after a call over
//! loopback: the scraped counters agree with the datagrams the test sent.
//!
//! Modest rates and bounded waits (a loaded 2-core machine must pass it).

use std::net::UdpSocket;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corecast_client::{Client, MediaPlan};
use corecast_core::RouterConfig;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_router::admin;
use corecast_router::server::RouterServer;

fn tok(call: CallId, pid: u64) -> Vec<u8> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
    let c = Claims { call_id: call, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms: exp };
    token::sign(&token::dev_signing_key(), &c).to_vec()
}

/// The value of one sample (`name{labels}`, exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

struct Admin {
    rt: tokio::runtime::Runtime,
    url: String,
    http: reqwest::Client,
}

impl Admin {
    fn start(server: Arc<RouterServer>) -> Admin {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let url = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            let app = admin::routes(admin::AdminState { server, secret: Some("s3cret".into()) });
            tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
            url
        });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        Admin { rt, url, http }
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        self.rt.block_on(async {
            let r = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        })
    }

    fn scrape(&self) -> String {
        let (status, ct, text) = self.get("/metrics");
        assert_eq!(status, 200);
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        text
    }

    /// Scrapes until `series` reaches `want` (15 s at most), and returns that scrape.
    fn scrape_until(&self, series: &str, want: f64) -> String {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.scrape();
            if sample(&text, series) == Some(want) || Instant::now() > end {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_scrape_after_a_call_counts_what_the_test_sent() {
    let server = Arc::new(common::start_with("basic", 1, RouterConfig::default()));
    let router = server.addresses()[0];
    let admin = Admin::start(server.clone());

    let (status, _, body) = admin.get("/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = admin.get("/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");

    // Nothing has arrived yet; every family is described.
    let text = admin.scrape();
    assert_eq!(sample(&text, "corecast_rx_datagrams_total{worker=\"0\"}"), Some(0.0), "{text}");
    for family in ["corecast_rx_bytes_total", "corecast_dropped_total", "corecast_worker_busy_seconds_total"] {
        assert!(text.contains(&format!("# TYPE {family} counter\n")), "{family}: {text}");
        assert!(text.contains(&format!("# HELP {family} ")), "{family}: {text}");
    }
    for family in ["corecast_calls", "corecast_participants", "corecast_pipe_links", "corecast_worker_load_ratio"] {
        assert!(text.contains(&format!("# TYPE {family} gauge\n")), "{family}: {text}");
    }

    // 1. A stranger's 40 datagrams of 100 bytes: received, dropped as unadmitted.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut junk = vec![0u8; 100];
    junk[0] = 0x80; // RTP version 2
    junk[1] = 0x60;
    for _ in 0..40 {
        stranger.send_to(&junk, router).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let text = admin.scrape_until("corecast_dropped_total{worker=\"0\",reason=\"unadmitted\"}", 40.0);
    assert_eq!(sample(&text, "corecast_dropped_total{worker=\"0\",reason=\"unadmitted\"}"), Some(40.0), "{text}");
    assert_eq!(sample(&text, "corecast_rx_datagrams_total{worker=\"0\"}"), Some(40.0), "{text}");
    assert_eq!(sample(&text, "corecast_rx_bytes_total{worker=\"0\"}"), Some(4000.0), "{text}");
    assert_eq!(sample(&text, "corecast_dropped_total{worker=\"0\",reason=\"malformed\"}"), Some(0.0), "{text}");

    // 2. A call: A sends 120 RTP packets, B receives them all.
    let call = CallId(rand::random());
    let a = Client::join_dev(router, &tok(call, 1), 1, Quality::Hd).unwrap();
    let b = Client::join_dev(router, &tok(call, 2), 2, Quality::Hd).unwrap();
    let rb = b.start_receiving(false);
    let plan = MediaPlan {
        video_fps: 30,
        video_packets_per_frame: 2,
        audio: false,
        max_packets: Some(120),
        ..Default::default()
    };
    a.send_media(&plan, false);
    assert!(rb.wait_for(120, Duration::from_secs(20)), "B did not get A's 120 packets");
    let text = admin.scrape_until("corecast_forwarded_rtp_total{worker=\"0\"}", 120.0);
    assert_eq!(sample(&text, "corecast_forwarded_rtp_total{worker=\"0\"}"), Some(120.0), "{text}");
    assert_eq!(sample(&text, "corecast_joins_total{worker=\"0\"}"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "corecast_calls{worker=\"0\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "corecast_participants{worker=\"0\"}"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "corecast_pipe_links{worker=\"0\"}"), Some(0.0), "{text}");
    // Received: the stranger's 40, the two joins and A's 120 (B's keepalives may add more).
    let rx = sample(&text, "corecast_rx_datagrams_total{worker=\"0\"}").unwrap();
    assert!(rx >= 40.0 + 2.0 + 120.0, "{rx}");
    let tx = sample(&text, "corecast_tx_datagrams_total{worker=\"0\"}").unwrap();
    assert!(tx >= 120.0 + 2.0, "{tx}: the forwarded packets and the join answers");
    assert!(sample(&text, "corecast_tx_bytes_total{worker=\"0\"}").unwrap() >= tx * 12.0, "{text}");
    // The same counters as `GET /v1/stats`.
    let st = server.stats()[0].router;
    assert_eq!(
        sample(&text, "corecast_dropped_total{worker=\"0\",reason=\"unadmitted\"}"),
        Some(st.dropped_unadmitted as f64)
    );
    assert!(st.rx_bytes as f64 >= sample(&text, "corecast_rx_bytes_total{worker=\"0\"}").unwrap());
    let rep = rb.finish();
    assert_eq!(rep.unique, 120);
    drop((a, b));
    server.shutdown();

    // A router whose workers stopped is not ready.
    let (status, _, body) = admin.get("/readyz");
    assert_eq!(status, 503, "{body}");
}

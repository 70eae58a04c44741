//! `corecast-bench demo`: one call, N participants, every packet verified.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use corecast_client::{Client, Latency, MediaPlan};
use corecast_core::RouterConfig;
use corecast_proto::join_key::JoinSecret;
use corecast_proto::session::Quality;
use corecast_proto::token::{self, CallId, Claims, ParticipantId, Role};
use corecast_router::server::{RouterServer, ServerConfig};
use serde::Serialize;

/// Options of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Participants in the call (each sends and receives).
    #[arg(long, default_value_t = 4)]
    participants: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Video frames per second per participant.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Packets per video frame.
    #[arg(long, default_value_t = 4)]
    packets_per_frame: u16,
    /// Video packet size in bytes.
    #[arg(long, default_value_t = 1200)]
    packet_size: usize,
    /// Router backend (in-process router).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Router workers (in-process router).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Use a running router at this address instead of starting one (it must
    /// accept the development key, or pass --key-hex).
    #[arg(long)]
    router: Option<SocketAddr>,
    /// Signing key seed (64 hex digits) for tokens; default: the development key.
    #[arg(long)]
    key_hex: Option<String>,
    /// The router secret join keys are derived from (with --router); default:
    /// the development secret. The in-process router gets a random one.
    #[arg(long, env = "CORECAST_ROUTER_SECRET", hide_env_values = true)]
    router_secret: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct ParticipantResult {
    participant: u64,
    sent: u64,
    received: u64,
    expected: u64,
    lost: u64,
    duplicates: u64,
    reordered: u64,
    corrupt: u64,
    p50_latency_us: u64,
    p99_latency_us: u64,
}

#[derive(Debug, Serialize)]
struct DemoResult {
    participants: Vec<ParticipantResult>,
    seconds: f64,
    backend: String,
    egress_pps: f64,
    ingress_pps: f64,
    p50_latency_us: u64,
    p99_latency_us: u64,
    max_latency_us: u64,
    total_lost: u64,
    total_corrupt: u64,
    router_dropped: u64,
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.participants >= 2, "a call needs at least 2 participants");
    anyhow::ensure!(a.packet_size >= 64 && a.packet_size <= 1400, "packet size must be 64..=1400");
    let key = match &a.key_hex {
        Some(h) => token::signing_key_from_hex(h).context("key must be 64 hex digits")?,
        None => token::dev_signing_key(),
    };
    let secret = match (&a.router, &a.router_secret) {
        (_, Some(s)) => JoinSecret::new(s.as_bytes()),
        (Some(_), None) => JoinSecret::dev(),
        (None, None) => JoinSecret::new(&rand::random::<[u8; 32]>()),
    };
    let server = match a.router {
        Some(_) => None,
        None => Some(RouterServer::start(ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            advertise_ip: None,
            workers: a.workers,
            cpus: Vec::new(),
            backend: a.backend.clone(),
            core: RouterConfig { join_secret: Some(secret.clone()), ..RouterConfig::default() },
            public_key: key.verifying_key(),
            io: Default::default(),
        })?),
    };
    let router = a.router.or_else(|| server.as_ref().map(|s| s.addresses()[0])).context("no router")?;
    let backend = server.as_ref().map(|s| s.backend().to_string()).unwrap_or_else(|| "external".into());
    let call = CallId(rand::random());
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let mut clients = Vec::new();
    for i in 0..a.participants {
        let pid = 1000 + i;
        let tok = publisher_token(&key, call, pid, now_ms + 600_000);
        clients.push(
            Client::join(router, &tok, &secret.key_for(&tok), pid, Quality::Hd)
                .with_context(|| format!("participant {pid} joining"))?,
        );
    }
    if !a.json {
        eprintln!(
            "call {call}: {} participants on {} ({backend}); sending {} s of audio + {} fps x {} x {} B video each",
            a.participants,
            clients[0].router(),
            a.seconds,
            a.fps,
            a.packets_per_frame,
            a.packet_size
        );
    }
    let receivers: Vec<_> = clients.iter().map(|c| c.start_receiving(false)).collect();
    let plan = MediaPlan {
        audio: true,
        video_fps: a.fps,
        video_packets_per_frame: a.packets_per_frame,
        video_packet_size: a.packet_size,
        duration: Duration::from_secs(a.seconds),
        ..Default::default()
    };
    let started = Instant::now();
    let sent: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = clients.iter().map(|c| s.spawn(|| c.send_media(&plan, false).sent)).collect();
        if !a.json {
            // Visible progress while the call runs.
            while hs.iter().any(|h| !h.is_finished()) {
                std::thread::sleep(Duration::from_millis(250));
                let got: u64 = receivers.iter().map(|r| r.received()).sum();
                eprint!("\r  t={:>4.1}s  received {got:>9} packets", started.elapsed().as_secs_f64());
                let _ = std::io::stderr().flush();
            }
            eprintln!();
        }
        hs.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total_sent: u64 = sent.iter().sum();
    for r in &receivers {
        // Everything still in flight arrives within a few ms on loopback.
        r.wait_for(total_sent, Duration::from_millis(1500));
    }
    let stats = server.as_ref().map(|s| s.stats()).unwrap_or_default();
    for c in &clients {
        let _ = c.leave();
    }
    let reports: Vec<_> = receivers.into_iter().map(|r| r.finish()).collect();
    let mut all_samples = Vec::new();
    let mut parts = Vec::new();
    for (i, (c, rep)) in clients.iter().zip(&reports).enumerate() {
        let expected: u64 = sent.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s).sum();
        all_samples.extend_from_slice(&rep.samples);
        parts.push(ParticipantResult {
            participant: c.participant(),
            sent: sent[i],
            received: rep.unique,
            expected,
            lost: expected.saturating_sub(rep.unique),
            duplicates: rep.duplicates,
            reordered: rep.reordered,
            corrupt: rep.corrupt,
            p50_latency_us: rep.latency.p50_us,
            p99_latency_us: rep.latency.p99_us,
        });
    }
    let lat = Latency::from_samples(&mut all_samples);
    let forwarded: u64 = stats.iter().map(|s| s.router.forwarded_rtp).sum();
    let egress = if forwarded > 0 { forwarded } else { parts.iter().map(|p| p.received).sum() };
    let result = DemoResult {
        seconds: elapsed,
        backend,
        egress_pps: egress as f64 / elapsed,
        ingress_pps: total_sent as f64 / elapsed,
        p50_latency_us: lat.p50_us,
        p99_latency_us: lat.p99_us,
        max_latency_us: lat.max_us,
        total_lost: parts.iter().map(|p| p.lost).sum(),
        total_corrupt: parts.iter().map(|p| p.corrupt).sum(),
        router_dropped: stats.iter().map(|s| s.router.dropped()).sum(),
        participants: parts,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "{:>11} {:>8} {:>9} {:>9} {:>6} {:>5} {:>7} {:>7} {:>9} {:>9}",
            "participant", "sent", "received", "expected", "lost", "dup", "reorder", "corrupt", "p50 µs", "p99 µs"
        );
        for p in &result.participants {
            println!(
                "{:>11} {:>8} {:>9} {:>9} {:>6} {:>5} {:>7} {:>7} {:>9} {:>9}",
                p.participant,
                p.sent,
                p.received,
                p.expected,
                p.lost,
                p.duplicates,
                p.reordered,
                p.corrupt,
                p.p50_latency_us,
                p.p99_latency_us
            );
        }
        println!(
            "egress {:.0} packets/s, ingress {:.0} packets/s, latency p50 {} µs p99 {} µs, lost {}, corrupt {}, router drops {}",
            result.egress_pps,
            result.ingress_pps,
            result.p50_latency_us,
            result.p99_latency_us,
            result.total_lost,
            result.total_corrupt,
            result.router_dropped
        );
    }
    if let Some(s) = server {
        s.stop();
    }
    anyhow::ensure!(result.total_lost == 0 && result.total_corrupt == 0, "packets were lost or corrupted");
    Ok(())
}

/// A signed publisher token for participant `pid` of `call`.
pub(crate) fn publisher_token(
    key: &token::SigningKey,
    call: CallId,
    pid: u64,
    expires_at_ms: u64,
) -> [u8; token::TOKEN_LEN] {
    let claims = Claims { call_id: call, participant_id: ParticipantId(pid), role: Role::Publisher, expires_at_ms };
    token::sign(key, &claims)
}

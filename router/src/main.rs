//! `corecast-router`: the UDP media router.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use corecast_core::RouterConfig;
use corecast_proto::token;
use corecast_router::config::FileConfig;
use corecast_router::server::{RouterServer, ServerConfig};

/// corecast media router: admits clients with a join token and forwards each
/// participant's RTP and RTCP to the rest of its call.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "CORECAST_ROUTER_CONFIG")]
    config: Option<PathBuf>,
    /// Worker 0's UDP address; worker i listens on port + i.
    #[arg(long, env = "CORECAST_ROUTER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Number of workers (one pinned thread per core).
    #[arg(long, env = "CORECAST_ROUTER_WORKERS")]
    workers: Option<usize>,
    /// Pin worker i to CPU i (or to the configured `cpus`).
    #[arg(long, env = "CORECAST_ROUTER_PIN")]
    pin: bool,
    /// Socket backend: auto, basic, mmsg or uring.
    #[arg(long, env = "CORECAST_BACKEND")]
    backend: Option<String>,
    /// Verifying key of the calls service (64 hex digits). Default: the
    /// development key (never use it in production).
    #[arg(long, env = "CORECAST_ROUTER_PUBLIC_KEY")]
    public_key_hex: Option<String>,
    /// Silence timeout in milliseconds.
    #[arg(long, env = "CORECAST_ROUTER_SILENCE_TIMEOUT_MS")]
    silence_timeout_ms: Option<u64>,
    /// Print counters every this many seconds (0: never).
    #[arg(long, default_value_t = 10)]
    stats_interval: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let key_hex = args.public_key_hex.clone().or(file.public_key_hex.clone());
    let public_key = match key_hex {
        Some(h) => token::verifying_key_from_hex(&h).context("public key must be 64 hex digits")?,
        None => {
            tracing::warn!("no public key configured: accepting tokens signed with the DEVELOPMENT key");
            token::dev_signing_key().verifying_key()
        }
    };
    let workers = args.workers.or(file.workers).unwrap_or(1);
    let cpus = match (&file.cpus, args.pin) {
        (Some(c), _) => c.clone(),
        (None, true) => (0..workers).collect(),
        (None, false) => Vec::new(),
    };
    let mut core = RouterConfig::default();
    if let Some(t) = args.silence_timeout_ms.map(Duration::from_millis).or(file.silence_timeout()) {
        core.silence_timeout = t;
    }
    if let Some(m) = file.max_participants_per_call {
        core.max_participants_per_call = m;
    }
    let cfg = ServerConfig {
        listen: args.listen.or(file.listen).unwrap_or_else(|| "0.0.0.0:40000".parse().expect("valid address")),
        advertise_ip: file.advertise_ip,
        workers,
        cpus,
        backend: args.backend.or(file.backend).unwrap_or_else(|| "auto".into()),
        core,
        public_key,
    };
    let server = RouterServer::start(cfg).context("starting the router")?;
    println!("corecast-router listening on {:?} (backend {})", server.addresses(), server.backend());
    loop {
        // Drain events to the log; the control-plane link forwards them too.
        let deadline = std::time::Instant::now() + Duration::from_secs(args.stats_interval.max(1));
        while let Ok(ev) = server.events().recv_deadline(deadline) {
            tracing::info!(worker = ev.worker, event = ?ev.event, "event");
        }
        if args.stats_interval > 0 {
            for (i, s) in server.stats().iter().enumerate() {
                tracing::info!(
                    worker = i,
                    calls = s.calls,
                    participants = s.participants,
                    rx = s.router.rx_datagrams,
                    forwarded = s.router.forwarded_rtp,
                    dropped = s.router.dropped(),
                    "counters"
                );
            }
        }
    }
}

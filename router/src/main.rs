//! `corecast-router`: the UDP media router.
#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use corecast_core::RouterConfig;
use corecast_proto::join_key::JoinSecret;
use corecast_router::config::{FileConfig, Secrets};
use corecast_router::server::{RouterServer, ServerConfig};
use corecast_router::{admin, link};

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
    /// Socket backend: auto, basic, mmsg, uring or xdp (AF_XDP; --listen on a NIC's IPv4 address, root).
    #[arg(long, env = "CORECAST_BACKEND")]
    backend: Option<String>,
    /// Verifying key of the calls service (64 hex digits: its `GET /v1/keys`).
    /// Required unless --insecure-dev-keys.
    #[arg(long, env = "CORECAST_ROUTER_PUBLIC_KEY")]
    public_key_hex: Option<String>,
    /// Use the PUBLIC development key and router secret when none is configured;
    /// every listen address must then be a loopback address. For local development.
    #[arg(long, env = "CORECAST_ROUTER_INSECURE_DEV_KEYS")]
    insecure_dev_keys: bool,
    /// Participants of one call on its owning worker before the call spreads
    /// to the other workers (default: the largest full mesh one core carries).
    #[arg(long, env = "CORECAST_ROUTER_MAX_RECEIVERS_PER_WORKER")]
    max_receivers_per_worker: Option<usize>,
    /// Answer receivers' NACKs from a per-producer buffer and NACK
    /// publishers' gaps once for all receivers (default true; false: NACKs
    /// go to the publisher, see bench/RESULTS.md for what the buffer costs).
    #[arg(long, env = "CORECAST_ROUTER_RETRANSMISSION")]
    retransmission: Option<bool>,
    /// Also admit native joins that send plain RTP (default: native media
    /// must be SRTP, keyed from the join key). For benchmarks of
    /// forwarding alone; never on a network others can see.
    #[arg(long, env = "CORECAST_ROUTER_PLAIN_NATIVE_MEDIA")]
    plain_native_media: bool,
    /// Silence timeout in milliseconds.
    #[arg(long, env = "CORECAST_ROUTER_SILENCE_TIMEOUT_MS")]
    silence_timeout_ms: Option<u64>,
    /// Admin HTTP API address (end calls, list calls, counters, /metrics).
    #[arg(long, env = "CORECAST_ROUTER_ADMIN")]
    admin_listen: Option<SocketAddr>,
    /// Base URL of the calls service: register there and report leaves/timeouts.
    #[arg(long, env = "CORECAST_CALLS_URL")]
    calls_url: Option<String>,
    /// This router's id at the calls service.
    #[arg(long, env = "CORECAST_ROUTER_ID")]
    router_id: Option<String>,
    /// The region this router serves: calls instances with the same `calls.region` place
    /// calls on it (default: none).
    #[arg(long, env = "CORECAST_ROUTER_REGION")]
    region: Option<String>,
    /// A reserve router: the calls service places calls on it only while the regular
    /// routers' load is past its `calls.reserve_threshold`.
    #[arg(long, env = "CORECAST_ROUTER_RESERVE")]
    reserve: bool,
    /// Secret shared with the calls service (admin API and registration).
    #[arg(long, env = "CORECAST_ROUTER_SECRET", hide_env_values = true, allow_hyphen_values = true)]
    router_secret: Option<String>,
    /// A file holding the router secret (e.g. the calls service's `data_dir/router-secret`).
    #[arg(long, env = "CORECAST_ROUTER_SECRET_FILE")]
    router_secret_file: Option<PathBuf>,
    /// Registration / heartbeat interval in milliseconds (default 500: calls declares a
    /// router dead after `router.dead_after_ms`, 1500 by default, and moves its calls).
    #[arg(long, env = "CORECAST_ROUTER_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
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
    let admin_listen = args.admin_listen.or(file.admin_listen);
    let calls_url = args.calls_url.clone().or(file.calls_url.clone());
    let listen = args.listen.or(file.listen).unwrap_or_else(|| "0.0.0.0:40000".parse().expect("valid address"));
    let secrets = Secrets::resolve(
        args.public_key_hex.as_deref().or(file.public_key_hex.as_deref()),
        args.router_secret.clone().or(file.router_secret.clone()),
        args.router_secret_file.as_deref().or(file.router_secret_file.as_deref()),
        args.insecure_dev_keys || file.insecure_dev_keys.unwrap_or(false),
        // Always: native joins are signed with keys derived from it.
        true,
    )?;
    secrets.check_listen(&[Some(listen), admin_listen].into_iter().flatten().collect::<Vec<_>>())?;
    let workers = args.workers.or(file.workers).unwrap_or(1);
    let cpus = match (&file.cpus, args.pin) {
        (Some(c), _) => c.clone(),
        (None, true) => (0..workers).collect(),
        (None, false) => Vec::new(),
    };
    let mut core = RouterConfig {
        join_secret: secrets.router_secret.as_deref().map(|s| JoinSecret::new(s.as_bytes())),
        ..RouterConfig::default()
    };
    if let Some(t) = args.silence_timeout_ms.map(Duration::from_millis).or(file.silence_timeout()) {
        core.silence_timeout = t;
    }
    if let Some(m) = file.max_participants_per_call {
        core.max_participants_per_call = m;
    }
    core.plain_native_media = args.plain_native_media || file.plain_native_media.unwrap_or(false);
    if core.plain_native_media {
        tracing::warn!("plain native media admitted (--plain-native-media): native legs may send unencrypted RTP");
    }
    if let Some(on) = args.retransmission.or(file.retransmission) {
        core.retransmission = on;
    }
    if let Some(n) = args.max_receivers_per_worker.or(file.max_receivers_per_worker) {
        core.max_receivers_per_worker = n.max(1);
    }
    if let Some(id) = file.audio_level_ext_id {
        core.audio_level_ext_id = id;
    }
    if let Some(n) = file.sd_audio_streams {
        core.sd_audio_streams = n;
    }
    let cfg = ServerConfig {
        listen,
        advertise_ip: file.advertise_ip,
        workers,
        cpus,
        backend: args.backend.or(file.backend).unwrap_or_else(|| "auto".into()),
        core,
        public_key: secrets.public_key,
        io: Default::default(),
    };
    let server = Arc::new(RouterServer::start(cfg).context("starting the router")?);
    println!("corecast-router listening on {:?} (backend {})", server.addresses(), server.backend());
    let secret = secrets.router_secret;
    let region = args.region.or(file.region).unwrap_or_default();
    let reserve = args.reserve || file.reserve.unwrap_or(false);
    let router_id = args.router_id.or(file.router_id).unwrap_or_else(|| format!("router-{}", server.addresses()[0]));
    let heartbeat = Duration::from_millis(args.heartbeat_ms.or(file.heartbeat_ms).unwrap_or(500).max(100));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    // Events: logged, and forwarded to the link when there is one.
    let events = server.events().clone();
    let has_link = calls_url.is_some();
    std::thread::Builder::new().name("corecast-events".into()).spawn(move || {
        while let Ok(ev) = events.recv() {
            tracing::info!(worker = ev.worker, event = ?ev.event, "event");
            if has_link && ev_tx.send(ev).is_err() {
                break;
            }
        }
    })?;
    rt.block_on(async move {
        let mut admin_url = String::new();
        if let Some(addr) = admin_listen {
            let listener = tokio::net::TcpListener::bind(addr).await.context("binding the admin API")?;
            let local = listener.local_addr()?;
            admin_url = format!("http://{local}");
            println!("admin API on {admin_url}");
            let app = admin::routes(admin::AdminState { server: server.clone(), secret: secret.clone() });
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "admin API stopped");
                }
            });
        }
        if let Some(url) = calls_url {
            let cfg = link::LinkConfig { calls_url: url, router_id, region, reserve, secret, admin_url, heartbeat };
            tokio::spawn(link::run(cfg, server.clone(), ev_rx));
        }
        let mut tick = tokio::time::interval(Duration::from_secs(args.stats_interval.max(1)));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if args.stats_interval == 0 {
                        continue;
                    }
                    let s = server.clone();
                    let stats = tokio::task::spawn_blocking(move || s.stats()).await.unwrap_or_default();
                    for (i, s) in stats.iter().enumerate() {
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
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("stopping");
                    server.shutdown();
                    return Ok::<(), anyhow::Error>(());
                }
            }
        }
    })
}

//! `corecast-codec`: the codec pool as a service.
//!
//! It watches a router's admin API for calls with SD receivers; for each such
//! call it asks the calls service for a mixer token
//! (`POST /v1/calls/{id}/mixer`, router secret) and mixes the call; when a
//! call has no SD receiver left (the router then also lets the mixer go) or
//! is gone, it stops. When the router stops answering (`--router-dead-ms`) it
//! stops mixing that router's calls: the calls service moves them (failover),
//! and the pool of the router they land on mixes them there. Worker threads can
//! be pinned away from the router's cores with `--cpus`.
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use corecast_codec::{CodecPool, MixRequest, MixerConfig, PoolConfig, PoolEvent};
use corecast_proto::join_key::JoinKey;
use corecast_proto::token::{self, CallId};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(version, about = "corecast codec pool: SD composites for the calls of a router")]
struct Args {
    /// The router's admin API (its `--admin-listen`), e.g. http://127.0.0.1:40100.
    #[arg(long, env = "CORECAST_ROUTER_ADMIN")]
    router_admin: String,
    /// The calls service, e.g. http://127.0.0.1:8082.
    #[arg(long, env = "CORECAST_CALLS_URL")]
    calls_url: String,
    /// Shared router secret (admin API and mixer tokens).
    #[arg(long, env = "CORECAST_ROUTER_SECRET", allow_hyphen_values = true)]
    router_secret: String,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// CPUs to pin workers to, e.g. `1` or `2,3` (away from the router's).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// How often to look at the router's calls, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// SVT-AV1 preset of the composite.
    #[arg(long, default_value_t = 12)]
    preset: u8,
    /// Composite bitrate, kbit/s (CBR).
    #[arg(long, default_value_t = 600)]
    bitrate_kbps: u32,
    /// Composite frame rate.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Milliseconds without an answer from the router's admin API after which the pool takes
    /// the router for dead and stops mixing its calls (the calls service moves them to another
    /// router, whose pool mixes them there).
    #[arg(long, default_value_t = 3000)]
    router_dead_ms: u64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<u64>,
    /// Serve `/healthz`, `/readyz` and `/metrics` (Prometheus) here, e.g. 127.0.0.1:40200.
    #[arg(long, env = "CORECAST_CODEC_LISTEN")]
    listen: Option<SocketAddr>,
}

/// Calls of the router with SD receivers (non-mixer participants asking for SD).
fn calls_wanting_sd(v: &Value) -> Vec<CallId> {
    let Some(calls) = v["calls"].as_array() else { return Vec::new() };
    calls
        .iter()
        .filter(|c| {
            c["details"].as_array().is_some_and(|d| d.iter().any(|p| p["role"] != "mixer" && p["quality"] == "sd"))
        })
        .filter_map(|c| CallId::parse(c["call_id"].as_str()?).ok())
        .collect()
}

fn mixer_grant(http: &reqwest::blocking::Client, a: &Args, call: &CallId) -> anyhow::Result<MixRequest> {
    let url = format!("{}/v1/calls/{call}/mixer", a.calls_url.trim_end_matches('/'));
    let r = http.post(url).bearer_auth(&a.router_secret).send()?.error_for_status()?;
    let v: Value = r.json()?;
    let router: SocketAddr = v["router"].as_str().context("no router")?.parse().context("router address")?;
    let tok = token::decode_text(v["token"].as_str().context("no token")?)?;
    let participant = v["participant_id"].as_u64().context("no participant id")?;
    let key = JoinKey::from_text(v["join_key"].as_str().context("no join key")?)?;
    Ok(MixRequest { call: *call, router, token: tok.to_vec(), key, participant })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let a = Args::parse();
    let mixer = MixerConfig { preset: a.preset, bitrate_kbps: a.bitrate_kbps, fps: a.fps, ..MixerConfig::default() };
    let pool = std::sync::Arc::new(CodecPool::start(PoolConfig {
        workers: a.workers,
        cpus: a.cpus.clone(),
        mixer,
        ..Default::default()
    })?);
    if let Some(addr) = a.listen {
        let bound = corecast_codec::admin::spawn(addr, pool.clone()).with_context(|| format!("listening on {addr}"))?;
        tracing::info!(%bound, "codec pool HTTP: /healthz, /readyz, /metrics");
    }
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(3)).build()?;
    let admin = format!("{}/v1/calls", a.router_admin.trim_end_matches('/'));
    let until = a.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    // Calls being mixed (or joining), with when we asked.
    let mut mixing: HashMap<CallId, Instant> = HashMap::new();
    // When the router's admin API last answered.
    let mut answered = Instant::now();
    tracing::info!(router_admin = %a.router_admin, calls = %a.calls_url, workers = a.workers, "codec pool running");
    while until.is_none_or(|u| Instant::now() < u) {
        while let Ok(e) = pool.events().try_recv() {
            match e {
                PoolEvent::Left { call } | PoolEvent::JoinFailed { call, .. } => {
                    mixing.remove(&call);
                }
                PoolEvent::Overload { call, skipped } => {
                    tracing::warn!(%call, skipped, "codec pool overloaded: composite frames skipped")
                }
                _ => {}
            }
        }
        match http.get(&admin).bearer_auth(&a.router_secret).send().and_then(|r| r.error_for_status()) {
            Ok(r) => {
                answered = Instant::now();
                let v: Value = r.json().unwrap_or(Value::Null);
                let wanted = calls_wanting_sd(&v);
                for call in &wanted {
                    if !mixing.contains_key(call) {
                        match mixer_grant(&http, &a, call) {
                            Ok(req) => {
                                tracing::info!(%call, router = %req.router, "SD demand: mixing");
                                mixing.insert(*call, Instant::now());
                                pool.mix(req);
                            }
                            Err(e) => tracing::warn!(%call, error = %e, "no mixer token"),
                        }
                    }
                }
                // A call with no SD receiver left (or gone): stop, after the join had time to settle.
                let stale: Vec<CallId> = mixing
                    .iter()
                    .filter(|(c, t)| !wanted.contains(c) && t.elapsed() > Duration::from_secs(2))
                    .map(|(c, _)| *c)
                    .collect();
                for call in stale {
                    tracing::info!(%call, "no SD demand: stopping");
                    pool.stop(call);
                    mixing.remove(&call);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "router admin API unreachable");
                if !mixing.is_empty() && answered.elapsed() >= Duration::from_millis(a.router_dead_ms) {
                    // Its router is gone: its calls are moved elsewhere; these mixers would
                    // only send into the void.
                    tracing::warn!(calls = mixing.len(), "router silent: stopping its calls' mixers");
                    for (call, _) in mixing.drain() {
                        pool.stop(call);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(a.poll_ms.max(50)));
    }
    // The HTTP thread holds the pool too: leave the calls now.
    pool.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_is_read_from_the_admin_listing() {
        let a = "9b2f1a3e-0000-4000-8000-000000000001";
        let b = "9b2f1a3e-0000-4000-8000-000000000002";
        let v = serde_json::json!({"calls": [
            {"call_id": a, "details": [{"role": "publisher", "quality": "hd"}, {"role": "publisher", "quality": "sd"}]},
            {"call_id": b, "details": [{"role": "publisher", "quality": "hd"}, {"role": "mixer", "quality": "sd"}]},
        ]});
        assert_eq!(calls_wanting_sd(&v), vec![CallId::parse(a).unwrap()]);
        assert!(calls_wanting_sd(&Value::Null).is_empty());
    }

    #[test]
    fn a_secret_may_begin_with_a_hyphen() {
        use clap::CommandFactory as _;
        Args::command().debug_assert();
        for argv in [
            ["x", "--router-admin", "http://a", "--calls-url", "http://c", "--router-secret", "-s3cret"].as_slice(),
            &["x", "--router-secret=-s3cret", "--router-admin", "http://a", "--calls-url", "http://c"],
        ] {
            let a = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(a.router_secret, "-s3cret");
            assert_eq!((a.router_admin.as_str(), a.calls_url.as_str()), ("http://a", "http://c"));
        }
    }
}

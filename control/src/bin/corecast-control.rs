//! `corecast-control`: auth and calls in one process (for `make run` and development).
//!
//! Prints `auth=http://ADDR calls=http://ADDR` on stdout once both listen.
#![deny(unsafe_code)]

use clap::Parser;

/// Both control services in one process, sharing one session store.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (see control/README.md); defaults (embedded stores) apply without it.
    #[arg(long, env = "CORECAST_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Auth listen address (overrides `auth.listen`).
    #[arg(long)]
    auth_listen: Option<String>,
    /// Calls listen address (overrides `calls.listen`).
    #[arg(long)]
    calls_listen: Option<String>,
    /// Use the PUBLIC development signing key and router secret when none is configured
    /// (`insecure_dev_keys = true`); listening on loopback addresses only.
    #[arg(long)]
    insecure_dev_keys: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    corecast_control::run::init_tracing();
    let args = Args::parse();
    let mut cfg = corecast_control::run::load_config(args.config.as_deref())?;
    if let Some(l) = args.auth_listen {
        cfg.auth.listen = l;
    }
    if let Some(l) = args.calls_listen {
        cfg.calls.listen = l;
    }
    cfg.insecure_dev_keys |= args.insecure_dev_keys;
    let a = tokio::net::TcpListener::bind(&cfg.auth.listen).await?;
    let c = tokio::net::TcpListener::bind(&cfg.calls.listen).await?;
    let running = corecast_control::run::start_both(&cfg, a, c).await?;
    println!("auth=http://{} calls=http://{}", running.auth_addr, running.calls_addr);
    corecast_control::run::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

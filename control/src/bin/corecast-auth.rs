//! `corecast-auth`: the auth service (register, login, logout, me).
#![deny(unsafe_code)]

use clap::Parser;

/// corecast auth service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (see control/README.md); defaults apply without it.
    #[arg(long, env = "CORECAST_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Listen address (overrides `auth.listen`).
    #[arg(long)]
    listen: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    corecast_control::run::init_tracing();
    let args = Args::parse();
    let mut cfg = corecast_control::run::load_config(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.auth.listen = l;
    }
    let sessions = corecast_control::run::session_store(&cfg)?;
    if cfg.stores.redis_url.is_none() {
        tracing::warn!("auth: no stores.redis_url; sessions are in memory and lost on restart");
    }
    let state = corecast_control::run::auth_state(&cfg, sessions).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.auth.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "auth listening");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        corecast_control::run::shutdown_signal().await;
        let _ = tx.send(true);
    });
    corecast_control::run::serve(listener, corecast_control::auth::router(state), cfg.http.clone(), rx).await?;
    Ok(())
}

//! `corecast-calls`: the calls service (start/end/join/leave, join tokens, router link);
//! `corecast-calls routers list|drain ID|undrain ID`: the operator's view of the router
//! registry through a running instance (see `corecast_control::router_cli`).
#![deny(unsafe_code)]

use clap::Parser;

/// corecast calls service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (see control/README.md); defaults apply without it.
    #[arg(long, env = "CORECAST_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Listen address (overrides `calls.listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Use the PUBLIC development signing key and router secret when none is configured
    /// (`insecure_dev_keys = true`); listening on loopback addresses only.
    #[arg(long)]
    insecure_dev_keys: bool,
    /// An operator command instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The router registry: list the routers, drain one (no new calls) or undrain it.
    Routers(corecast_control::router_cli::RoutersArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    corecast_control::run::init_tracing();
    let args = Args::parse();
    let mut cfg = corecast_control::run::load_config(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.calls.listen = l;
    }
    cfg.insecure_dev_keys |= args.insecure_dev_keys;
    if let Some(Command::Routers(r)) = args.command {
        print!("{}", corecast_control::router_cli::run(r, &cfg).await?);
        return Ok(());
    }
    let keys = corecast_control::keys::Keys::resolve(&cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.calls.listen).await?;
    keys.check_listen(listener.local_addr()?)?;
    let sessions = corecast_control::run::calls_session_store(&cfg)?;
    let state = corecast_control::run::calls_state_with(&cfg, sessions, keys)?;
    // Participants' names for `GET /v1/calls/{id}`: from PostgreSQL when configured (the
    // embedded user database belongs to the auth process).
    if cfg.stores.postgres_url.is_some() {
        state.set_users(corecast_control::run::user_store(&cfg).await?);
    }
    corecast_control::failover::spawn_sweeper(&state);
    tracing::info!(addr = %listener.local_addr()?, "calls listening");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        corecast_control::run::shutdown_signal().await;
        let _ = tx.send(true);
    });
    corecast_control::run::serve(listener, corecast_control::calls::router(state), cfg.http.clone(), rx).await?;
    Ok(())
}

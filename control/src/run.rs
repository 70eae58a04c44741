//! Building the services from a [`Config`] and serving them.
//!
//! `make run` and tests start both services in one process with [`start_both`]:
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let cfg = corecast_control::config::Config::default(); // embedded stores
//! let auth = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! let calls = tokio::net::TcpListener::bind("127.0.0.1:8082").await?;
//! let running = corecast_control::run::start_both(&cfg, auth, calls).await?;
//! println!("auth on {}, calls on {}", running.auth_addr, running.calls_addr);
//! running.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{self, AuthState};
use crate::calls::{self, CallsState};
use crate::config::Config;
use crate::geo::RegionTable;
pub use crate::http::serve;
use crate::keys::Keys;
use crate::routers::RouterRegistry;
use crate::stores::embedded::RedbUserStore;
use crate::stores::memory::{MemoryCallStore, MemoryFailureStore, MemorySessionStore};
use crate::stores::memory_routers::MemoryRouterStore;
use crate::stores::pg::PgUserStore;
use crate::stores::redis::RedisSessionStore;
use crate::stores::remote::RemoteSessionStore;
use crate::stores::tarantool::TarantoolCallStore;
use crate::stores::tarantool_routers::TarantoolRouterStore;
use crate::stores::{CallStore, FailureStore, RouterRef, RouterStore, SessionStore, UserStore};
use crate::tarantool::{Tarantool, TarantoolUrl};

/// The user store the config selects: PostgreSQL when `stores.postgres_url` is set, else
/// the embedded redb file `stores.data_dir/users.redb`.
pub async fn user_store(cfg: &Config) -> anyhow::Result<Arc<dyn UserStore>> {
    Ok(match &cfg.stores.postgres_url {
        Some(url) => Arc::new(PgUserStore::connect(url, cfg.stores.postgres_pool).await?),
        None => {
            let path = cfg.stores.data_dir.join("users.redb");
            tracing::info!(path = %path.display(), "users: embedded database");
            Arc::new(RedbUserStore::open(&path).with_context(|| format!("opening {}", path.display()))?)
        }
    })
}

/// The session store the config selects: Redis when `stores.redis_url` is set, else memory.
pub fn session_store(cfg: &Config) -> anyhow::Result<Arc<dyn SessionStore>> {
    Ok(match &cfg.stores.redis_url {
        Some(url) => Arc::new(RedisSessionStore::connect(url)?),
        None => Arc::new(MemorySessionStore::new()),
    })
}

/// The failed-login counter store: Redis when `stores.redis_url` is set (shared by all auth
/// instances), else memory (per process).
pub fn failure_store(cfg: &Config) -> anyhow::Result<Arc<dyn FailureStore>> {
    Ok(match &cfg.stores.redis_url {
        Some(url) => Arc::new(RedisSessionStore::connect(url)?),
        None => Arc::new(MemoryFailureStore::new()),
    })
}

/// The call store the config selects: Tarantool when `stores.tarantool_url` is set, else memory.
pub fn call_store(cfg: &Config) -> anyhow::Result<Arc<dyn CallStore>> {
    Ok(call_stores(cfg)?.0)
}

/// The call store and the router registry the config selects, over one backend (placing a
/// call writes both): Tarantool when `stores.tarantool_url` is set, else memory.
pub fn call_stores(cfg: &Config) -> anyhow::Result<(Arc<dyn CallStore>, Arc<dyn RouterStore>)> {
    Ok(match &cfg.stores.tarantool_url {
        Some(url) => {
            let tt = Tarantool::new(&TarantoolUrl::parse(url)?);
            (Arc::new(TarantoolCallStore::new(tt.clone())), Arc::new(TarantoolRouterStore::new(tt)))
        }
        None => {
            let calls = Arc::new(MemoryCallStore::new());
            (calls.clone(), Arc::new(MemoryRouterStore::new(calls)))
        }
    })
}

/// Auth state from config, with the given session store.
pub async fn auth_state(cfg: &Config, sessions: Arc<dyn SessionStore>) -> anyhow::Result<Arc<AuthState>> {
    auth_state_with(cfg, sessions, user_store(cfg).await?)
}

/// Auth state from config, with the given session and user stores.
pub fn auth_state_with(
    cfg: &Config,
    sessions: Arc<dyn SessionStore>,
    users: Arc<dyn UserStore>,
) -> anyhow::Result<Arc<AuthState>> {
    let failures = failure_store(cfg)?;
    Ok(AuthState::new(users, sessions, failures, cfg.auth.clone(), Duration::from_secs(cfg.sessions.ttl_secs)))
}

/// Calls state from config, with the given session store; the keys as [`Keys::resolve`]
/// chooses them (generated into `stores.data_dir` on first start).
pub fn calls_state(cfg: &Config, sessions: Arc<dyn SessionStore>) -> anyhow::Result<Arc<CallsState>> {
    calls_state_with(cfg, sessions, Keys::resolve(cfg)?)
}

/// Calls state from config, with the given session store and keys.
pub fn calls_state_with(cfg: &Config, sessions: Arc<dyn SessionStore>, keys: Keys) -> anyhow::Result<Arc<CallsState>> {
    let default =
        RouterRef { id: "default".into(), address: cfg.router.address.clone(), admin: cfg.router.admin.clone() };
    let (on, off) = (cfg.calls.reserve_threshold, cfg.calls.reserve_release);
    anyhow::ensure!(
        on.is_finite() && off.is_finite() && off <= on,
        "calls.reserve_release ({off}) must be a number not above calls.reserve_threshold ({on})"
    );
    let (calls, routers) = call_stores(cfg)?;
    let registry = RouterRegistry::with_ttl(routers, default, cfg.calls.region.clone(), cfg.router.dead_after())
        .with_reserve_thresholds(on, off);
    let regions = match &cfg.calls.regions_file {
        None => RegionTable::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("calls.regions_file {}: {e}", path.display()))?;
            let t =
                RegionTable::parse(&text).map_err(|e| anyhow::anyhow!("calls.regions_file {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), ranges = t.len(), "calls: regions table loaded");
            t
        }
    };
    let st = CallsState::new(
        calls,
        sessions,
        registry,
        keys.router_secret,
        keys.signing_key,
        cfg.calls.clone(),
        Duration::from_secs(cfg.sessions.ttl_secs),
    );
    st.set_regions(regions);
    Ok(st)
}

/// The session store for a calls service running in its own process: Redis if configured,
/// else the auth service over HTTP (`calls.auth_url`), else memory (nobody can log in).
pub fn calls_session_store(cfg: &Config) -> anyhow::Result<Arc<dyn SessionStore>> {
    if cfg.stores.redis_url.is_some() {
        return session_store(cfg);
    }
    if let Some(url) = &cfg.calls.auth_url {
        return Ok(Arc::new(RemoteSessionStore::new(url)?));
    }
    tracing::warn!("calls: neither stores.redis_url nor calls.auth_url is set; sessions are local to this process");
    session_store(cfg)
}

/// Both services running in this process.
#[derive(Debug)]
pub struct Running {
    /// Where auth listens.
    pub auth_addr: SocketAddr,
    /// Where calls listens.
    pub calls_addr: SocketAddr,
    /// Calls state (router registry etc.).
    pub calls: Arc<CallsState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    sweeper: JoinHandle<()>,
}

impl Running {
    /// Stops both services and waits for them.
    pub async fn shutdown(self) {
        self.sweeper.abort();
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts auth and calls in this process on the given listeners, sharing one session store.
/// The calls listener serves the auth service's user routes too (`/v1/register`, `/v1/login`,
/// `/v1/logout`, `/v1/me`), for the web app it serves.
///
/// Fails if the keys cannot be read or generated, or if a development key is in use and a
/// listener is not on a loopback address ([`Keys::check_listen`]).
pub async fn start_both(
    cfg: &Config,
    auth_listener: TcpListener,
    calls_listener: TcpListener,
) -> anyhow::Result<Running> {
    let keys = Keys::resolve(cfg)?;
    let auth_addr = auth_listener.local_addr()?;
    let calls_addr = calls_listener.local_addr()?;
    keys.check_listen(auth_addr)?;
    keys.check_listen(calls_addr)?;
    let sessions = session_store(cfg)?;
    let users = user_store(cfg).await?;
    let auth_state = auth_state_with(cfg, sessions.clone(), users.clone())?;
    let calls_state = calls_state_with(cfg, sessions, keys)?;
    calls_state.set_users(users);
    let sweeper = crate::failover::spawn_sweeper(&calls_state);
    let (stop, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(serve(auth_listener, auth::router(auth_state.clone()), cfg.http.clone(), rx.clone())),
        // The web app (served by calls) reaches auth on its own origin.
        tokio::spawn(serve(
            calls_listener,
            calls::router_with(calls_state.clone(), auth::user_routes(auth_state)),
            cfg.http.clone(),
            rx,
        )),
    ];
    tracing::info!(%auth_addr, %calls_addr, "control plane listening");
    Ok(Running { auth_addr, calls_addr, calls: calls_state, stop, tasks, sweeper })
}

/// Loads `--config` (optional) and the environment overrides.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let mut cfg = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    cfg.apply_env();
    Ok(cfg)
}

/// Logging for the binaries to stderr (`RUST_LOG`, default `info`); stdout stays for output.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

//! Configuration of both services (one TOML file; every key has a default).
//!
//! ```toml
//! insecure_dev_keys = false   # true: the PUBLIC dev key and router secret, loopback only
//!
//! [stores]
//! postgres_url = "postgres://corecast@127.0.0.1:5432/corecast"   # absent: embedded redb
//! redis_url = "redis://127.0.0.1:6379/"                            # absent: memory
//! tarantool_url = "tarantool://corecast:corecast@127.0.0.1:3301"   # absent: memory
//! data_dir = "./data"                                              # embedded user db, generated keys
//!
//! [auth]
//! listen = "127.0.0.1:8081"
//!
//! [calls]
//! listen = "127.0.0.1:8082"
//! signing_key_hex = "..."   # 64 hex digits; absent: data_dir/join-token-signing.key (generated)
//! region = ""               # new calls go to live routers registered with this region
//! regions_file = "/etc/corecast/regions.conf"   # optional: client address range -> region (nginx geo body)
//! trust_forwarded_for = false  # behind nginx: the client address is X-Forwarded-For's first
//! reserve_threshold = 0.8   # reserve routers take calls once the regular pool's load passes this
//! reserve_release = 0.6     # ...until it falls below this
//! cascade_threshold = 0.9   # joins go to another router, linked to the call's home, past this load
//!
//! [http]
//! header_read_timeout_ms = 10000   # a request head not complete by then: connection closed
//! body_read_timeout_ms = 30000     # a body not complete this long after its head: 400, closed
//!
//! [router]
//! address = "127.0.0.1:40000"
//! admin = "http://127.0.0.1:40100"
//! secret = "..."            # absent: data_dir/router-secret (generated)
//! ```
//!
//! See [`crate::keys`] for how the signing key and the router secret are chosen.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Use the public development signing key and router secret when none is configured
    /// (instead of generating them into `stores.data_dir`); the services then listen on
    /// loopback addresses only. For tests and local development.
    pub insecure_dev_keys: bool,
    /// Backing servers.
    pub stores: StoresConfig,
    /// Session settings (shared by both services).
    pub sessions: SessionsConfig,
    /// The auth service.
    pub auth: AuthConfig,
    /// The calls service.
    pub calls: CallsConfig,
    /// Router link.
    pub router: RouterConfig,
    /// HTTP serving (both services).
    pub http: HttpConfig,
}

/// HTTP serving, the same for both services.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A client gets this long (milliseconds) to send a whole request head (request line and
    /// headers), counted from its connection, or from the previous response on a kept-alive
    /// connection; then the connection is closed. A slow client that trickles its headers
    /// holds a connection no longer than this.
    pub header_read_timeout_ms: u64,
    /// A request body must have arrived this long (milliseconds) after its request head; a
    /// slower one fails the request (400) and closes the connection.
    pub body_read_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { header_read_timeout_ms: 10_000, body_read_timeout_ms: 30_000 }
    }
}

/// Which backend each store uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoresConfig {
    /// PostgreSQL URL for users; `None` selects the embedded redb file in `data_dir`.
    pub postgres_url: Option<String>,
    /// Redis URL for sessions; `None` selects memory (shared only in-process).
    pub redis_url: Option<String>,
    /// Tarantool URL for calls; `None` selects memory.
    pub tarantool_url: Option<String>,
    /// Directory of the embedded user database and of the generated signing key and router
    /// secret (see [`crate::keys`]).
    pub data_dir: PathBuf,
    /// PostgreSQL pool size.
    pub postgres_pool: usize,
}

impl Default for StoresConfig {
    fn default() -> Self {
        StoresConfig {
            postgres_url: None,
            redis_url: None,
            tarantool_url: None,
            data_dir: PathBuf::from("./data"),
            postgres_pool: 16,
        }
    }
}

/// Sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Idle lifetime of a session in seconds (renewed on every use).
    pub ttl_secs: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig { ttl_secs: 24 * 3600 }
    }
}

/// The auth service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Listen address.
    pub listen: String,
    /// Concurrent argon2 computations (0: number of CPUs).
    pub hash_workers: usize,
    /// How long a request may wait for an argon2 slot before getting 503.
    pub hash_wait_ms: u64,
    /// Maximum request body size in bytes.
    pub max_body_bytes: usize,
    /// Failed logins per login within `throttle_window_secs` before 429.
    pub max_failures_per_login: u32,
    /// Failed logins per client address within `throttle_window_secs` before 429.
    pub max_failures_per_ip: u32,
    /// Window of the failure counters, seconds.
    pub throttle_window_secs: u64,
    /// Use the first `X-Forwarded-For` address as the client address (behind nginx).
    pub trust_forwarded_for: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            listen: "127.0.0.1:8081".into(),
            hash_workers: 0,
            hash_wait_ms: 5000,
            max_body_bytes: 16 * 1024,
            max_failures_per_login: 5,
            max_failures_per_ip: 20,
            throttle_window_secs: 300,
            trust_forwarded_for: false,
        }
    }
}

/// The calls service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// Listen address.
    pub listen: String,
    /// Ed25519 seed (64 hex digits) for join tokens; `None`: generated into `stores.data_dir`
    /// (see [`crate::keys`]).
    pub signing_key_hex: Option<String>,
    /// Join-token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Participant cap per call.
    pub max_participants: u32,
    /// Base URL of the auth service, used to check sessions when no Redis is configured.
    pub auth_url: Option<String>,
    /// Maximum request body size in bytes.
    pub max_body_bytes: usize,
    /// `Access-Control-Allow-Origin` of the WHIP/WHEP endpoints (`None`: `*`).
    pub cors_allow_origin: Option<String>,
    /// Directory to serve the web app's files from (`index.html`, `app/*`); `None`: the copy
    /// compiled into the binary.
    pub web_dir: Option<PathBuf>,
    /// The region this instance serves: calls started through it are placed on the live
    /// routers registered with the same region (empty: routers that name none), unless the
    /// start names a region or [`Self::regions_file`] places its client elsewhere.
    pub region: String,
    /// A table of client address ranges to regions (the body of an nginx `geo` block, see
    /// [`crate::geo`]): a call starts in the region of the client that starts it when that
    /// region has a live router. `None`: every call starts in [`Self::region`].
    pub regions_file: Option<PathBuf>,
    /// Take the client's address from the first `X-Forwarded-For` entry (behind nginx,
    /// which sets it); otherwise the connection's peer address is the client's.
    pub trust_forwarded_for: bool,
    /// Reserve routers (`corecast-router --reserve`) take calls only once the regular pool's
    /// load (its least-loaded live router's: what the next call would get) passes this...
    pub reserve_threshold: f64,
    /// ...until it falls below this again (hysteresis; their calls go on).
    pub reserve_release: f64,
    /// After a call is moved off a dead or drained router, its participants have this long
    /// (milliseconds) to re-join on the new router; then those the new router does not hold
    /// are dropped from the call store.
    pub failover_grace_ms: u64,
    /// Cascading: a join goes to another router of the region (linked to the call's home
    /// router) when the home is draining or its load has reached this (see `cascade`).
    pub cascade_threshold: f64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            listen: "127.0.0.1:8082".into(),
            signing_key_hex: None,
            token_ttl_secs: 60,
            max_participants: 16,
            auth_url: None,
            max_body_bytes: 16 * 1024,
            cors_allow_origin: None,
            web_dir: None,
            region: String::new(),
            regions_file: None,
            trust_forwarded_for: false,
            reserve_threshold: 0.8,
            reserve_release: 0.6,
            failover_grace_ms: 4000,
            cascade_threshold: 0.9,
        }
    }
}

/// Router link.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Media address of the default router (used while no router is registered).
    pub address: String,
    /// Admin base URL of the default router.
    pub admin: String,
    /// Shared secret routers present as a bearer token; `None`: generated into
    /// `stores.data_dir` (see [`crate::keys`]).
    pub secret: Option<String>,
    /// A router silent for this long is dead (milliseconds, by the store's clock; default
    /// 1500, three of the routers' default 500 ms heartbeats): it is not chosen for new calls
    /// and its calls are moved to live routers (failover).
    pub dead_after_ms: Option<u64>,
    /// Deprecated: the routers' heartbeat interval in seconds; when set and `dead_after_ms`
    /// is not, a router is dead after 3× this.
    pub heartbeat_interval_secs: Option<u64>,
}

impl RouterConfig {
    /// How long a router may be silent before it is dead (see [`RouterConfig::dead_after_ms`]).
    pub fn dead_after(&self) -> std::time::Duration {
        let ms = match (self.dead_after_ms, self.heartbeat_interval_secs) {
            (Some(ms), _) => ms,
            (None, Some(s)) => s.max(1) * 3000,
            (None, None) => 1500,
        };
        std::time::Duration::from_millis(ms.max(100))
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            address: "127.0.0.1:40000".into(),
            admin: "http://127.0.0.1:40100".into(),
            secret: None,
            dead_after_ms: None,
            heartbeat_interval_secs: None,
        }
    }
}

/// The public development router secret (only with `insecure_dev_keys`).
pub use corecast_proto::token::DEV_ROUTER_SECRET;

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config {path}: {source}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies `CORECAST_POSTGRES_URL`, `CORECAST_REDIS_URL`, `CORECAST_TARANTOOL_URL`,
    /// `CORECAST_SIGNING_KEY_HEX`, `CORECAST_ROUTER_SECRET`, `CORECAST_WEB_DIR` (the web
    /// app's files from a directory: edit and reload) and `CORECAST_INSECURE_DEV_KEYS` (`1` or
    /// `true`) from the environment.
    pub fn apply_env(&mut self) {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = get("CORECAST_INSECURE_DEV_KEYS") {
            self.insecure_dev_keys = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = get("CORECAST_POSTGRES_URL") {
            self.stores.postgres_url = Some(v);
        }
        if let Some(v) = get("CORECAST_REDIS_URL") {
            self.stores.redis_url = Some(v);
        }
        if let Some(v) = get("CORECAST_TARANTOOL_URL") {
            self.stores.tarantool_url = Some(v);
        }
        if let Some(v) = get("CORECAST_SIGNING_KEY_HEX") {
            self.calls.signing_key_hex = Some(v);
        }
        if let Some(v) = get("CORECAST_ROUTER_SECRET") {
            self.router.secret = Some(v);
        }
        if let Some(v) = get("CORECAST_WEB_DIR") {
            self.calls.web_dir = Some(v.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parse() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.calls.token_ttl_secs, 60);
        assert_eq!(c.router.dead_after(), std::time::Duration::from_millis(1500));
        let mut r = c.router.clone();
        r.heartbeat_interval_secs = Some(5);
        assert_eq!(r.dead_after(), std::time::Duration::from_secs(15), "the old setting: 3 intervals");
        r.dead_after_ms = Some(2500);
        assert_eq!(r.dead_after(), std::time::Duration::from_millis(2500), "dead_after_ms wins");
        let c = Config::parse("[stores]\nredis_url = \"redis://x/\"\n[calls]\nmax_participants = 3\n").unwrap();
        assert_eq!(c.stores.redis_url.as_deref(), Some("redis://x/"));
        assert_eq!(c.calls.max_participants, 3);
        assert!(Config::parse("[calls]\nbogus = 1\n").is_err());
        assert!(!c.insecure_dev_keys);
        assert!(Config::parse("insecure_dev_keys = true\n[calls]\n").unwrap().insecure_dev_keys);
    }

    #[test]
    fn example_file_parses() {
        let c = Config::parse(include_str!("../corecast.example.toml")).unwrap();
        assert!(c.stores.postgres_url.is_some());
        assert!(c.auth.trust_forwarded_for);
    }
}

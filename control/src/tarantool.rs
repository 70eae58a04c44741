//! A thin Tarantool client for the calls store, on top of `rusty_tarantool` (which speaks
//! the IPROTO dialect of Tarantool 2.6; `tarantool-rs` 0.0.10 does not).
//!
//! Only `CALL` of the stored procedures in `control/tarantool/init.lua` is used. Every call
//! has a deadline: the client gives up after [`crate::stores::OP_TIMEOUT`] and the mutating
//! procedures refuse requests that reach the server after their deadline, so a request
//! queued during an outage is never applied late.

use std::time::Duration;

use rusty_tarantool::tarantool::{Client, ClientConfig};
use serde::Serialize;

use crate::stores::StoreError;

/// Arguments of a procedure taking none (an empty MsgPack array; `()` would encode as nil).
pub const NO_ARGS: [u8; 0] = [];

/// Parsed `tarantool://user:password@host:port` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct TarantoolUrl {
    /// `host:port`.
    pub addr: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for TarantoolUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarantoolUrl").field("addr", &self.addr).field("user", &self.user).finish_non_exhaustive()
    }
}

impl TarantoolUrl {
    /// Parses `tarantool://user:password@host:port` (user/password default to `guest`/empty).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Internal("tarantool url must be tarantool://user:password@host:port".into());
        let rest = url.strip_prefix("tarantool://").ok_or_else(bad)?;
        let (cred, addr) = match rest.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, rest),
        };
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || !addr.contains(':') {
            return Err(bad());
        }
        let (user, password) = match cred {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (u.to_owned(), p.to_owned()),
                None => (c.to_owned(), String::new()),
            },
            None => ("guest".to_owned(), String::new()),
        };
        Ok(TarantoolUrl { addr: addr.to_owned(), user, password })
    }
}

/// A reconnecting Tarantool connection.
///
/// The underlying connection task is spawned on the Tokio runtime of the first request.
#[derive(Clone)]
pub struct Tarantool {
    client: Client,
}

impl std::fmt::Debug for Tarantool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tarantool").finish_non_exhaustive()
    }
}

impl Tarantool {
    /// Creates the client (connects lazily, reconnects every 300 ms while the server is down).
    pub fn new(url: &TarantoolUrl) -> Self {
        let client = ClientConfig::new(url.addr.clone(), url.user.clone(), url.password.clone())
            .set_timeout_time_ms(crate::stores::OP_TIMEOUT.as_millis() as u64)
            .set_reconnect_time_ms(300)
            .build();
        Tarantool { client }
    }

    /// Calls a stored procedure and decodes its return values as a JSON array.
    pub async fn call<A: Serialize>(&self, func: &str, args: &A) -> Result<Vec<serde_json::Value>, StoreError> {
        let fut = self.client.call_fn(func, args);
        let resp = match tokio::time::timeout(crate::stores::OP_TIMEOUT, fut).await {
            Err(_) => return Err(StoreError::Unavailable(format!("tarantool {func}: timed out"))),
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("tarantool {func}: {e}"))),
            Ok(Ok(r)) => r,
        };
        resp.decode::<Vec<serde_json::Value>>()
            .map_err(|e| StoreError::Internal(format!("tarantool {func}: undecodable reply: {e}")))
    }

    /// Waits until the server answers `corecast_ping` (for scripts and tests).
    pub async fn wait_ready(&self, max: Duration) -> Result<(), StoreError> {
        let start = tokio::time::Instant::now();
        loop {
            match self.call("corecast_ping", &NO_ARGS).await {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() >= max => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = TarantoolUrl::parse("tarantool://corecast:secret@127.0.0.1:3301").unwrap();
        assert_eq!(u.addr, "127.0.0.1:3301");
        assert_eq!(u.user, "corecast");
        assert_eq!(u.password, "secret");
        let g = TarantoolUrl::parse("tarantool://localhost:3301/").unwrap();
        assert_eq!((g.user.as_str(), g.addr.as_str()), ("guest", "localhost:3301"));
        assert!(TarantoolUrl::parse("http://x:1").is_err());
        assert!(TarantoolUrl::parse("tarantool://nohost").is_err());
        assert!(!format!("{u:?}").contains("secret"));
    }
}

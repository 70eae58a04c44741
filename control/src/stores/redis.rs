//! Redis session store: `SET corecast:session:<sha256(token)> <user id> EX <ttl>`, renewed
//! with `GETEX ... EX <ttl>` on every use (sliding expiry). Keys hold the token's SHA-256, so
//! a Redis dump or `MONITOR` does not reveal usable tokens.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{with_timeout, FailureStore, SessionStore, StoreError};

const PREFIX: &str = "corecast:session:";
const FAIL_PREFIX: &str = "corecast:fail:";

/// Sessions (and failed-login counters, keys `corecast:fail:*`) in Redis through a
/// reconnecting connection manager.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore").finish_non_exhaustive()
    }
}

fn key(token: &str) -> String {
    use sha2::Digest as _;
    format!("{PREFIX}{}", hex::encode(sha2::Sha256::digest(token.as_bytes())))
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisSessionStore {
    /// Creates the store; connects lazily and reconnects by itself.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Internal(format!("bad redis url: {e}")))?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, cfg).map_err(unavailable)?;
        Ok(RedisSessionStore { conn })
    }

    /// Deletes all session keys (tests only).
    pub async fn clear_for_tests(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{PREFIX}*")).query_async(&mut c).await.map_err(unavailable)?;
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut c).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn put(&self, token: &str, user_id: i32, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        with_timeout("redis set", async move {
            let _: () = redis::cmd("SET")
                .arg(key(token))
                .arg(user_id)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn touch(&self, token: &str, ttl: Duration) -> Result<Option<i32>, StoreError> {
        let mut c = self.conn.clone();
        with_timeout("redis getex", async move {
            let v: Option<i32> = redis::cmd("GETEX")
                .arg(key(token))
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(v)
        })
        .await
    }

    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        with_timeout("redis del", async move {
            let _: () = redis::cmd("DEL").arg(key(token)).query_async(&mut c).await.map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl FailureStore for RedisSessionStore {
    async fn bump(&self, key: &str, window: Duration) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let k = format!("{FAIL_PREFIX}{key}");
        let ms = window.as_millis().max(1) as u64;
        with_timeout("redis incr", async move {
            // INCR and start the window if none runs, in one MULTI/EXEC.
            let _: (i64, i64) = redis::pipe()
                .atomic()
                .cmd("INCR")
                .arg(&k)
                .cmd("PEXPIRE")
                .arg(&k)
                .arg(ms)
                .arg("NX")
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn count(&self, key: &str) -> Result<Option<(u32, Duration)>, StoreError> {
        let mut c = self.conn.clone();
        let k = format!("{FAIL_PREFIX}{key}");
        with_timeout("redis get", async move {
            let (n, pttl): (Option<u32>, i64) = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(&k)
                .cmd("PTTL")
                .arg(&k)
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(match (n, u64::try_from(pttl)) {
                (Some(n), Ok(ms)) if ms > 0 => Some((n, Duration::from_millis(ms))),
                _ => None,
            })
        })
        .await
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let k = format!("{FAIL_PREFIX}{key}");
        with_timeout("redis del", async move {
            let _: () = redis::cmd("DEL").arg(k).query_async(&mut c).await.map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

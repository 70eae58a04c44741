//! A read-only session store that asks the auth service (`GET /v1/me`).
//!
//! Used by a calls service deployed without Redis but with `auth_url` configured; the
//! normal deployment shares the Redis session store instead (one round trip less).

use std::time::Duration;

use async_trait::async_trait;

use super::{SessionStore, StoreError};

/// Validates sessions by calling `GET {auth}/v1/me`.
#[derive(Debug, Clone)]
pub struct RemoteSessionStore {
    http: reqwest::Client,
    me_url: String,
}

impl RemoteSessionStore {
    /// `auth_url` is the auth service's base URL, e.g. `http://127.0.0.1:8081`.
    pub fn new(auth_url: &str) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| StoreError::Internal(format!("http client: {e}")))?;
        Ok(RemoteSessionStore { http, me_url: format!("{}/v1/me", auth_url.trim_end_matches('/')) })
    }
}

#[derive(serde::Deserialize)]
struct Me {
    id: i32,
}

#[async_trait]
impl SessionStore for RemoteSessionStore {
    async fn put(&self, _token: &str, _user_id: i32, _ttl: Duration) -> Result<(), StoreError> {
        Err(StoreError::Internal("remote session store is read-only".into()))
    }

    async fn touch(&self, token: &str, _ttl: Duration) -> Result<Option<i32>, StoreError> {
        let resp = self
            .http
            .get(&self.me_url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(format!("auth service: {e}")))?;
        match resp.status().as_u16() {
            200 => {
                let me: Me = resp.json().await.map_err(|e| StoreError::Internal(format!("auth service: {e}")))?;
                Ok(Some(me.id))
            }
            401 => Ok(None),
            s => Err(StoreError::Unavailable(format!("auth service answered {s}"))),
        }
    }

    async fn delete(&self, _token: &str) -> Result<(), StoreError> {
        Err(StoreError::Internal("remote session store is read-only".into()))
    }
}

//! `GET /healthz` and `GET /readyz` of both services.
//!
//! `/healthz` says the process answers (liveness: restart it if not). `/readyz` says it can
//! serve: every store it needs answered a cheap read within [`PROBE_TIMEOUT`] (a user by id,
//! a session that does not exist, a call that does not exist), so a load balancer sends it no
//! traffic while PostgreSQL, Redis, Tarantool or the auth service is down. `200 {"ready":
//! true}` or `503 {"ready": false, "failing": ["sessions", ...]}`.

use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::stores::StoreError;

/// How long one store may take to answer a readiness probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A session token no session can have (real ones are 256-bit random): touching it reads
/// the session store and finds nothing.
pub const PROBE_TOKEN: &str = "corecast-readiness-probe";

/// Liveness.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Runs one store's probe: `None` when it answered in time, else the store's name.
pub async fn probe<T, E>(store: &'static str, fut: impl Future<Output = Result<T, E>>) -> Option<&'static str>
where
    E: Into<ProbeError>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            let ProbeError(why) = e.into();
            tracing::warn!(store, error = %why, "readiness probe failed");
            Some(store)
        }
        Err(_) => {
            tracing::warn!(store, "readiness probe timed out");
            Some(store)
        }
    }
}

/// Why a probe failed (any store error).
#[derive(Debug)]
pub struct ProbeError(String);

impl From<StoreError> for ProbeError {
    fn from(e: StoreError) -> Self {
        ProbeError(e.to_string())
    }
}

impl From<crate::stores::CallError> for ProbeError {
    fn from(e: crate::stores::CallError) -> Self {
        ProbeError(e.to_string())
    }
}

/// The `/readyz` answer from the probes' results.
pub fn readiness(results: &[Option<&'static str>]) -> Response {
    let failing: Vec<&str> = results.iter().flatten().copied().collect();
    if failing.is_empty() {
        Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "ready": false, "failing": failing })))
            .into_response()
    }
}

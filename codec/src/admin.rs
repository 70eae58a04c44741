//! The codec pool's HTTP endpoints (`corecast-codec --listen`), for the operator and
//! Prometheus.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness: the process answers |
//! | `GET /readyz` | readiness: `200 {"ready": true, "workers"}` when every worker runs and answers (the pool can take a call), else 503 |
//! | `GET /metrics` | the workers' counters in the Prometheus text format ([`crate::metrics`]) |
//!
//! Nothing here changes the pool, so no route needs a secret (like the router's `/metrics`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;

use crate::pool::CodecPool;

/// The routes, over a running pool.
pub fn routes(pool: Arc<CodecPool>) -> axum::Router {
    let (ready, metrics) = (pool.clone(), pool);
    axum::Router::new()
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .route("/readyz", get(move || readyz(ready.clone())))
        .route("/metrics", get(move || scrape(metrics.clone())))
}

async fn readyz(pool: Arc<CodecPool>) -> Response {
    let all = pool.workers();
    match tokio::task::spawn_blocking(move || pool.worker_stats().len()).await {
        Ok(up) if up == all => Json(json!({ "ready": true, "workers": all })).into_response(),
        Ok(up) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "workers": all, "answering": up })))
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false }))).into_response(),
    }
}

async fn scrape(pool: Arc<CodecPool>) -> Response {
    match tokio::task::spawn_blocking(move || crate::metrics::render(pool.worker_stats())).await {
        Ok(text) => ([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics failed").into_response(),
    }
}

/// Serves [`routes`] on `addr` from a thread of its own (a one-thread runtime), so the
/// pool's blocking control loop is left alone; returns the bound address.
pub fn spawn(addr: SocketAddr, pool: Arc<CodecPool>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("corecast-codec-http".into()).spawn(move || {
        rt.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => {
                    if let Err(e) = axum::serve(l, routes(pool)).await {
                        tracing::error!(error = %e, "codec HTTP server stopped");
                    }
                }
                Err(e) => tracing::error!(error = %e, "codec HTTP listener"),
            }
        })
    })?;
    Ok(bound)
}

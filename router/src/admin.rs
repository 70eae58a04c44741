//! The router's admin HTTP API, for the calls service and the operator.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness |
//! | `GET /v1/calls` | `{"calls":[{"call_id", "participants":[id, ...], "details":[...]}]}` |
//! | `DELETE /v1/calls/{call_id}` | end a call: participants get CallEnded and are dropped at once |
//! | `DELETE /v1/calls/{call_id}/participants/{participant_id}` | remove one participant |
//! | `GET /v1/stats` | per-worker counters (JSON) |
//! | `GET /metrics` | the same in Prometheus text format |
//!
//! Every route but `/healthz` and `/metrics` needs `Authorization: Bearer <router secret>`
//! when a secret is configured. It runs on its own thread, never on a packet worker.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Json;
use corecast_core::Command;
use corecast_proto::token::{CallId, ParticipantId};
use serde_json::json;

use crate::server::RouterServer;

/// Shared state of the admin API.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The running router.
    pub server: Arc<RouterServer>,
    /// Bearer secret shared with the calls service (None: no check, for local development).
    pub secret: Option<String>,
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let Some(secret) = &state.secret else { return true };
    let got = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the secret must not leak through timing.
    got.is_some_and(|g| {
        g.len() == secret.len() && g.bytes().zip(secret.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

/// The admin API's routes.
pub fn routes(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .route("/v1/calls", get(list_calls))
        .route("/v1/calls/{call_id}", delete(end_call))
        .route("/v1/calls/{call_id}/participants/{participant_id}", delete(remove_participant))
        .route("/v1/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Calls as JSON, the shape both the admin API and the re-sync use.
pub fn calls_json(server: &RouterServer) -> serde_json::Value {
    let calls: Vec<_> = server
        .snapshot()
        .into_iter()
        .map(|c| {
            json!({
                "call_id": c.call.to_string(),
                "participants": c.participants.iter().map(|p| p.participant.0).collect::<Vec<_>>(),
                "details": c.participants.iter().map(|p| json!({
                    "participant_id": p.participant.0,
                    "role": p.role.name(),
                    "source": p.source.to_string(),
                    "quality": if p.quality == corecast_proto::session::Quality::Sd { "sd" } else { "hd" },
                    "ssrcs": p.ssrcs.iter().map(|s| s.0).collect::<Vec<_>>(),
                    "packets_received": p.packets_received,
                    "packets_lost": p.packets_lost,
                    "bitrate_bps": p.bitrate_bps,
                    "reported_loss_fraction": p.reported_loss_fraction,
                    "estimate_bps": p.estimate_bps,
                    "loudness": p.loudness,
                    "sd_audible": p.sd_audible,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "calls": calls })
}

async fn list_calls(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong router secret");
    }
    let server = s.server.clone();
    match tokio::task::spawn_blocking(move || calls_json(&server)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "snapshot failed"),
    }
}

async fn end_call(State(s): State<AdminState>, headers: HeaderMap, Path(call_id): Path<String>) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong router secret");
    }
    let Ok(call) = CallId::parse(&call_id) else {
        return error(StatusCode::BAD_REQUEST, "call_id is not a UUID");
    };
    s.server.end_call(call);
    (StatusCode::NO_CONTENT, ()).into_response()
}

async fn remove_participant(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((call_id, participant_id)): Path<(String, u64)>,
) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong router secret");
    }
    let Ok(call) = CallId::parse(&call_id) else {
        return error(StatusCode::BAD_REQUEST, "call_id is not a UUID");
    };
    s.server.command(Command::RemoveParticipant(call, ParticipantId(participant_id)));
    (StatusCode::NO_CONTENT, ()).into_response()
}

fn stats_json(server: &RouterServer) -> serde_json::Value {
    let workers: Vec<_> = server
        .stats()
        .iter()
        .map(|w| {
            let r = &w.router;
            json!({
                "calls": w.calls, "participants": w.participants, "batches": w.batches,
                "rx_datagrams": r.rx_datagrams, "rx_bytes": r.rx_bytes, "tx_datagrams": r.tx_datagrams,
                "forwarded_rtp": r.forwarded_rtp, "forwarded_rtcp": r.forwarded_rtcp,
                "joins": r.joins, "joins_refused": r.joins_refused, "joins_redirected": r.joins_redirected,
                "leaves": r.leaves, "timeouts": r.timeouts, "keyframe_requests": r.keyframe_requests, "nacks": r.nacks,
                "sd_audio_withheld": r.sd_audio_withheld,
                "dropped": {
                    "malformed": r.dropped_malformed, "unadmitted": r.dropped_unadmitted,
                    "bad_token": r.dropped_bad_token, "ssrc_not_owned": r.dropped_ssrc_not_owned,
                    "not_publisher": r.dropped_not_publisher, "keyframe_throttled": r.dropped_keyframe_throttled,
                    "rtcp_unroutable": r.dropped_rtcp_unroutable,
                },
                "io": {
                    "recv_datagrams": w.io.recv_datagrams, "recv_calls": w.io.recv_calls,
                    "sent_datagrams": w.io.sent_datagrams, "send_calls": w.io.send_calls,
                    "gso_sends": w.io.gso_sends, "gso_fallbacks": w.io.gso_fallbacks,
                    "send_errors": w.io.send_errors, "recv_drops": w.io.recv_drops,
                },
            })
        })
        .collect();
    json!({ "backend": server.backend(), "addresses": server.addresses(), "workers": workers })
}

async fn stats(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong router secret");
    }
    let server = s.server.clone();
    match tokio::task::spawn_blocking(move || stats_json(&server)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "stats failed"),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let server = s.server.clone();
    let text = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        for (i, w) in server.stats().iter().enumerate() {
            let r = &w.router;
            for (name, v) in [
                ("corecast_calls", w.calls as u64),
                ("corecast_participants", w.participants as u64),
                ("corecast_rx_datagrams_total", r.rx_datagrams),
                ("corecast_forwarded_rtp_total", r.forwarded_rtp),
                ("corecast_forwarded_rtcp_total", r.forwarded_rtcp),
                ("corecast_dropped_total", r.dropped()),
                ("corecast_joins_total", r.joins),
                ("corecast_timeouts_total", r.timeouts),
                ("corecast_gso_sends_total", w.io.gso_sends),
                ("corecast_send_errors_total", w.io.send_errors),
            ] {
                out.push_str(&format!("{name}{{worker=\"{i}\"}} {v}\n"));
            }
        }
        out
    })
    .await
    .unwrap_or_default();
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

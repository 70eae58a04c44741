//! The router's admin HTTP API, for the calls service and the operator.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness: the admin API answers |
//! | `GET /readyz` | readiness: `200 {"ready": true, "workers"}` when every worker runs and answers, else 503 |
//! | `GET /v1/calls` | `{"calls":[{"call_id", "participants":[id, ...], "details":[...]}]}` |
//! | `DELETE /v1/calls/{call_id}` | end a call: participants get CallEnded and are dropped at once |
//! | `DELETE /v1/calls/{call_id}/participants/{participant_id}` | remove one participant |
//! | `POST /v1/calls/{call_id}/webrtc` | open a WebRTC leg (WHIP/WHEP, for the calls service): `{"participant_id", "role": "publisher"\|"subscriber", "subscribe": null\|{"participant_id"}\|"composite", "offer": "<sdp>", "expires_ms", "max_fps"?: 1..=60 (subscribers: frame-rate cap by temporal layer), "max_height"?: 16..=4320 (subscribers: the best simulcast layer at most this high), "last_n"?: 1..=255 (subscribers: video only while its publisher is among the call's N most active speakers)}` → `201 {"answer", "session"}`; 400 malformed (also `max_fps` or `max_height` out of range or on a publisher), 422 unsupported, 404 no such call, 409 call full (errors `{"error": msg}`) |
//! | `PATCH /v1/calls/{call_id}/webrtc/{session}` | trickle ICE / ICE restart: `{"fragment": "<sdpfrag>"}` → `204`, or `200 {"fragment"}` with the router's new credentials on an ICE restart; or a subscriber leg's new preferences while it plays: `{"preferences": {"max_fps"?, "max_height"?, "last_n"?}}` (ranges as at opening, 0 lifts one, absent keeps it) → `204`; 400, 404 |
//! | `GET /v1/calls/{call_id}/pipe`, `POST /v1/calls/{call_id}/pipes`, `DELETE /v1/calls/{call_id}/pipes/{peer}` | cascading: links between routers ([`crate::pipes_admin`]) |
//! | `GET /v1/stats` | per-worker counters (JSON; `cascade`: links to other routers and their counters per peer) |
//! | `GET /metrics` | the same in Prometheus text format, with `# HELP` and `# TYPE` ([`crate::metrics`]) |
//!
//! Every route but `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <router secret>`
//! when a secret is configured. It runs on its own thread, never on a packet worker.

use corecast_proto::session::MAX_HEIGHT_RANGE;
use corecast_proto::temporal::MAX_FPS;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Json;
use corecast_core::{Command, LegPreferences};
use corecast_proto::token::{CallId, ParticipantId, Role};
use serde::Deserialize;
use serde_json::json;

use crate::server::RouterServer;
use crate::webrtc::{Subscribe, WebRtcOffer, WebRtcRefusal};

/// Shared state of the admin API.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The running router.
    pub server: Arc<RouterServer>,
    /// Bearer secret shared with the calls service (None: no check, for local development).
    pub secret: Option<String>,
}

pub(crate) fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

pub(crate) fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
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
        .route("/readyz", get(readyz))
        .route("/v1/calls", get(list_calls))
        .route("/v1/calls/{call_id}", delete(end_call))
        .route("/v1/calls/{call_id}/participants/{participant_id}", delete(remove_participant))
        .route("/v1/calls/{call_id}/webrtc", post(open_webrtc))
        .route("/v1/calls/{call_id}/webrtc/{session}", patch(patch_webrtc))
        .route("/v1/stats", get(stats))
        .route("/metrics", get(metrics))
        .merge(crate::pipes_admin::routes())
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
                "links": c.links.iter().map(|(peer, uplink)| json!({ "peer": peer.to_string(), "uplink": uplink })).collect::<Vec<_>>(),
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
                    "twcc_loss_permille": p.twcc_loss_permille.map(|(last, recent)| serde_json::json!({ "last": last, "recent": recent })),
                    "rtt_ms": p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    "loudness": p.loudness,
                    "sd_audible": p.sd_audible,
                    "max_fps": p.max_fps,
                    "max_height": p.max_height,
                    "last_n": p.last_n,
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

/// `POST /v1/calls/{call_id}/webrtc` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenWebRtc {
    participant_id: u64,
    role: String,
    #[serde(default)]
    subscribe: Option<serde_json::Value>,
    offer: String,
    expires_ms: u64,
    #[serde(default)]
    max_fps: Option<serde_json::Value>,
    #[serde(default)]
    max_height: Option<serde_json::Value>,
    #[serde(default)]
    last_n: Option<serde_json::Value>,
}

/// `PATCH /v1/calls/{call_id}/webrtc/{session}` body: an ICE fragment, or
/// new preferences of a subscriber leg.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchWebRtc {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    preferences: Option<Preferences>,
}

/// A subscriber leg's preferences, as its opening's: each absent (or null)
/// is kept, 0 lifts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Preferences {
    #[serde(default)]
    max_fps: Option<serde_json::Value>,
    #[serde(default)]
    max_height: Option<serde_json::Value>,
    #[serde(default)]
    last_n: Option<serde_json::Value>,
}

impl Preferences {
    /// Checked as a subscriber leg's opening checks them, 0 also taken (lifts).
    fn parse(&self) -> Result<LegPreferences, &'static str> {
        let zero = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(|v| v.as_u64() == Some(0));
        let sub = Role::Subscriber;
        Ok(LegPreferences {
            max_fps: if zero(&self.max_fps) { Some(0) } else { max_fps_of(sub, self.max_fps.as_ref())? },
            max_height: if zero(&self.max_height) { Some(0) } else { max_height_of(sub, self.max_height.as_ref())? },
            last_n: if zero(&self.last_n) { Some(0) } else { last_n_of(sub, self.last_n.as_ref())? },
        })
    }
}

fn refusal(r: &WebRtcRefusal) -> Response {
    match r {
        WebRtcRefusal::Malformed(m) => error(StatusCode::BAD_REQUEST, m),
        WebRtcRefusal::Unsupported(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
        WebRtcRefusal::NotFound => error(StatusCode::NOT_FOUND, "no such call or session"),
        WebRtcRefusal::CallFull => error(StatusCode::CONFLICT, "call full"),
    }
}

fn json_rejection(r: &JsonRejection) -> Response {
    error(StatusCode::BAD_REQUEST, &r.body_text())
}

/// What a leg with `role` receives, from the request's `subscribe`; a
/// publisher receives nothing, a subscriber one participant or the composite.
fn subscribe_of(role: Role, v: Option<&serde_json::Value>) -> Result<Subscribe, &'static str> {
    let sub = match v {
        None | Some(serde_json::Value::Null) => Subscribe::Nothing,
        Some(serde_json::Value::String(s)) if s == "composite" => Subscribe::Composite,
        Some(serde_json::Value::Object(o)) if o.len() == 1 => match o.get("participant_id").and_then(|p| p.as_u64()) {
            Some(p) => Subscribe::Participant(ParticipantId(p)),
            None => return Err("subscribe must be null, {\"participant_id\": <id>} or \"composite\""),
        },
        Some(_) => return Err("subscribe must be null, {\"participant_id\": <id>} or \"composite\""),
    };
    match (role, sub) {
        (Role::Publisher, Subscribe::Nothing) => Ok(sub),
        (Role::Publisher, _) => Err("a publisher leg subscribes to nothing"),
        (_, Subscribe::Nothing) => Err("a subscriber leg needs subscribe"),
        _ => Ok(sub),
    }
}

/// A leg's frame-rate cap, from the request's `max_fps`: an integer
/// 1..=60, for a subscriber leg only (absent or null: no cap).
fn max_fps_of(role: Role, v: Option<&serde_json::Value>) -> Result<Option<u8>, &'static str> {
    let range = 1..=u64::from(MAX_FPS);
    let fps = subscriber_limit(
        role,
        v,
        range,
        "max_fps must be an integer from 1 to 60",
        "max_fps is for subscriber legs only (a publisher receives nothing)",
    )?;
    Ok(fps.and_then(|f| u8::try_from(f).ok()))
}

/// A leg's requested size, from the request's `max_height`: an integer
/// 16..=4320 (pixels), for a subscriber leg only (absent or null: none).
fn max_height_of(role: Role, v: Option<&serde_json::Value>) -> Result<Option<u16>, &'static str> {
    let range = u64::from(*MAX_HEIGHT_RANGE.start())..=u64::from(*MAX_HEIGHT_RANGE.end());
    let bad = "max_height must be an integer from 16 to 4320";
    let publisher = "max_height is for subscriber legs only (a publisher receives nothing)";
    let height = subscriber_limit(role, v, range, bad, publisher)?;
    Ok(height.and_then(|h| u16::try_from(h).ok()))
}

/// A leg's Last-N, from the request's `last_n`: an integer 1..=255, for a
/// subscriber leg only (absent or null: none).
fn last_n_of(role: Role, v: Option<&serde_json::Value>) -> Result<Option<u8>, &'static str> {
    let bad = "last_n must be an integer from 1 to 255";
    let publisher = "last_n is for subscriber legs only (a publisher receives nothing)";
    let n = subscriber_limit(role, v, 1..=255, bad, publisher)?;
    Ok(n.and_then(|n| u8::try_from(n).ok()))
}

/// A subscriber leg's limit from `v`: absent or null, or an integer in
/// `range` (else `bad`); on a publisher leg only absent or null (else
/// `on_publisher`).
fn subscriber_limit(
    role: Role,
    v: Option<&serde_json::Value>,
    range: std::ops::RangeInclusive<u64>,
    bad: &'static str,
    on_publisher: &'static str,
) -> Result<Option<u64>, &'static str> {
    let value = match v {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(v) => v.as_u64().filter(|x| range.contains(x)).ok_or(bad)?,
    };
    if role != Role::Subscriber {
        return Err(on_publisher);
    }
    Ok(Some(value))
}

/// What both WebRTC routes check first: the router secret, the call id, the JSON body.
fn webrtc_request<T>(
    s: &AdminState,
    headers: &HeaderMap,
    call_id: &str,
    body: Result<Json<T>, JsonRejection>,
) -> Result<(CallId, T), Box<Response>> {
    if !authorized(s, headers) {
        return Err(Box::new(error(StatusCode::UNAUTHORIZED, "missing or wrong router secret")));
    }
    let Ok(call) = CallId::parse(call_id) else {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "call_id is not a UUID")));
    };
    let req = body.map_err(|r| Box::new(json_rejection(&r)))?.0;
    Ok((call, req))
}

async fn open_webrtc(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    body: Result<Json<OpenWebRtc>, JsonRejection>,
) -> Response {
    let (call, req) = match webrtc_request(&s, &headers, &call_id, body) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let role = match req.role.as_str() {
        "publisher" => Role::Publisher,
        "subscriber" => Role::Subscriber,
        _ => return error(StatusCode::BAD_REQUEST, "role must be \"publisher\" or \"subscriber\""),
    };
    let subscribe = match subscribe_of(role, req.subscribe.as_ref()) {
        Ok(sub) => sub,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let max_fps = match max_fps_of(role, req.max_fps.as_ref()) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let max_height = match max_height_of(role, req.max_height.as_ref()) {
        Ok(h) => h,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let last_n = match last_n_of(role, req.last_n.as_ref()) {
        Ok(n) => n,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if req.participant_id == 0 {
        return error(StatusCode::BAD_REQUEST, "participant_id must not be 0");
    }
    let offer = WebRtcOffer {
        call,
        participant: ParticipantId(req.participant_id),
        role,
        subscribe,
        offer: req.offer,
        expires_unix_ms: req.expires_ms,
        max_fps,
        max_height,
        last_n,
    };
    let server = s.server.clone();
    match tokio::task::spawn_blocking(move || server.open_webrtc(offer)).await {
        Ok(Ok(a)) => (StatusCode::CREATED, Json(json!({ "answer": a.answer, "session": a.session }))).into_response(),
        Ok(Err(r)) => refusal(&r),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "opening the leg failed"),
    }
}

async fn patch_webrtc(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((call_id, session)): Path<(String, String)>,
    body: Result<Json<PatchWebRtc>, JsonRejection>,
) -> Response {
    let (call, req) = match webrtc_request(&s, &headers, &call_id, body) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let server = s.server.clone();
    let fragment = match (req.fragment, req.preferences) {
        (Some(f), None) => f,
        (None, Some(p)) => {
            let prefs = match p.parse() {
                Ok(prefs) => prefs,
                Err(m) => return error(StatusCode::BAD_REQUEST, m),
            };
            return match tokio::task::spawn_blocking(move || server.set_leg_preferences(&call, &session, prefs)).await {
                Ok(true) => StatusCode::NO_CONTENT.into_response(),
                Ok(false) => error(StatusCode::NOT_FOUND, "no such call or session"),
                Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "changing the leg failed"),
            };
        }
        _ => return error(StatusCode::BAD_REQUEST, "the body has either fragment or preferences"),
    };
    match tokio::task::spawn_blocking(move || server.patch_webrtc(call, &session, &fragment)).await {
        Ok(Ok(None)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(Some(fragment))) => Json(json!({ "fragment": fragment })).into_response(),
        Ok(Err(r)) => refusal(&r),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "patching the leg failed"),
    }
}

fn stats_json(server: &RouterServer) -> serde_json::Value {
    let workers: Vec<_> = server
        .stats()
        .iter()
        .map(|w| {
            let r = &w.router;
            json!({
                "calls": w.calls, "participants": w.participants, "batches": w.batches,
                "rx_datagrams": r.rx_datagrams, "rx_bytes": r.rx_bytes, "tx_datagrams": r.tx_datagrams, "tx_bytes": r.tx_bytes,
                "busy_seconds": w.busy.as_secs_f64(), "load_permille": w.load_permille,
                "pipe_links": w.pipe_links, "piped_out": w.piped_out, "piped_in": w.piped_in, "pipe_drops": w.pipe_drops,
                "cascade": {
                    "links": w.cascade_links,
                    "media_out": r.cascade_media_out, "media_in": r.cascade_media_in,
                    "control_out": r.cascade_control_out, "control_in": r.cascade_control_in,
                    "peers": w.links.iter().map(|(peer, l)| json!({
                        "peer": peer.to_string(), "media_out": l.media_out, "media_in": l.media_in,
                        "rtcp_out": l.rtcp_out, "rtcp_in": l.rtcp_in,
                        "control_out": l.control_out, "control_in": l.control_in,
                        "bytes_out": l.bytes_out, "bytes_in": l.bytes_in,
                    })).collect::<Vec<_>>(),
                },
                "forwarded_rtp": r.forwarded_rtp, "forwarded_rtcp": r.forwarded_rtcp, "reports_sent": r.reports_sent,
                "joins": r.joins, "joins_refused": r.joins_refused, "joins_redirected": r.joins_redirected,
                "address_checks": r.address_checks, "address_moves": r.address_moves,
                "leaves": r.leaves, "timeouts": r.timeouts, "keyframe_requests": r.keyframe_requests, "nacks": r.nacks,
                "sd_audio_withheld": r.sd_audio_withheld, "sd_audio_mixed": r.sd_audio_mixed,
                "frame_rate_dropped": r.frame_rate_dropped, "last_n_withheld": r.last_n_withheld,
                "layer_switches": r.layer_switches, "twcc_feedback": r.twcc_feedback, "probes_sent": r.probes_sent, "nack_left_behind": r.nack_left_behind, "paced": r.paced, "pacer_overdue": r.pacer_overdue, "pacer_withdrawn": r.pacer_withdrawn, "keyframes_for_loss": r.keyframes_for_loss, "layers_skipped": r.layers_skipped,
                "overload_shed": r.overload_shed, "overload_layers_lowered": r.overload_layers_lowered, "red_sent": r.red_sent, "overload_restored": r.overload_restored,
                "duplicates_dropped": r.duplicates_dropped, "retransmitted": r.retransmitted,
                "nack_answered": r.nack_answered, "nack_missed": r.nack_missed,
                "nacks_upstream": r.nacks_upstream, "retransmit_refused": r.retransmit_refused,
                "nack_throttled": r.nack_throttled, "replies_withheld": r.replies_withheld,
                "rtx_received": r.rtx_received,
                "buffers": {
                    "retransmit_buffers": w.buffers.retransmit_buffers,
                    "retransmit_bytes": w.buffers.retransmit_bytes,
                },
                "dropped": {
                    "malformed": r.dropped_malformed, "unadmitted": r.dropped_unadmitted,
                    "bad_token": r.dropped_bad_token, "bad_integrity": r.dropped_bad_integrity, "ssrc_not_owned": r.dropped_ssrc_not_owned,
                    "not_publisher": r.dropped_not_publisher, "keyframe_throttled": r.dropped_keyframe_throttled,
                    "rtcp_unroutable": r.dropped_rtcp_unroutable, "ice_refused": r.dropped_ice_refused,
                    "srtp_auth": r.dropped_srtp_auth, "srtp_replay": r.dropped_srtp_replay,
                    "not_ready": r.dropped_not_ready, "pipe_unadmitted": r.dropped_pipe_unadmitted,
                    "pipe_auth_failed": r.dropped_pipe_auth_failed, "pipe_replayed": r.dropped_pipe_replayed,
                },
                "webrtc": {
                    "ice_checks": r.ice_checks, "dtls_connected": r.dtls_connected, "dtls_failed": r.dtls_failed,
                    "not_sent": r.webrtc_not_ready, "seal_failed": r.srtp_seal_failed,
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
    match tokio::task::spawn_blocking(move || crate::metrics::render(server.stats())).await {
        Ok(text) => ([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "metrics failed"),
    }
}

/// Ready when every worker is running and answers (a worker whose loop
/// ended, or that is stuck, makes the router unready).
async fn readyz(State(s): State<AdminState>) -> Response {
    let server = s.server.clone();
    match tokio::task::spawn_blocking(move || (server.workers_answering(), server.addresses().len())).await {
        Ok((up, all)) if up == all => Json(json!({ "ready": true, "workers": all })).into_response(),
        Ok((up, all)) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "workers": all, "answering": up })))
                .into_response()
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "readiness check failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fps_parsing() {
        let sub = Role::Subscriber;
        assert_eq!(max_fps_of(sub, None), Ok(None));
        assert_eq!(max_fps_of(sub, Some(&json!(null))), Ok(None));
        assert_eq!(max_fps_of(sub, Some(&json!(1))), Ok(Some(1)));
        assert_eq!(max_fps_of(sub, Some(&json!(15))), Ok(Some(15)));
        assert_eq!(max_fps_of(sub, Some(&json!(60))), Ok(Some(60)));
        for bad in [json!(0), json!(61), json!(256), json!(-1), json!(7.5), json!("8"), json!([8]), json!({})] {
            assert_eq!(max_fps_of(sub, Some(&bad)), Err("max_fps must be an integer from 1 to 60"), "{bad}");
        }
        assert!(max_fps_of(Role::Publisher, Some(&json!(15))).unwrap_err().contains("subscriber legs only"));
        assert_eq!(max_fps_of(Role::Publisher, Some(&json!(null))), Ok(None));
        assert_eq!(max_fps_of(Role::Publisher, None), Ok(None));
    }

    #[test]
    fn max_height_parsing() {
        let sub = Role::Subscriber;
        assert_eq!(max_height_of(sub, None), Ok(None));
        assert_eq!(max_height_of(sub, Some(&json!(null))), Ok(None));
        assert_eq!(max_height_of(sub, Some(&json!(16))), Ok(Some(16)));
        assert_eq!(max_height_of(sub, Some(&json!(360))), Ok(Some(360)));
        assert_eq!(max_height_of(sub, Some(&json!(4320))), Ok(Some(4320)));
        for bad in [json!(0), json!(15), json!(4321), json!(-360), json!(360.5), json!("360"), json!([360])] {
            assert_eq!(max_height_of(sub, Some(&bad)), Err("max_height must be an integer from 16 to 4320"), "{bad}");
        }
        assert!(max_height_of(Role::Publisher, Some(&json!(360))).unwrap_err().contains("subscriber legs only"));
        assert_eq!(max_height_of(Role::Publisher, None), Ok(None));
    }
}

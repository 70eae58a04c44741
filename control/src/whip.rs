//! WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) on the calls service.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/calls/{id}/whip` | publish: `application/sdp` offer → `201`, the answer, `Location` |
//! | `POST /v1/calls/{id}/whip?source=screen` | publish a screen share (its own participant, role `screen`) |
//! | `POST /v1/calls/{id}/whep?participant=<id>` | receive one participant's audio and video |
//! | `POST /v1/calls/{id}/whep?participant=<id>&max_fps=<1..=60>` | the same, video thinned to at most that frame rate (temporal layers) |
//! | `POST /v1/calls/{id}/whep?participant=<id>&max_height=<16..=4320>` | the same, of a simulcast publisher the best layer at most that many pixels high |
//! | `POST /v1/calls/{id}/whep?participant=<id>&last_n=<1..=255>` | the same, its video paused while that participant is not among the call's N most active speakers |
//! | `POST /v1/calls/{id}/whep?view=composite` | receive the call's composite and mixed audio |
//! | `PATCH /v1/calls/{id}/sessions/{session}` | trickle ICE / ICE restart (`application/trickle-ice-sdpfrag`); or, of a WHEP session, new `max_height`/`max_fps`/`last_n` while it plays (`application/json`, 0 lifts one) |
//! | `DELETE /v1/calls/{id}/sessions/{session}` | end the leg: the participant leaves |
//! | `OPTIONS` on all of them | CORS preflight |
//!
//! A POST authenticates the bearer session like a native join, places the leg like a native
//! join (the call's home, or a router linked to it: [`crate::leg_router`]), allocates the
//! participant with the same call-store procedure (`corecast_join`, so the per-call cap and an
//! ended call answer as for join; a user may hold several legs: one WHIP, one WHEP per remote
//! participant; the record keeps a leaf router's id), and forwards the offer to that router
//! (`POST {admin}/v1/calls/{id}/webrtc`, router secret). A router refusal releases the
//! participant again and is passed on with its status and message as `text/plain`. The
//! session resource is stateless (see [`crate::whip_resource`]); who may PATCH or DELETE it
//! is checked against the participant record (the user who created it), and the record
//! names the router the PATCH or DELETE goes to.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::calls::{parse_call_id, user, CallsState};
use crate::config::CallsConfig;
use crate::error::ApiError;
use crate::routers::RouterReply;
use crate::stores::{Call, CallError, Participant};
use crate::util;
use crate::whip_resource::SessionResource;
use corecast_proto::temporal::MAX_FPS;

/// Largest SDP offer or trickle fragment accepted; larger bodies get 413 unread.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const JSON: &str = "application/json";
const X_PARTICIPANT_ID: HeaderName = HeaderName::from_static("x-participant-id");

/// The WHIP/WHEP routes, with their CORS headers (merged into [`crate::calls::router`]).
pub fn routes(cfg: &CallsConfig) -> Router<Arc<CallsState>> {
    let origin = cfg.cors_allow_origin.clone();
    Router::new()
        .route("/v1/calls/{id}/whip", post(whip).options(preflight_post))
        .route("/v1/calls/{id}/whep", post(whep).options(preflight_post))
        .route("/v1/calls/{id}/sessions/{session}", patch(patch_leg).delete(end_leg).options(preflight_leg))
        .layer(axum::middleware::map_response(move |r: Response| {
            let origin = origin.clone();
            async move { with_cors(r, origin.as_deref()) }
        }))
}

/// Adds the CORS headers a page on another origin needs to use WHIP/WHEP (and to read the
/// call's participants, `GET /v1/calls/{id}`).
pub(crate) fn with_cors(mut r: Response, origin: Option<&str>) -> Response {
    let h = r.headers_mut();
    let origin = origin.and_then(|o| HeaderValue::from_str(o).ok()).unwrap_or(HeaderValue::from_static("*"));
    if origin != "*" {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type, If-Match"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, X-Participant-Id, Accept-Post, Accept-Patch"),
    );
    r
}

async fn preflight_post() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    r.headers_mut().insert("accept-post", HeaderValue::from_static(SDP));
    r.headers_mut().insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}

async fn preflight_leg() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("PATCH, DELETE, OPTIONS"));
    r.headers_mut()
        .insert("accept-patch", HeaderValue::from_static("application/trickle-ice-sdpfrag, application/json"));
    r.headers_mut().insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}

/// 415 unless the request's media type (parameters ignored) is `want`.
fn require_content_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let got = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = got.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: {want}"),
        ))
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {MAX_OFFER_BYTES} bytes"),
    )
}

/// Reads an SDP or fragment body of at most [`MAX_OFFER_BYTES`]: a larger declared
/// `Content-Length` is refused before anything is read, a longer stream as soon as it
/// passes the limit.
async fn read_text(headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_OFFER_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_OFFER_BYTES).await.map_err(|_| too_large())?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", "the body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", "the body is empty"));
    }
    Ok(text)
}

/// A router refusal as the HTTP client sees it: the router's status and message.
fn router_reply(r: RouterReply) -> Response {
    match r {
        RouterReply::Refused(status, msg) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
        }
        RouterReply::Unreachable(e) => {
            tracing::warn!(error = %e, "router unreachable for a WebRTC request");
            ApiError::unavailable("the call's router is unreachable; retry later").into_response()
        }
    }
}

/// `?source=screen` (or `?source=camera`, the default).
#[derive(Debug, Deserialize)]
struct WhipQuery {
    source: Option<String>,
}

/// `POST /v1/calls/{id}/whip`.
async fn whip(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    ext: Extensions,
    Path(id): Path<String>,
    query: Result<Query<WhipQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", m.to_owned());
    let Ok(Query(q)) = query else { return Err(bad("malformed query")) };
    // A screen share is a publisher to the router, and a participant of its own (role
    // `screen`) in the call store, so that the others can tell it from a camera.
    let stored_role = match q.source.as_deref() {
        None | Some("camera") => "publisher",
        Some("screen") => "screen",
        Some(_) => return Err(bad("source must be \"camera\" or \"screen\"")),
    };
    require_content_type(&headers, SDP)?;
    let offer = read_text(&headers, body).await?;
    let leg = Leg {
        stored_role,
        role: "publisher",
        subscribe: serde_json::Value::Null,
        max_fps: None,
        max_height: None,
        last_n: None,
        near: st.region_of_client(&headers, &ext),
    };
    open_leg(&st, id, uid, leg, offer).await
}

/// `?participant=<id>` or `?view=composite`, optionally `&max_fps=<1..=60>`,
/// `&max_height=<16..=4320>` and (with a participant) `&last_n=<1..=255>`.
#[derive(Debug, Deserialize)]
struct WhepQuery {
    participant: Option<String>,
    view: Option<String>,
    max_fps: Option<String>,
    max_height: Option<String>,
    last_n: Option<String>,
}

/// The tallest video a WHEP viewer may ask for (`max_height`, 8K).
const MAX_HEIGHT: u16 = 4320;

/// `POST /v1/calls/{id}/whep`.
async fn whep(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    ext: Extensions,
    Path(id): Path<String>,
    query: Result<Query<WhepQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", m.to_owned());
    let Ok(Query(q)) = query else { return Err(bad("malformed query")) };
    let subscribe = match (q.participant.as_deref(), q.view.as_deref()) {
        (Some(p), None) => {
            let pid: u64 = p.parse().map_err(|_| bad("participant must be a participant id"))?;
            let call = st.calls.get(id).await?.ok_or(CallError::NotFound)?;
            if !call.participants.iter().any(|x| x.participant_id == pid) {
                return Err(ApiError::not_found("no such participant in this call"));
            }
            json!({ "participant_id": pid })
        }
        (None, Some("composite")) => json!("composite"),
        (None, Some(_)) => return Err(bad("view must be \"composite\"")),
        (Some(_), Some(_)) => return Err(bad("give either participant or view, not both")),
        (None, None) => return Err(bad("give ?participant=<participant id> or ?view=composite")),
    };
    let max_fps = match q.max_fps.as_deref() {
        None => None,
        Some(f) => match f.parse::<u8>() {
            Ok(n @ 1..=MAX_FPS) => Some(n),
            _ => return Err(bad("max_fps must be a whole number of frames per second from 1 to 60")),
        },
    };
    let max_height = match q.max_height.as_deref() {
        None => None,
        Some(h) => match h.parse::<u16>() {
            Ok(n @ 16..=MAX_HEIGHT) => Some(n),
            _ => return Err(bad("max_height must be a whole number of pixels from 16 to 4320")),
        },
    };
    let last_n = match q.last_n.as_deref() {
        None => None,
        Some(_) if q.view.is_some() => return Err(bad("last_n is for a participant's video, not the composite")),
        Some(n) => match n.parse::<u8>() {
            Ok(n @ 1..) => Some(n),
            _ => return Err(bad("last_n must be a whole number from 1 to 255")),
        },
    };
    require_content_type(&headers, SDP)?;
    let offer = read_text(&headers, body).await?;
    let near = st.region_of_client(&headers, &ext);
    let leg = Leg { stored_role: "subscriber", role: "subscriber", subscribe, max_fps, max_height, last_n, near };
    open_leg(&st, id, uid, leg, offer).await
}

/// The leg a POST asks for.
struct Leg {
    /// The participant's role in the call store (`publisher`, `screen`, `subscriber`).
    stored_role: &'static str,
    /// Its role at the router (`publisher` or `subscriber`).
    role: &'static str,
    /// What it receives (the router's `subscribe`).
    subscribe: serde_json::Value,
    /// The highest video frame rate it receives.
    max_fps: Option<u8>,
    /// The tallest simulcast layer it receives (pixels).
    max_height: Option<u16>,
    /// Its Last-N: video only while its publisher is among the call's N most active speakers.
    last_n: Option<u8>,
    /// The caller's region by its address (placement, as for a native join).
    near: Option<String>,
}

/// Places the leg, allocates the participant, asks the router for the leg, and answers `201`
/// (or releases the participant and passes the router's refusal on).
async fn open_leg(st: &CallsState, id: Uuid, uid: i32, leg: Leg, offer: String) -> Result<Response, ApiError> {
    let pid = util::participant_id();
    let role = leg.stored_role;
    let call = st.calls.get(id).await?.ok_or(CallError::NotFound)?;
    let composite = leg.subscribe == json!("composite");
    let (router, held) = crate::leg_router::place_leg(st, &call, composite, leg.near.as_deref()).await;
    let p = Participant::new(pid, uid, role, util::now_ms()).held_on(held);
    st.calls.join_leg(id, &p, st.cfg.max_participants).await?;
    let admin = st.routers.admin_of(&router).await;
    let mut body = json!({
        "participant_id": pid,
        "role": leg.role,
        "subscribe": leg.subscribe,
        "offer": offer,
        "expires_ms": util::now_ms() + st.cfg.token_ttl_secs * 1000,
    });
    if let Some(fps) = leg.max_fps {
        body["max_fps"] = json!(fps);
    }
    if let Some(height) = leg.max_height {
        body["max_height"] = json!(height);
    }
    if let Some(n) = leg.last_n {
        body["last_n"] = json!(n);
    }
    let leg = match st.router_client.open_webrtc(&admin, id, &body).await {
        Ok(leg) => leg,
        Err(e) => {
            release(st, id, pid, &admin, matches!(e, RouterReply::Unreachable(_))).await;
            tracing::info!(call_id = %id, user_id = uid, participant_id = pid, role, reason = ?e, "WebRTC leg refused");
            return Ok(router_reply(e));
        }
    };
    tracing::info!(call_id = %id, user_id = uid, participant_id = pid, role, router = %router.id, "WebRTC leg opened");
    let resource = st.resource_key.encode(id, pid, &leg.session);
    let mut r = (StatusCode::CREATED, [(header::CONTENT_TYPE, SDP)], leg.answer).into_response();
    let h = r.headers_mut();
    let location = format!("/v1/calls/{id}/sessions/{resource}");
    h.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|_| ApiError::internal())?);
    if let Some(etag) = etag(&leg.session) {
        h.insert(header::ETAG, etag);
    }
    h.insert(X_PARTICIPANT_ID, HeaderValue::from(pid));
    Ok(r)
}

/// Gives a refused leg's participant up again, so a failed request leaves the call as it
/// was. When the router may have admitted it after all (no answer), it is told to drop it.
async fn release(st: &CallsState, id: Uuid, pid: u64, admin: &str, tell_router: bool) {
    if let Err(e) = st.calls.drop_participant(id, pid).await {
        // Not lost: the router re-sync drops participants the router does not hold.
        tracing::warn!(call_id = %id, participant_id = pid, error = %e, "could not release a refused leg's participant");
    }
    if tell_router {
        let client = st.router_client.clone();
        let admin = admin.to_owned();
        tokio::spawn(async move {
            client.remove_participant(&admin, id, pid).await;
        });
    }
}

/// `"<ICE ufrag>"`, when it is a valid header value.
fn etag(ufrag: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{ufrag}\"")).ok()
}

/// The caller's session resource and its participant: 404 when it is not one of ours or the
/// participant is gone, 403 when another user created it.
async fn owned_resource(
    st: &CallsState,
    headers: &HeaderMap,
    id: &str,
    resource: &str,
) -> Result<(Call, SessionResource, Participant), ApiError> {
    let uid = user(st, headers).await?;
    let id = parse_call_id(id)?;
    let gone = || ApiError::not_found("no such session");
    let res = st.resource_key.decode(id, resource).ok_or_else(gone)?;
    let call = st.calls.get(id).await?.ok_or_else(gone)?;
    let p = call.participants.iter().find(|p| p.participant_id == res.participant_id).ok_or_else(gone)?.clone();
    if p.user_id != uid {
        return Err(ApiError::forbidden("only the user who opened a session may change or end it"));
    }
    Ok((call, res, p))
}

/// `PATCH /v1/calls/{id}/sessions/{session}`: trickle ICE, or an ICE restart
/// (`If-Match: "*"` and new credentials; the router answers with its own).
async fn patch_leg(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path((id, resource)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let (call, res, p) = owned_resource(&st, &headers, &id, &resource).await?;
    if require_content_type(&headers, JSON).is_ok() {
        return set_preferences(&st, &call, &res, &p, &headers, body).await;
    }
    require_content_type(&headers, SDPFRAG)?;
    let fragment = read_text(&headers, body).await?;
    let admin = crate::leg_router::admin_holding(&st, &call, &p).await;
    match st.router_client.patch_webrtc(&admin, call.id, &res.session, &fragment).await {
        Ok(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(Some(answer)) => {
            let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, SDPFRAG)], answer.clone()).into_response();
            if let Some(etag) = ice_ufrag(&answer).and_then(etag) {
                r.headers_mut().insert(header::ETAG, etag);
            }
            Ok(r)
        }
        Err(e) => Ok(router_reply(e)),
    }
}

/// A WHEP session's new preferences while it plays (`PATCH` with
/// `Content-Type: application/json`): `{"max_height"?, "max_fps"?,
/// "last_n"?}`, each in its WHEP query's range or 0 (lifted); absent: kept.
/// `204`, applied by the router holding the leg.
async fn set_preferences(
    st: &CallsState,
    call: &Call,
    res: &SessionResource,
    p: &Participant,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if p.role != "subscriber" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_viewer",
            "preferences are for WHEP sessions (a WHIP session receives nothing)",
        ));
    }
    let text = read_text(headers, body).await?;
    let prefs = LegPreferences::parse(&text).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m))?;
    let admin = crate::leg_router::admin_holding(st, call, p).await;
    match st.router_client.set_webrtc_preferences(&admin, call.id, &res.session, &prefs.to_json()).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Ok(router_reply(e)),
    }
}

/// What a WHEP viewer asks to change while it plays (`set_preferences`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegPreferences {
    max_height: Option<u32>,
    max_fps: Option<u32>,
    last_n: Option<u32>,
}

impl LegPreferences {
    /// The body's preferences, each 0 or in its WHEP query's range, at least one.
    fn parse(text: &str) -> Result<LegPreferences, String> {
        let p: LegPreferences = serde_json::from_str(text).map_err(|e| format!("the body: {e}"))?;
        let ok = |v: Option<u32>, range: std::ops::RangeInclusive<u32>| v.is_none_or(|v| v == 0 || range.contains(&v));
        if !ok(p.max_height, 16..=u32::from(MAX_HEIGHT)) {
            return Err("max_height must be 0 (none) or a whole number of pixels from 16 to 4320".into());
        }
        if !ok(p.max_fps, 1..=u32::from(MAX_FPS)) {
            return Err("max_fps must be 0 (none) or a whole number of frames per second from 1 to 60".into());
        }
        if !ok(p.last_n, 1..=255) {
            return Err("last_n must be 0 (none) or a whole number from 1 to 255".into());
        }
        if p.max_height.is_none() && p.max_fps.is_none() && p.last_n.is_none() {
            return Err("nothing to change: give max_height, max_fps or last_n".into());
        }
        Ok(p)
    }

    /// As the router's admin API takes them.
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "max_height": self.max_height, "max_fps": self.max_fps, "last_n": self.last_n })
    }
}

/// The `a=ice-ufrag:` of a fragment.
fn ice_ufrag(fragment: &str) -> Option<&str> {
    fragment.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")).map(str::trim)
}

/// `DELETE /v1/calls/{id}/sessions/{session}`: the participant leaves as with a native
/// leave (call store, then the router holding the leg drops its media at once; a leaf left
/// without participants closes its link to the home).
async fn end_leg(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path((id, resource)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (call, res, p) = owned_resource(&st, &headers, &id, &resource).await?;
    let pid = res.participant_id;
    if st.calls.drop_participant(call.id, pid).await? {
        tracing::info!(call_id = %call.id, participant_id = pid, router = ?p.router, "left (WebRTC session deleted)");
        let admin = crate::leg_router::admin_holding(&st, &call, &p).await;
        let client = st.router_client.clone();
        let id = call.id;
        tokio::spawn(async move {
            client.remove_participant(&admin, id, pid).await;
        });
    }
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert!(require_content_type(&h, SDP).is_err());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/SDP; charset=utf-8"));
        assert!(require_content_type(&h, SDP).is_ok());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(require_content_type(&h, SDP).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn ufrag_of_a_fragment() {
        let f = "a=ice-options:trickle\r\na=ice-ufrag:Ab12\r\na=ice-pwd:xyz\r\n";
        assert_eq!(ice_ufrag(f), Some("Ab12"));
        assert_eq!(ice_ufrag("a=mid:0"), None);
    }
}

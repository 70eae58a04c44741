//! The calls service: start, end, join, leave and inspect calls; the router link.
//!
//! Calls live in a [`CallStore`] (Tarantool or memory). Every user endpoint checks the bearer
//! session in the shared [`SessionStore`]. A join returns the router's media address and a
//! join token signed with the service's Ed25519 key (`corecast_proto::token`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use corecast_proto::join_key::JoinSecret;
use corecast_proto::token::{self, Claims, ParticipantId, Role, SigningKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::session_user;
pub use crate::call_view::CallView;
use crate::config::CallsConfig;
use crate::error::{ApiError, ApiJson};
use crate::geo::{self, RegionTable};
use crate::health;
use crate::metrics::ServiceMetrics;
use crate::routers::{RouterBeatReply, RouterCall, RouterCalls, RouterClient, RouterRegistration, RouterRegistry};
use crate::stores::counted::Counted;
use crate::stores::{Call, CallError, CallStore, NewCall, Participant, RouterRef, SessionStore, UserStore};
use crate::util;
use crate::whip_resource::ResourceKey;

/// Shared state of the calls service.
#[derive(Debug)]
pub struct CallsState {
    pub(crate) calls: Arc<dyn CallStore>,
    sessions: Arc<dyn SessionStore>,
    pub(crate) routers: RouterRegistry,
    pub(crate) router_client: RouterClient,
    router_secret: String,
    /// Join keys come from it (the routers derive the same ones).
    join_secret: JoinSecret,
    key: SigningKey,
    pub(crate) resource_key: ResourceKey,
    pub(crate) cfg: CallsConfig,
    session_ttl: Duration,
    /// Where participants' names come from (absent: names are `null`).
    users: OnceLock<Arc<dyn UserStore>>,
    metrics: Arc<ServiceMetrics>,
    /// Client address ranges to regions (`calls.regions_file`; unset: none).
    regions: OnceLock<RegionTable>,
}

impl CallsState {
    /// Builds the state; the stores' failures are counted in the service's metrics.
    pub fn new(
        calls: Arc<dyn CallStore>,
        sessions: Arc<dyn SessionStore>,
        routers: RouterRegistry,
        router_secret: String,
        key: SigningKey,
        cfg: CallsConfig,
        session_ttl: Duration,
    ) -> Arc<Self> {
        let metrics = ServiceMetrics::new("calls");
        Arc::new(CallsState {
            calls: Counted::new(calls, "calls", &metrics),
            sessions: Counted::new(sessions, "sessions", &metrics),
            routers: routers.counted(&metrics),
            router_client: RouterClient::new(router_secret.clone()),
            join_secret: JoinSecret::new(router_secret.as_bytes()),
            router_secret,
            resource_key: ResourceKey::from_signing_key(&key),
            key,
            cfg,
            session_ttl,
            users: OnceLock::new(),
            metrics,
            regions: OnceLock::new(),
        })
    }

    /// The service's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Arc<ServiceMetrics> {
        &self.metrics
    }

    /// Gives the service a user store to read participants' names from (`GET /v1/calls/{id}`).
    /// Only the first call has an effect.
    pub fn set_users(&self, users: Arc<dyn UserStore>) {
        let _ = self.users.set(Counted::new(users, "users", &self.metrics));
    }

    /// Gives the service its table of client address ranges to regions
    /// (`calls.regions_file`). Only the first call has an effect.
    pub fn set_regions(&self, regions: RegionTable) {
        let _ = self.regions.set(regions);
    }

    /// The region of the client of a request, by `calls.regions_file` (its address: the
    /// connection's, or `X-Forwarded-For`'s first with `calls.trust_forwarded_for`).
    pub(crate) fn region_of_client(&self, headers: &HeaderMap, ext: &Extensions) -> Option<String> {
        let client = util::client_ip(self.cfg.trust_forwarded_for, headers, ext);
        self.regions.get().and_then(|t| t.region_of(client)).map(str::to_owned)
    }

    /// The user store names come from, if any.
    pub(crate) fn users(&self) -> Option<&dyn UserStore> {
        self.users.get().map(|u| u.as_ref())
    }

    /// The router registry.
    pub fn routers(&self) -> &RouterRegistry {
        &self.routers
    }
}

/// The calls service's routes (see `control/openapi.json`), with `/healthz`, `/readyz` and
/// `/metrics`; every request is counted ([`crate::metrics`]).
pub fn router(state: Arc<CallsState>) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes served (and counted) next to the service's own:
/// `corecast-control` mounts the auth service's user routes there.
pub fn router_with(state: Arc<CallsState>, extra: Router) -> Router {
    let limit = state.cfg.max_body_bytes;
    let metrics = state.metrics.clone();
    let ready = state.clone();
    let app = Router::new()
        .route("/v1/calls", post(start))
        .route("/v1/calls/{id}", get(get_call).delete(end).options(preflight_call))
        .route("/v1/calls/{id}/join", post(join))
        .route("/v1/calls/{id}/leave", post(leave))
        .route("/v1/calls/{id}/rejoin", post(crate::failover::rejoin))
        .route("/v1/calls/{id}/mixer", post(mixer_token))
        .route("/v1/calls/{id}/participants/{participant}", patch(crate::participants::set_muted))
        .route("/v1/keys", get(keys))
        .route("/v1/routers", post(register_router).get(crate::router_admin::list))
        .route("/v1/routers/{id}", patch(crate::router_admin::patch))
        .route("/v1/routers/{id}/events", post(router_events))
        .route("/v1/health", get(health))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(move || readyz(ready.clone())))
        .merge(crate::whip::routes(&state.cfg))
        .merge(crate::web::routes(&state.cfg))
        .fallback(crate::error::fallback)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
        .merge(extra);
    crate::metrics::instrument(app, &metrics)
}

/// Ready when the call and session stores (and the user store, when names come from one)
/// answer.
async fn readyz(st: Arc<CallsState>) -> Response {
    let users = async {
        match st.users() {
            Some(u) => u.by_id(0).await.map(|_| ()),
            None => Ok(()),
        }
    };
    let (calls, sessions, users) = tokio::join!(
        health::probe("calls", st.calls.get(Uuid::nil())),
        health::probe("sessions", st.sessions.touch(health::PROBE_TOKEN, Duration::from_secs(1))),
        health::probe("users", users),
    );
    health::readiness(&[calls, sessions, users])
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotFound => ApiError::not_found("call not found"),
            CallError::NotOwner => ApiError::forbidden("only the call's owner may end it"),
            CallError::Full(cap) => ApiError::new(
                StatusCode::CONFLICT,
                "call_full",
                format!("the call has reached its cap of {cap} participants"),
            ),
            CallError::AlreadyJoined => {
                ApiError::new(StatusCode::CONFLICT, "already_joined", "you have already joined this call")
            }
            CallError::NotJoined => {
                ApiError::new(StatusCode::CONFLICT, "not_joined", "you are not a participant of this call")
            }
            CallError::NoParticipant => ApiError::not_found("no such participant in this call"),
            CallError::NotYours => ApiError::forbidden("only the user who joined as a participant may change it"),
            CallError::NotPublisher => ApiError::new(
                StatusCode::CONFLICT,
                "not_publisher",
                "the participant has no microphone or camera to mute (it publishes nothing, or a screen share)",
            ),
            CallError::Store(s) => s.into(),
        }
    }
}

pub(crate) fn parse_call_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found("call not found"))
}

pub(crate) async fn user(st: &CallsState, headers: &HeaderMap) -> Result<i32, ApiError> {
    Ok(session_user(st.sessions.as_ref(), headers, st.session_ttl).await?.0)
}

/// `POST /v1/calls` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The region to start the call in (its live routers); absent: the starting client's
    /// region by `calls.regions_file`, else this instance's.
    pub region: Option<String>,
}

async fn start(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    ext: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let uid = user(&st, &headers).await?;
    let req: StartRequest = json_body(body)?;
    if let Some(r) = req.region.as_deref().filter(|r| !geo::valid_region(r)) {
        return Err(ApiError::invalid("region", format!("{r:?} is not a region name (1-64 of a-z, 0-9, -, _, .)")));
    }
    let wanted = req.region.or_else(|| st.region_of_client(&headers, &ext));
    let id = Uuid::new_v4();
    let call = NewCall { id, owner: uid, created_at: util::now_ms() };
    let (router, status) = st.routers.start_call_in(&call, wanted.as_deref()).await?;
    tracing::info!(call_id = %id, owner = uid, router = %router.id, region = ?wanted, "call started");
    let address = crate::routers::media_address(&router, status.as_ref(), id);
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "call_id": id, "router": address }))))
}

async fn end(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let call = st.calls.end(id, uid).await?;
    tracing::info!(call_id = %id, "call ended");
    let admin = st.routers.admin_of(&call.router).await;
    let client = st.router_client.clone();
    tokio::spawn(async move {
        client.end_call(&admin, id).await;
    });
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/calls/{id}/join` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// `publisher` (default) or `subscriber`.
    pub role: Option<String>,
}

/// `POST /v1/calls/{id}/join` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The new participant's id.
    pub participant_id: u64,
    /// Router media address `host:port`.
    pub router: String,
    /// Join token (base64url) for the router.
    pub token: String,
    /// The token's join key (base64url, 32 bytes): the client signs its
    /// native join and session messages with it. It travels only here.
    pub join_key: String,
    /// Token expiry, Unix milliseconds.
    pub expires_at: u64,
    /// Granted role.
    pub role: String,
}

fn json_body<T: Default + serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "request body is too large")
        } else {
            ApiError::new(r.status(), "bad_request", r.body_text())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string())
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {e}"))
        }
    })
}

async fn join(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    ext: Extensions,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<JoinResponse>, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let req: JoinRequest = json_body(body)?;
    let role = match req.role.as_deref() {
        None | Some("publisher") => Role::Publisher,
        Some("subscriber") => Role::Subscriber,
        Some(_) => return Err(ApiError::invalid("role", "role must be \"publisher\" or \"subscriber\"")),
    };
    let pid = util::participant_id();
    let p = Participant::new(pid, uid, role.name(), util::now_ms());
    let call = st.calls.join(id, &p, st.cfg.max_participants).await?;
    let near = st.region_of_client(&headers, &ext);
    let router = crate::cascade::place_participant(&st, id, &call.router, pid, None, near.as_deref()).await?;
    tracing::info!(call_id = %id, user_id = uid, participant_id = pid, router = %router.id, "joined");
    Ok(Json(grant(&st, id, pid, role, &router).await))
}

/// A signed join token for `pid` in call `id` and its join key.
pub(crate) async fn grant(st: &CallsState, id: Uuid, pid: u64, role: Role, router: &RouterRef) -> JoinResponse {
    let expires_at = util::now_ms() + st.cfg.token_ttl_secs * 1000;
    let claims = Claims {
        call_id: token::CallId(*id.as_bytes()),
        participant_id: ParticipantId(pid),
        role,
        expires_at_ms: expires_at,
    };
    let raw = token::sign(&st.key, &claims);
    JoinResponse {
        participant_id: pid,
        router: st.routers.media_address(router, id).await,
        token: token::encode_text(&raw),
        join_key: st.join_secret.key_for(&raw).to_text(),
        expires_at,
        role: role.name().to_owned(),
    }
}

/// `POST /v1/calls/{id}/mixer`: a join token with role `mixer` for the codec
/// pool (router secret required). The mixer is infrastructure, not a user: it
/// is not stored among the call's participants and does not count against
/// the participant cap.
async fn mixer_token(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JoinResponse>, ApiError> {
    check_router_secret(&st, &headers)?;
    let id = parse_call_id(&id)?;
    let call = st.calls.get(id).await?.ok_or_else(|| ApiError::from(CallError::NotFound))?;
    let pid = util::participant_id();
    tracing::info!(call_id = %id, participant_id = pid, "mixer token issued");
    Ok(Json(grant(&st, id, pid, Role::Mixer, &call.router).await))
}

async fn leave(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let before = st.calls.get(id).await?;
    let pid = st.calls.leave(id, uid).await?;
    tracing::info!(call_id = %id, user_id = uid, participant_id = pid, "left");
    // Best effort: the router holding it (the home or a leaf) stops the participant's media
    // now (else at its silence timeout).
    let held = before.as_ref().and_then(|c| c.participants.iter().find(|p| p.participant_id == pid).map(|p| (c, p)));
    if let Some((call, p)) = held {
        let admin = crate::leg_router::admin_holding(&st, call, p).await;
        let client = st.router_client.clone();
        tokio::spawn(async move {
            client.remove_participant(&admin, id, pid).await;
        });
    }
    Ok(Json(serde_json::json!({ "participant_id": pid })))
}

async fn get_call(State(st): State<Arc<CallsState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    // With the CORS headers of WHIP/WHEP: a page on another origin reads whom to subscribe to.
    let view = read_call(&st, &headers, &id).await.map(Json).into_response();
    crate::whip::with_cors(view, st.cfg.cors_allow_origin.as_deref())
}

/// `OPTIONS /v1/calls/{id}`: a page on another origin may `GET` the call (with its session).
async fn preflight_call(State(st): State<Arc<CallsState>>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(axum::http::header::ALLOW, axum::http::HeaderValue::from_static("GET, DELETE, OPTIONS"));
    crate::whip::with_cors(r, st.cfg.cors_allow_origin.as_deref())
}

async fn read_call(st: &CallsState, headers: &HeaderMap, id: &str) -> Result<CallView, ApiError> {
    let uid = user(st, headers).await?;
    let id = parse_call_id(id)?;
    let call = st.calls.get(id).await?.ok_or_else(|| ApiError::not_found("call not found"))?;
    if call.owner != uid && !call.participants.iter().any(|p| p.user_id == uid) {
        return Err(ApiError::forbidden("only the owner and participants may see a call"));
    }
    let router = call.router.address.clone();
    Ok(crate::call_view::call_view(call, router, st.users.get().map(|u| u.as_ref())).await)
}

async fn keys(State(st): State<Arc<CallsState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "public_key_hex": hex::encode(st.key.verifying_key().to_bytes()) }))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn check_router_secret(st: &CallsState, headers: &HeaderMap) -> Result<(), ApiError> {
    match util::bearer(headers) {
        Some(t) if ct_eq(t.as_bytes(), st.router_secret.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("bad router secret")),
        None => Err(ApiError::unauthorized("missing router secret")),
    }
}

async fn register_router(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    ApiJson(reg): ApiJson<RouterRegistration>,
) -> Result<Json<RouterBeatReply>, ApiError> {
    check_router_secret(&st, &headers)?;
    if reg.id.is_empty() || reg.id.len() > 64 {
        return Err(ApiError::invalid("id", "router id must be 1 to 64 characters"));
    }
    if reg.address.parse::<std::net::SocketAddr>().is_err() && !reg.address.contains(':') {
        return Err(ApiError::invalid("address", "address must be host:port"));
    }
    if !(reg.admin.starts_with("http://") || reg.admin.starts_with("https://")) {
        return Err(ApiError::invalid("admin", "admin must be an http(s) URL"));
    }
    if !reg.load.is_finite() {
        return Err(ApiError::invalid("load", "load must be a number"));
    }
    if reg.region.len() > 64 {
        return Err(ApiError::invalid("region", "region must be at most 64 characters"));
    }
    let id = reg.id.clone();
    let admin = reg.admin.clone();
    // Not live until now (new, restarted, or back from a partition after being declared
    // dead): fenced, it ends what is no longer placed on it.
    let fenced = st.routers.heartbeat(&reg).await?;
    if fenced {
        tracing::info!(router = %id, "router registered (new, restarted or back after being declared dead); fencing and reconciling");
        tokio::spawn(reconcile_router(st.clone(), id.clone(), admin));
    }
    let calls = st.calls.by_router(&id).await?;
    Ok(Json(RouterBeatReply {
        fenced,
        calls: calls
            .into_iter()
            .map(|c| RouterCall {
                call_id: c.id,
                participants: c.participants.iter().map(|p| p.participant_id).collect(),
            })
            .collect(),
    }))
}

/// Reconciles with a new or restarted router, now and once more after the join-token TTL:
/// reads the router's `GET {admin}/v1/calls`, drops from the store the participants the
/// router does not hold and whose token has expired (they can no longer connect: ghosts),
/// and tells the router to end calls the store does not know.
pub async fn reconcile_router(st: Arc<CallsState>, router_id: String, admin: String) {
    let grace = Duration::from_secs(st.cfg.token_ttl_secs) + Duration::from_secs(1);
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(grace).await;
        }
        let held = match st.router_client.list_calls(&admin).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(router = %router_id, error = %e, "cannot read the router's calls; skipping reconcile");
                continue;
            }
        };
        match reconcile_once(&st, &router_id, &admin, held).await {
            Ok((dropped, ended)) if dropped + ended > 0 => {
                tracing::info!(router = %router_id, dropped, ended, "reconciled with router")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(router = %router_id, error = %e, "reconcile failed"),
        }
    }
}

async fn reconcile_once(
    st: &CallsState,
    router_id: &str,
    admin: &str,
    held: RouterCalls,
) -> Result<(u32, u32), CallError> {
    let now = util::now_ms();
    let grace_ms = st.cfg.token_ttl_secs * 1000;
    let held_map: std::collections::HashMap<Uuid, std::collections::HashSet<u64>> =
        held.calls.iter().map(|c| (c.call_id, c.participants.iter().copied().collect())).collect();
    let ours = st.calls.by_router(router_id).await?;
    let mut dropped = 0;
    for call in &ours {
        for p in &call.participants {
            // A leg held on a leaf is not this router's to hold.
            let elsewhere = p.router.as_deref().is_some_and(|r| r != router_id);
            let on_router = elsewhere || held_map.get(&call.id).is_some_and(|s| s.contains(&p.participant_id));
            let expired = p.joined_at.saturating_add(grace_ms) < now;
            if !on_router && expired && st.calls.drop_participant(call.id, p.participant_id).await? {
                dropped += 1;
            }
        }
    }
    let our_ids: std::collections::HashSet<Uuid> = ours.iter().map(|c| c.id).collect();
    let mut ended = 0;
    for c in held.calls {
        if !our_ids.contains(&c.call_id) {
            st.router_client.end_call(admin, c.call_id).await;
            ended += 1;
        }
    }
    Ok((dropped, ended))
}

/// One router → calls event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouterEvent {
    /// `left`, `timeout` or `removed` (dropped by the router, e.g. on a re-sync), or
    /// `dominant_speaker` (the call's loudest speaker changed).
    #[serde(rename = "type")]
    pub kind: String,
    /// The call.
    pub call_id: Uuid,
    /// The participant who is gone, or the new dominant speaker.
    pub participant_id: u64,
}

/// `POST /v1/routers/{id}/events` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouterEvents {
    /// Events, in order.
    pub events: Vec<RouterEvent>,
}

async fn router_events(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path(router_id): Path<String>,
    ApiJson(ev): ApiJson<RouterEvents>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_router_secret(&st, &headers)?;
    let mut removed = 0u32;
    for e in &ev.events {
        if !matches!(e.kind.as_str(), "left" | "timeout" | "removed" | "dominant_speaker") {
            let m = "event type must be \"left\", \"timeout\", \"removed\" or \"dominant_speaker\"";
            return Err(ApiError::invalid("type", m));
        }
    }
    for e in ev.events {
        if e.kind == "dominant_speaker" {
            st.calls.set_dominant_speaker(e.call_id, e.participant_id).await?;
            continue;
        }
        if !from_calls_router(&st, &router_id, e.call_id, e.participant_id).await {
            tracing::info!(router = %router_id, call_id = %e.call_id, participant_id = e.participant_id, kind = %e.kind, "event from a router the call has moved off; ignored");
            continue;
        }
        if st.calls.drop_participant(e.call_id, e.participant_id).await? {
            removed += 1;
            tracing::info!(router = %router_id, call_id = %e.call_id, participant_id = e.participant_id, kind = %e.kind, "participant gone (router event)");
        }
    }
    Ok(Json(serde_json::json!({ "removed": removed })))
}

/// Whether `router_id` is the router call `id` is on (or the call is on the configured default
/// router, whose registered id the store does not know, or is gone), or the leaf holding
/// participant `pid` (a native participant or a WHIP/WHEP leg placed there): a router the call moved off (failover, drain deadline)
/// no longer speaks for its participants.
async fn from_calls_router(st: &CallsState, router_id: &str, id: Uuid, pid: u64) -> bool {
    let holds =
        |c: &Call| c.participants.iter().any(|p| p.participant_id == pid && p.router.as_deref() == Some(router_id));
    match st.calls.get(id).await {
        Ok(Some(c)) => c.router.id == router_id || c.router.id == st.routers.default_router().id || holds(&c),
        _ => true,
    }
}

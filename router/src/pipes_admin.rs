//! The admin API's routes for cascading (links between routers' shares of
//! a call, see `corecast_core`'s `cascade`), for the calls service:
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/calls/{call_id}/pipe` | `{"address"}`: where this router takes the call's pipe datagrams (the call's owning worker) |
//! | `POST /v1/calls/{call_id}/pipes` | open the link to another router: `{"peer": "<ip:port>", "uplink"?: bool, "key": "<64 hex digits>"}` (its `address` for the call; `uplink`: the peer is the call's home, and this end closes the link once no participant is left here; `key`: the link's key, the same on both ends, new at each opening) → `200 {"address"}`; 400 malformed or no key |
//! | `DELETE /v1/calls/{call_id}/pipes/{peer}` | close that link (the far end is told) → 204; 400 malformed |
//!
//! All need `Authorization: Bearer <router secret>`: only the calls service
//! links routers, and a router takes pipe datagrams only from a peer an open
//! link names (others are dropped and counted as `pipe_unadmitted`), sealed
//! with the link's key (others: `pipe_auth_failed`, `pipe_replayed`). The
//! key is never logged.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use corecast_core::Command;
use corecast_proto::pipe_seal::PipeKey;
use corecast_proto::token::CallId;
use serde::Deserialize;
use serde_json::json;

use crate::admin::{authorized, error, AdminState};

/// `POST /v1/calls/{call_id}/pipes` body (its `Debug` leaves the key out).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenPipe {
    peer: String,
    /// `peer` is the call's home router: the link closes by itself once no
    /// participant is left here.
    #[serde(default)]
    uplink: bool,
    /// The link's key (hex), drawn by the calls service for this opening.
    key: String,
}

impl std::fmt::Debug for OpenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPipe").field("peer", &self.peer).field("uplink", &self.uplink).finish_non_exhaustive()
    }
}

/// The cascading routes (merged into [`crate::admin::routes`]).
pub(crate) fn routes() -> axum::Router<AdminState> {
    axum::Router::new()
        .route("/v1/calls/{call_id}/pipe", get(pipe_address))
        .route("/v1/calls/{call_id}/pipes", post(open_pipe))
        .route("/v1/calls/{call_id}/pipes/{peer}", delete(close_pipe))
}

/// A refused request: its status and message.
type Refused = (StatusCode, &'static str);

fn refused((status, msg): Refused) -> Response {
    error(status, msg)
}

/// The secret and the call id, checked.
fn call_of(s: &AdminState, headers: &HeaderMap, call_id: &str) -> Result<CallId, Refused> {
    if !authorized(s, headers) {
        return Err((StatusCode::UNAUTHORIZED, "missing or wrong router secret"));
    }
    CallId::parse(call_id).map_err(|_| (StatusCode::BAD_REQUEST, "call_id is not a UUID"))
}

fn peer_of(s: &str) -> Result<SocketAddr, Refused> {
    let peer: SocketAddr = s.parse().map_err(|_| (StatusCode::BAD_REQUEST, "peer is not an ip:port address"))?;
    if peer.port() == 0 || peer.ip().is_unspecified() {
        return Err((StatusCode::BAD_REQUEST, "peer must name a host and a port"));
    }
    Ok(peer)
}

async fn pipe_address(State(s): State<AdminState>, headers: HeaderMap, Path(call_id): Path<String>) -> Response {
    match call_of(&s, &headers, &call_id) {
        Ok(call) => Json(json!({ "address": s.server.address_for(&call).to_string() })).into_response(),
        Err(r) => refused(r),
    }
}

async fn open_pipe(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    body: Result<Json<OpenPipe>, JsonRejection>,
) -> Response {
    let call = match call_of(&s, &headers, &call_id) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let req = match body {
        Ok(Json(b)) => b,
        Err(r) => return error(StatusCode::BAD_REQUEST, &r.body_text()),
    };
    let peer = match peer_of(&req.peer) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    let Some(key) = PipeKey::from_hex(&req.key) else {
        return error(StatusCode::BAD_REQUEST, "key must be 64 hex digits");
    };
    s.server.command(Command::OpenPipe { call, peer, uplink: req.uplink, key });
    Json(json!({ "address": s.server.address_for(&call).to_string() })).into_response()
}

async fn close_pipe(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((call_id, peer)): Path<(String, String)>,
) -> Response {
    let call = match call_of(&s, &headers, &call_id) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let peer = match peer_of(&peer) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    s.server.command(Command::ClosePipe { call, peer });
    StatusCode::NO_CONTENT.into_response()
}

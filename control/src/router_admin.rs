//! Operators' view of the router registry, with the router secret as bearer token:
//!
//! - `GET /v1/routers`: every registered router (live or not) with what it last reported,
//!   the calls placed on it since, its draining flag and how long ago it was heard from.
//! - `PATCH /v1/routers/{id}` with `{"draining": true|false}`: a draining router takes no
//!   new calls (its calls go on); the flag outlives heartbeats and restarts until cleared.
//!   With `"deadline_secs": N` (draining only), N seconds later the router's calls are moved to
//!   other routers if it is still draining: the deadline is kept with the router in the shared
//!   store (`drain_deadline`, Unix ms by the store's clock) and every calls instance's sweeper
//!   enforces it ([`crate::failover`]); undraining clears it.
//!
//! Both read and write the shared store, so any calls instance answers the same.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::calls::{check_router_secret, CallsState};
use crate::error::{ApiError, ApiJson};
use crate::stores::RouterStatus;

/// `GET /v1/routers` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterList {
    /// This instance's region (new calls go to live routers of it).
    pub region: String,
    /// The region's reserve routers take new calls (the regular pool's load passed
    /// `calls.reserve_threshold` and has not yet fallen below `calls.reserve_release`).
    #[serde(default)]
    pub reserves_in_use: bool,
    /// Every registered router, by id.
    pub routers: Vec<RouterStatus>,
}

/// `GET /v1/routers`.
pub async fn list(State(st): State<Arc<CallsState>>, headers: HeaderMap) -> Result<Json<RouterList>, ApiError> {
    check_router_secret(&st, &headers)?;
    let routers = st.routers.list().await?;
    let reserves_in_use = st.routers.reserves_in_use().await?;
    Ok(Json(RouterList { region: st.routers.region().to_owned(), reserves_in_use, routers }))
}

/// `PATCH /v1/routers/{id}` body.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterChange {
    /// Take no new calls (true) or take them again (false).
    pub draining: bool,
    /// With `draining: true`: seconds after which the router's calls are moved to other
    /// routers (their participants re-join there), if it is still draining then.
    #[serde(default)]
    pub deadline_secs: Option<u64>,
}

/// `PATCH /v1/routers/{id}`.
pub async fn patch(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<RouterChange>,
) -> Result<Json<RouterStatus>, ApiError> {
    check_router_secret(&st, &headers)?;
    if change.deadline_secs.is_some() && !change.draining {
        return Err(ApiError::invalid("deadline_secs", "a deadline goes with draining: true"));
    }
    if change.deadline_secs.is_some_and(|d| d > 7 * 24 * 3600) {
        return Err(ApiError::invalid("deadline_secs", "deadline_secs must be at most a week (604800)"));
    }
    let deadline = change.deadline_secs.map(std::time::Duration::from_secs);
    match st.routers.set_draining(&id, change.draining, deadline).await? {
        Some(s) => {
            tracing::info!(router = %id, draining = s.draining, deadline_secs = ?change.deadline_secs, "router draining flag set by an operator");
            Ok(Json(s))
        }
        None => Err(ApiError::not_found("no such router is registered")),
    }
}

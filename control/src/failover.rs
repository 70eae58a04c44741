//! Failover and drain deadlines (#16 items 3 and 4): moving a call off a router.
//!
//! - A router silent for `router.dead_after_ms` (by the store's clock) is dead. Every calls
//!   instance runs a sweeper ([`spawn_sweeper`]) that moves the calls of dead routers onto live
//!   ones of the same region ([`RouterStore::move_call`](crate::stores::RouterStore::move_call):
//!   one atomic step, only while the call is still on the dead router, so of several instances
//!   one moves each call). A re-join through a dead router's call moves it too, eagerly.
//! - Participants re-join through calls: `POST /v1/calls/{id}/rejoin` with
//!   `{"participant_id"}` hands a native participant a token for the call's router now (the
//!   same participant id); web pages delete their WHIP/WHEP sessions and post new ones.
//! - A dead leaf (a router holding participants of calls homed on another: native joins and
//!   WHIP/WHEP legs placed there, [`crate::cascade`]) is unlinked from each call's home at
//!   once; its native participants re-join through `/rejoin`, placed again (on the home or
//!   another leaf); those still recorded on it after the grace are dropped from the store
//!   ([`crate::leg_router::drop_held_on`]).
//! - `calls.failover_grace_ms` after a move, the participants the new router does not hold
//!   (and who joined before the move) are dropped from the call store ([`settle`]): the store
//!   lists the participants that came back.
//! - `PATCH /v1/routers/{id}` with `{"draining": true, "deadline_secs": N}` stores the deadline
//!   with the router in the shared store (by the store's clock); once it has passed, while the
//!   router is still draining, every instance's sweeper moves its calls the same way (one
//!   atomic move per call, whichever instance took the drain, even if that one has stopped).
//!   The router's next heartbeat answer no longer lists them, so it ends them, and its
//!   clients, told the call ended, ask calls and find it on another router.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::Json;
use corecast_proto::token::Role;
use serde::Deserialize;
use uuid::Uuid;

use crate::calls::{grant, parse_call_id, user, CallsState, JoinResponse};
use crate::error::{ApiError, ApiJson};
use crate::stores::{CallError, Moved, RouterRef};
use crate::util;

/// Starts this instance's sweeper: every half of the dead-router time-to-live (at most 1 s) it
/// moves the calls of dead routers and of draining routers past their deadline. It stops when
/// the state is dropped or the returned task is aborted (a stopped instance moves nothing).
pub fn spawn_sweeper(st: &Arc<CallsState>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(st);
    let every = (st.routers.ttl() / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
    tokio::spawn(async move {
        // Dead routers found without calls: skipped until they are live again (no call is
        // placed on a dead router), so a long-gone router costs one read per sweep, not two.
        let mut quiet: HashSet<String> = HashSet::new();
        loop {
            tokio::time::sleep(every).await;
            let Some(st) = Weak::upgrade(&weak) else { return };
            sweep_once(&st, &mut quiet).await;
        }
    })
}

async fn sweep_once(st: &Arc<CallsState>, quiet: &mut HashSet<String>) {
    let routers = match st.routers.list().await {
        Ok(r) => r,
        Err(e) => return tracing::warn!(error = %e, "failover sweep: router registry unreadable"),
    };
    for r in routers {
        if r.live {
            quiet.remove(&r.reg.id);
            if r.draining && r.drain_due {
                move_drained(st, &r).await;
            }
            continue;
        }
        if quiet.contains(&r.reg.id) {
            continue;
        }
        let calls = match st.calls.by_router(&r.reg.id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(router = %r.reg.id, error = %e, "failover sweep: calls unreadable");
                continue;
            }
        };
        // Participants held on it for calls homed elsewhere (cascading): dropped after the grace.
        let legs = crate::leg_router::drop_held_on(st, &r).await;
        if calls.is_empty() {
            if legs == 0 {
                quiet.insert(r.reg.id.clone());
            }
            continue;
        }
        tracing::warn!(router = %r.reg.id, silent_ms = r.last_seen_ms_ago, calls = calls.len(), "router dead; moving its calls");
        for c in calls {
            let _ = move_off(st, c.id, &r.reg.id, &r.reg.region, "dead").await;
        }
    }
}

/// Moves call `id` off router `from` (of `region`; `reason`: `dead` or `drained`, counted in
/// `corecast_calls_moved_total`); when this instance moved it, schedules the
/// drop of the participants who do not come back. Returns the router the call is on afterwards
/// (`None`: it stays on `from`, no live router could take it).
pub async fn move_off(
    st: &Arc<CallsState>,
    id: Uuid,
    from: &str,
    region: &str,
    reason: &'static str,
) -> Result<Option<RouterRef>, CallError> {
    let moved_at = util::now_ms();
    match st.routers.move_call(id, from, region).await {
        Ok(Moved::Moved(to)) => {
            tracing::info!(call_id = %id, from, to = %to.id, reason, "call moved to another router");
            st.metrics().call_moved(reason);
            crate::leg_router::drop_off_home_legs(st, id, &to).await;
            tokio::spawn(settle(st.clone(), id, to.clone(), moved_at));
            Ok(Some(to))
        }
        Ok(Moved::Already(r)) => Ok(Some(r)),
        Ok(Moved::Nowhere) => {
            tracing::warn!(call_id = %id, from, "no live router can take the call; it stays");
            Ok(None)
        }
        Err(e) => {
            if !matches!(e, CallError::NotFound) {
                tracing::warn!(call_id = %id, from, error = %e, "moving the call failed");
            }
            Err(e)
        }
    }
}

/// `calls.failover_grace_ms` after call `id` moved to router `to` at `moved_at`: drops from
/// the store its participants who joined before the move and are not on `to` (they did not
/// come back). Nothing happens if the call moved again (the next move settles it) or `to`
/// cannot be read (3 tries, 1 s apart).
pub async fn settle(st: Arc<CallsState>, id: Uuid, to: RouterRef, moved_at: u64) {
    tokio::time::sleep(Duration::from_millis(st.cfg.failover_grace_ms)).await;
    let Ok(Some(call)) = st.calls.get(id).await else { return };
    if call.router.id != to.id {
        return;
    }
    let admin = st.routers.admin_of(&to).await;
    let mut tries = 0;
    let held = loop {
        tries += 1;
        match st.router_client.list_calls(&admin).await {
            Ok(h) => break h,
            Err(e) if tries >= 3 => {
                let m = "cannot read the new router's calls; participants that did not come back stay listed";
                return tracing::warn!(call_id = %id, router = %to.id, error = %e, "{m}");
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let on_router: HashSet<u64> =
        held.calls.iter().filter(|c| c.call_id == id).flat_map(|c| c.participants.iter().copied()).collect();
    for p in call.participants {
        // Re-joined onto a leaf of the new home: that leaf's events and failover cover it.
        let on_leaf = p.router.as_deref().is_some_and(|r| r != to.id);
        if p.joined_at <= moved_at && !on_leaf && !on_router.contains(&p.participant_id) {
            if let Ok(true) = st.calls.drop_participant(id, p.participant_id).await {
                tracing::info!(call_id = %id, participant_id = p.participant_id, "participant did not come back after the move; dropped");
            }
        }
    }
}

/// A live router drained past its deadline (by the store's clock): moves its calls. Every
/// instance's sweeper may try at once; the store moves each call once.
async fn move_drained(st: &Arc<CallsState>, r: &crate::stores::RouterStatus) {
    let calls = match st.calls.by_router(&r.reg.id).await {
        Ok(c) => c,
        Err(e) => return tracing::warn!(router = %r.reg.id, error = %e, "drain deadline: calls unreadable"),
    };
    if calls.is_empty() {
        return;
    }
    tracing::info!(router = %r.reg.id, calls = calls.len(), "drain deadline passed; moving its calls");
    for c in calls {
        let _ = move_off(st, c.id, &r.reg.id, &r.reg.region, "drained").await;
    }
}

/// `POST /v1/calls/{id}/rejoin` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejoinRequest {
    /// The participant (of the caller's) whose router stopped answering.
    pub participant_id: u64,
}

/// `POST /v1/calls/{id}/rejoin`: a native participant whose router stopped answering (or ended
/// the call) gets a new token, for the same participant, on the router the call is on now; a
/// call still on a dead router is moved first.
pub async fn rejoin(
    State(st): State<Arc<CallsState>>,
    headers: HeaderMap,
    ext: Extensions,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RejoinRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let uid = user(&st, &headers).await?;
    let id = parse_call_id(&id)?;
    let call = st.calls.get(id).await?.ok_or_else(|| ApiError::from(CallError::NotFound))?;
    let p = call
        .participants
        .iter()
        .find(|p| p.participant_id == req.participant_id)
        .ok_or_else(|| ApiError::from(CallError::NoParticipant))?;
    if p.user_id != uid {
        return Err(CallError::NotYours.into());
    }
    let role = match p.role.as_str() {
        "publisher" => Role::Publisher,
        "subscriber" => Role::Subscriber,
        _ => {
            let m = "only native participants re-join; a WebRTC leg posts its WHIP/WHEP offer again";
            return Err(ApiError::new(StatusCode::CONFLICT, "not_native", m));
        }
    };
    let mut router = call.router.clone();
    if let Ok(Some(s)) = st.routers.get(&router.id).await {
        if !s.live {
            if let Ok(Some(to)) = move_off(&st, id, &router.id, &s.reg.region, "dead").await {
                router = to;
            }
        }
    }
    if let Some(leaf) = p.router.as_deref() {
        crate::leg_router::unlink_if_dead(&st, id, &router, leaf).await;
    }
    // Placed again like a join: on the home, or a leaf linked to it (recorded either way).
    let near = st.region_of_client(&headers, &ext);
    let router =
        crate::cascade::place_participant(&st, id, &router, p.participant_id, p.router.as_deref(), near.as_deref())
            .await?;
    tracing::info!(call_id = %id, participant_id = p.participant_id, router = %router.id, "re-joined");
    Ok(Json(grant(&st, id, p.participant_id, role, &router).await))
}

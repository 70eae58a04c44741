//! Which router holds a WHIP/WHEP leg (cascading, #16 item 2).
//!
//! - A leg is placed exactly like a native join ([`crate::cascade::place_join`]): on the
//!   call's home, or, when the participant's address is in another region that has a router
//!   or the home is draining or loaded past `calls.cascade_threshold`, on another router that
//!   is linked to the home before the offer is forwarded to it. The composite view
//!   (`WHEP ?view=composite`) stays on the home: the codec pool's mixer joins the call's home
//!   and the composite is asked for there (a leaf does not ask the pool for it).
//! - The participant record keeps the router when it is not the home
//!   ([`Participant::router`]); `PATCH` (trickle, ICE restart) and `DELETE` go to it, and a
//!   leaf told to drop its last participant closes its link to the home itself.
//! - The failover sweep, finding a router dead, tells each call's home with participants on
//!   it to close its link to it (its publishers leave the other links), and after the
//!   failover grace drops from the store the participants still held on it
//!   ([`drop_held_on`]): native participants re-join through `/rejoin` in the grace (placed
//!   again, [`crate::cascade::place_participant`]); a web page re-posts its offers, as after
//!   a home's failover. When a call's home dies (or is drained past its deadline) and the call moves,
//!   its legs on leaves, linked to the old home only, are dropped and their leaves told
//!   ([`drop_off_home_legs`]).

use uuid::Uuid;

use crate::calls::CallsState;
use crate::routers::RouterClient;
use crate::stores::{Call, Participant, RouterRef, RouterStatus};

/// Where a new leg of `call` goes (`composite`: a WHEP of the composite view), for a
/// participant in region `near` (if known). `None` in the result's second half: the home.
pub(crate) async fn place_leg(
    st: &CallsState,
    call: &Call,
    composite: bool,
    near: Option<&str>,
) -> (RouterRef, Option<String>) {
    if composite {
        return (call.router.clone(), None);
    }
    let r = crate::cascade::place_join(st, call.id, &call.router, near).await;
    let held = (r.id != call.router.id).then(|| r.id.clone());
    (r, held)
}

/// The admin URL of the router holding participant `p` of `call`: its leaf when the record
/// names one the registry knows, else the call's home.
pub(crate) async fn admin_holding(st: &CallsState, call: &Call, p: &Participant) -> String {
    if let Some(id) = p.router.as_deref().filter(|id| *id != call.router.id) {
        match st.routers.get(id).await {
            Ok(Some(s)) => return s.reg.admin,
            Ok(None) => {
                tracing::warn!(call_id = %call.id, router = id, "the leg's router is not registered; trying the call's home")
            }
            Err(e) => {
                tracing::warn!(call_id = %call.id, router = id, error = %e, "router registry unreadable; trying the call's home")
            }
        }
    }
    st.routers.admin_of(&call.router).await
}

/// A leaf found dead: has each call's home close its link to it and, once the failover grace
/// has passed since it died (`router.dead_after_ms` + `calls.failover_grace_ms` of silence, by
/// the store's clock: stateless, so whichever instance sweeps does it), drops from the store
/// the participants still recorded on it. A native participant that re-joined in the grace
/// (`/rejoin` places it again and records where) is no longer on it; a WebRTC leg, whose
/// page posts a new offer, is dropped then. Returns how many participants are still held on
/// it (0: nothing left to do for it).
pub(crate) async fn drop_held_on(st: &CallsState, dead: &RouterStatus) -> usize {
    let held = match st.calls.held_on(&dead.reg.id).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(router = %dead.reg.id, error = %e, "failover sweep: participants on the router unreadable");
            return 0;
        }
    };
    let grace = st.routers.ttl().as_millis() as u64 + st.cfg.failover_grace_ms;
    let grace_over = dead.last_seen_ms_ago >= grace;
    let mut unlinked: Vec<Uuid> = Vec::new();
    for &(id, pid) in &held {
        if grace_over {
            if let Ok(true) = st.calls.drop_participant(id, pid).await {
                tracing::info!(call_id = %id, participant_id = pid, router = %dead.reg.id, "participant on a dead router did not come back; dropped");
            }
        }
        if unlinked.contains(&id) {
            continue;
        }
        unlinked.push(id);
        let Ok(Some(call)) = st.calls.get(id).await else { continue };
        unlink(st, id, &call.router, dead).await;
    }
    if grace_over {
        0
    } else {
        held.len()
    }
}

/// Has `home`, call `id`'s home, close its link to the leaf `dead`.
async fn unlink(st: &CallsState, id: Uuid, home: &RouterRef, dead: &RouterStatus) {
    let leaf = RouterRef { id: dead.reg.id.clone(), address: dead.reg.address.clone(), admin: dead.reg.admin.clone() };
    // The dead leaf's address for the call, as it gave it when linked.
    let peer = crate::routers::media_address(&leaf, Some(dead), id);
    let admin = st.routers.admin_of(home).await;
    if let Err(e) = st.router_client.close_pipe(&admin, id, &peer).await {
        tracing::warn!(call_id = %id, router = %dead.reg.id, error = %e, "could not unlink the call's home from a dead router");
    }
}

/// A native participant of call `id` (home `home`) re-joins from leaf `leaf`: when that leaf
/// is dead, the home closes its link to it first, so the participant's streams, known to the
/// home as the link's, are its own again when it re-joins there (the sweeper would close it
/// too, up to a sweep later).
pub(crate) async fn unlink_if_dead(st: &CallsState, id: Uuid, home: &RouterRef, leaf: &str) {
    if leaf == home.id {
        return;
    }
    if let Ok(Some(s)) = st.routers.get(leaf).await {
        if !s.live {
            unlink(st, id, home, &s).await;
        }
    }
}

/// Call `id` has just moved to router `to` (its home died or was drained past its deadline):
/// the legs held on other routers hang off the old home's links, so they are dropped from the
/// store and their leaves told to drop them (a leaf left empty closes its link); their pages
/// post their offers again, placed anew against the new home. A leg held on `to` itself is now
/// on the home and stays. Returns how many it dropped.
pub(crate) async fn drop_off_home_legs(st: &CallsState, id: Uuid, to: &RouterRef) -> usize {
    let Ok(Some(call)) = st.calls.get(id).await else { return 0 };
    let mut dropped = 0;
    for p in &call.participants {
        if p.router.as_deref().is_none_or(|r| r == to.id) {
            continue;
        }
        if let Ok(true) = st.calls.drop_participant(id, p.participant_id).await {
            dropped += 1;
            tracing::info!(call_id = %id, participant_id = p.participant_id, router = ?p.router, "leg on a leaf of the old home dropped");
            let admin = admin_holding(st, &call, p).await;
            let client = st.router_client.clone();
            let pid = p.participant_id;
            tokio::spawn(async move {
                client.remove_participant(&admin, id, pid).await;
            });
        }
    }
    dropped
}

impl RouterClient {
    /// `DELETE {admin}/v1/calls/{id}/pipes/{peer}`: the router closes its link to `peer`.
    pub async fn close_pipe(&self, admin: &str, call_id: Uuid, peer: &str) -> Result<(), String> {
        let url = format!("{}/v1/calls/{call_id}/pipes/{peer}", admin.trim_end_matches('/'));
        let r =
            self.http.delete(url).bearer_auth(&self.secret).send().await.map_err(|e| e.without_url().to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("router answered {}", r.status()))
        }
    }
}

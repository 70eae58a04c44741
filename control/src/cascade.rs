//! Cascading (#16 item 2): one call over several routers.
//!
//! A call lives on its home router (where it was placed when it started). A join goes
//! there unless the participant is in another region (by `calls.regions_file`, see
//! [`crate::geo`]) that has a router to take it, or the home cannot take it: it is
//! draining, or its load has reached `calls.cascade_threshold`. Then the participant is
//! placed on the least-loaded live router of its region, else another of this instance's
//! region (reserve routers only while the reserves are in use),
//! and before the join is answered both routers are told to link their shares of the call
//! (`POST {admin}/v1/calls/{id}/pipes`, router secret): the leaf names the home as its
//! `uplink`. The routers form a star around the home, so every packet crosses each
//! router-to-router link once and no loop can form (see `corecast_core`'s `cascade`). The
//! leaf closes its link itself when its last participant leaves; the next join placed
//! there opens it again (opening is idempotent on the routers). Nothing is stored: the
//! routers hold the links.

use std::time::Duration;

use corecast_proto::pipe_seal::{PipeKey, PIPE_KEY_LEN};
use uuid::Uuid;

use crate::calls::CallsState;
use crate::routers::RouterClient;
use crate::stores::{CallError, RouterRef, RouterStatus};

/// Where a join for call `id`, whose home is `home`, from a participant in region `near`
/// (if known) goes: the home, or another router now linked to it.
pub(crate) async fn place_join(st: &CallsState, id: Uuid, home: &RouterRef, near: Option<&str>) -> RouterRef {
    let Some(leaf) = leaf_for(st, home, near).await else { return home.clone() };
    let leaf_ref = RouterRef { id: leaf.reg.id.clone(), address: leaf.reg.address.clone(), admin: leaf.reg.admin };
    let home_admin = st.routers.admin_of(home).await;
    match link(&st.router_client, id, &home_admin, &leaf_ref.admin).await {
        Ok(()) => {
            tracing::info!(call_id = %id, home = %home.id, leaf = %leaf_ref.id, "join placed on another router, linked to the call's home");
            leaf_ref
        }
        Err(e) => {
            tracing::warn!(call_id = %id, home = %home.id, leaf = %leaf_ref.id, error = %e, "could not link the routers; the join goes to the call's home");
            home.clone()
        }
    }
}

/// Places native participant `pid` of call `id` (home `home`; held now on `was`, `None`: the
/// home or nowhere yet) like a join ([`place_join`]) and records in the store where it is
/// held when that changed ([`crate::stores::Participant::router`]: a leaf, or `None` for the
/// home), so a leaf's events count for it and a leaf's failover covers it.
pub(crate) async fn place_participant(
    st: &CallsState,
    id: Uuid,
    home: &RouterRef,
    pid: u64,
    was: Option<&str>,
    near: Option<&str>,
) -> Result<RouterRef, CallError> {
    let r = place_join(st, id, home, near).await;
    let held = (r.id != home.id).then_some(r.id.as_str());
    if held != was {
        st.calls.set_router(id, pid, held).await?;
    }
    Ok(r)
}

/// The router a join goes to instead of the call's home: one of the participant's region
/// when the home is in another, else, if the home cannot take it, another of this
/// instance's region.
async fn leaf_for(st: &CallsState, home: &RouterRef, near: Option<&str>) -> Option<RouterStatus> {
    let threshold = st.cfg.cascade_threshold;
    let home_status = st.routers.status_of(home).await?;
    let elsewhere = near.filter(|r| *r != home_status.reg.region);
    let home_full = home_status.draining || home_status.reg.load >= threshold;
    if elsewhere.is_none() && !home_full {
        return None;
    }
    let routers = st.routers.list().await.ok()?;
    let reserves = st.routers.reserves_in_use().await.unwrap_or(false);
    let least_loaded_in = |region: &str| {
        routers
            .iter()
            .filter(|r| {
                r.live
                    && !r.draining
                    && r.reg.id != home.id
                    && r.reg.region == region
                    && (!r.reg.reserve || reserves)
                    && r.reg.load < threshold
            })
            .min_by(|a, b| a.reg.load.total_cmp(&b.reg.load))
            .cloned()
    };
    if let Some(r) = elsewhere.and_then(least_loaded_in) {
        return Some(r);
    }
    home_full.then(|| least_loaded_in(st.routers.region())).flatten()
}

/// Links the home's and the leaf's shares of call `id`: the leaf's address for the call,
/// the home told to link to it, the leaf told to link to the home (its uplink), in that
/// order (the leaf seals with a new key at once, the home once the leaf used it), both
/// with a fresh random key for this opening: every datagram on the link is sealed with it
/// (`corecast_proto::pipe_seal`). The key goes only to the two routers, never to a log.
async fn link(client: &RouterClient, id: Uuid, home_admin: &str, leaf_admin: &str) -> Result<(), String> {
    let key = link_key();
    let leaf_addr = client.pipe_address(leaf_admin, id).await?;
    let home_addr = client.open_pipe(home_admin, id, &leaf_addr, false, &key).await?;
    client.open_pipe(leaf_admin, id, &home_addr, true, &key).await?;
    Ok(())
}

/// A fresh link key (the OS CSPRNG).
fn link_key() -> PipeKey {
    use rand::RngCore as _;
    let mut b = [0u8; PIPE_KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut b);
    PipeKey::new(b)
}

impl RouterClient {
    /// `GET {admin}/v1/calls/{id}/pipe`: where the router takes the call's pipe datagrams.
    pub async fn pipe_address(&self, admin: &str, call_id: Uuid) -> Result<String, String> {
        let url = format!("{}/v1/calls/{call_id}/pipe", admin.trim_end_matches('/'));
        let rb = self.http.get(url).bearer_auth(&self.secret).timeout(Duration::from_secs(2));
        address_of(rb.send().await).await
    }

    /// `POST {admin}/v1/calls/{id}/pipes {"peer", "uplink", "key"}`: links the router's
    /// share of the call to the router at `peer` with the link's `key`; returns this
    /// router's address for the call.
    pub async fn open_pipe(
        &self,
        admin: &str,
        call_id: Uuid,
        peer: &str,
        uplink: bool,
        key: &PipeKey,
    ) -> Result<String, String> {
        let url = format!("{}/v1/calls/{call_id}/pipes", admin.trim_end_matches('/'));
        let body = serde_json::json!({ "peer": peer, "uplink": uplink, "key": key.to_hex() });
        let rb = self.http.post(url).json(&body).bearer_auth(&self.secret).timeout(Duration::from_secs(2));
        address_of(rb.send().await).await
    }
}

/// The `address` of a router's 200 answer.
async fn address_of(r: Result<reqwest::Response, reqwest::Error>) -> Result<String, String> {
    let r = r.map_err(|e| e.without_url().to_string())?;
    if !r.status().is_success() {
        return Err(format!("router answered {}", r.status()));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| e.without_url().to_string())?;
    v["address"].as_str().map(str::to_owned).ok_or_else(|| "router answer without an address".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_opening_draws_its_own_key_and_debug_shows_none() {
        let keys: Vec<PipeKey> = (0..64).map(|_| link_key()).collect();
        let mut ids: Vec<u32> = keys.iter().map(PipeKey::id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), keys.len(), "64 draws, 64 keys");
        for k in &keys {
            assert_eq!(format!("{k:?}"), "PipeKey(..)");
            assert_eq!(k.to_hex().len(), 64);
        }
    }
}

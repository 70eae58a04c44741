//! Router registry (placement) and the calls → router admin client.
//!
//! Routers register and heart-beat with `POST /v1/routers`; a router not heard from for
//! 3× the heartbeat interval is not chosen for new calls. Without any live router the
//! statically configured default router is used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::stores::RouterRef;

/// What a router reports when it registers or heart-beats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterRegistration {
    /// Router id, stable across restarts.
    pub id: String,
    /// Media address `host:port` for clients.
    pub address: String,
    /// Cores used for media.
    pub cores: u32,
    /// Load, 0.0 (idle) to 1.0 (full).
    pub load: f64,
    /// Admin base URL (`http://host:port`).
    pub admin: String,
    /// Every worker's media address, in worker order (a router with several
    /// workers places each call on one of them, see `corecast_proto::placement`).
    #[serde(default)]
    pub workers: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    reg: RouterRegistration,
    last_seen: Instant,
    /// Calls placed since the last heartbeat (a load estimate until the router reports).
    placed: u32,
}

/// Live routers, in memory (routers re-register every heartbeat, so a restarted calls
/// service learns them again within one interval).
#[derive(Debug)]
pub struct RouterRegistry {
    routers: Mutex<HashMap<String, Entry>>,
    default: RouterRef,
    ttl: Duration,
}

impl RouterRegistry {
    /// A registry with a fallback router and the heartbeat interval.
    pub fn new(default: RouterRef, heartbeat: Duration) -> Self {
        RouterRegistry { routers: Mutex::new(HashMap::new()), default, ttl: heartbeat * 3 }
    }

    /// Records a registration or heartbeat; returns true when the router was not known
    /// (new, restarted, or previously expired).
    pub fn heartbeat(&self, reg: RouterRegistration) -> bool {
        let Ok(mut m) = self.routers.lock() else { return false };
        let fresh = m.get(&reg.id).is_none_or(|e| e.last_seen.elapsed() >= self.ttl);
        m.insert(reg.id.clone(), Entry { reg, last_seen: Instant::now(), placed: 0 });
        fresh
    }

    /// Chooses the least-loaded live router (load per core, plus calls placed since its
    /// last report), or the default router when none is live.
    pub fn place(&self) -> RouterRef {
        let Ok(mut m) = self.routers.lock() else { return self.default.clone() };
        let ttl = self.ttl;
        let best = m
            .values_mut()
            .filter(|e| e.last_seen.elapsed() < ttl)
            .min_by(|a, b| score(a).total_cmp(&score(b)).then_with(|| a.reg.id.cmp(&b.reg.id)));
        match best {
            Some(e) => {
                e.placed = e.placed.saturating_add(1);
                RouterRef { id: e.reg.id.clone(), address: e.reg.address.clone(), admin: e.reg.admin.clone() }
            }
            None => self.default.clone(),
        }
    }

    /// The admin URL now known for a router id (it may have moved since the call started).
    pub fn admin_of(&self, r: &RouterRef) -> String {
        if let Ok(m) = self.routers.lock() {
            if let Some(e) = m.get(&r.id) {
                return e.reg.admin.clone();
            }
        }
        r.admin.clone()
    }

    /// The media address a client should join `call` on: the owning worker's
    /// when the router has several (it would redirect there anyway), else the
    /// router's address.
    pub fn media_address(&self, r: &RouterRef, call: uuid::Uuid) -> String {
        if let Ok(m) = self.routers.lock() {
            if let Some(e) = m.get(&r.id) {
                let n = e.reg.workers.len();
                if n > 1 {
                    let w = corecast_proto::placement::worker_for(&corecast_proto::token::CallId(*call.as_bytes()), n);
                    return e.reg.workers[w].clone();
                }
            }
        }
        r.address.clone()
    }

    /// The default router.
    pub fn default_router(&self) -> &RouterRef {
        &self.default
    }
}

fn score(e: &Entry) -> f64 {
    let cores = f64::from(e.reg.cores.max(1));
    e.reg.load.max(0.0) + f64::from(e.placed) * 0.01 / cores
}

/// Tells routers about ended calls: `DELETE {admin}/v1/calls/{id}`, best effort with retries.
#[derive(Debug, Clone)]
pub struct RouterClient {
    http: reqwest::Client,
    secret: String,
    retries: u32,
}

impl RouterClient {
    /// A client presenting `secret` as bearer token.
    pub fn new(secret: String) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().unwrap_or_default();
        RouterClient { http, secret, retries: 3 }
    }

    /// Sends the end of a call; retries with backoff; logs and gives up after the last try.
    /// Returns whether the router acknowledged (2xx or 404: already gone).
    pub async fn end_call(&self, admin: &str, call_id: Uuid) -> bool {
        let url = format!("{}/v1/calls/{call_id}", admin.trim_end_matches('/'));
        self.delete_with_retries(&url, "call end").await
    }

    /// Tells the router a participant left through the calls service, so its
    /// media stops at once instead of at the router's silence timeout.
    pub async fn remove_participant(&self, admin: &str, call_id: Uuid, participant_id: u64) -> bool {
        let url = format!("{}/v1/calls/{call_id}/participants/{participant_id}", admin.trim_end_matches('/'));
        self.delete_with_retries(&url, "participant removal").await
    }

    async fn delete_with_retries(&self, url: &str, what: &str) -> bool {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=self.retries {
            match self.http.delete(url).bearer_auth(&self.secret).send().await {
                Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => return true,
                Ok(r) => tracing::warn!(%url, status = %r.status(), attempt, "router refused {what}"),
                Err(e) => tracing::warn!(%url, error = %e, attempt, "router unreachable for {what}"),
            }
            if attempt < self.retries {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        tracing::error!(%url, "giving up telling the router about the {what}; its silence timeout will drop the participants");
        false
    }

    /// Forwards a WHIP/WHEP offer: `POST {admin}/v1/calls/{call_id}/webrtc` with `body`
    /// (`{participant_id, role, subscribe, offer, expires_ms}`). One try: the caller holds
    /// an HTTP client waiting, and a refused leg is released at once.
    pub async fn open_webrtc(
        &self,
        admin: &str,
        call_id: Uuid,
        body: &serde_json::Value,
    ) -> Result<WebRtcLeg, RouterReply> {
        let url = format!("{}/v1/calls/{call_id}/webrtc", admin.trim_end_matches('/'));
        let r = self.webrtc_request(self.http.post(url).json(body)).await?;
        if r.status() != reqwest::StatusCode::CREATED {
            return Err(refused(r).await);
        }
        r.json().await.map_err(|e| RouterReply::Unreachable(format!("router answer: {e}")))
    }

    /// Forwards a trickle-ICE / ICE-restart fragment: `PATCH {admin}/v1/calls/{call_id}/webrtc/{session}`.
    /// `Ok(None)`: applied (204); `Ok(Some(fragment))`: the router's new ICE credentials (200).
    pub async fn patch_webrtc(
        &self,
        admin: &str,
        call_id: Uuid,
        session: &str,
        fragment: &str,
    ) -> Result<Option<String>, RouterReply> {
        let session: String = session.bytes().map(|b| format!("%{b:02X}")).collect();
        let url = format!("{}/v1/calls/{call_id}/webrtc/{session}", admin.trim_end_matches('/'));
        let r = self.webrtc_request(self.http.patch(url).json(&serde_json::json!({ "fragment": fragment }))).await?;
        match r.status() {
            reqwest::StatusCode::NO_CONTENT => Ok(None),
            reqwest::StatusCode::OK => {
                let v: serde_json::Value =
                    r.json().await.map_err(|e| RouterReply::Unreachable(format!("router answer: {e}")))?;
                Ok(v["fragment"].as_str().map(str::to_owned))
            }
            _ => Err(refused(r).await),
        }
    }

    async fn webrtc_request(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, RouterReply> {
        rb.bearer_auth(&self.secret)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| RouterReply::Unreachable(e.without_url().to_string()))
    }

    /// Fetches the calls a router holds (`GET {admin}/v1/calls`).
    pub async fn list_calls(&self, admin: &str) -> Result<RouterCalls, reqwest::Error> {
        let url = format!("{}/v1/calls", admin.trim_end_matches('/'));
        self.http.get(url).bearer_auth(&self.secret).send().await?.error_for_status()?.json().await
    }
}

/// The router's answer to a WebRTC offer (`201 {"answer", "session"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRtcLeg {
    /// The SDP answer.
    pub answer: String,
    /// The router's session id (its ICE ufrag).
    pub session: String,
}

/// Why a WebRTC request to the router did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterReply {
    /// The router answered with a refusal: 400 malformed, 404 no such call or session,
    /// 409 call full, 422 unsupported (other statuses are mapped to 502), and its message.
    Refused(u16, String),
    /// The router could not be reached or answered nonsense.
    Unreachable(String),
}

async fn refused(r: reqwest::Response) -> RouterReply {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(text);
    match status {
        400 | 404 | 409 | 422 => RouterReply::Refused(status, msg),
        _ => {
            tracing::warn!(status, message = %msg, "router refused a WebRTC request unexpectedly");
            RouterReply::Refused(502, format!("the call's router refused the request ({status})"))
        }
    }
}

/// A call as the router link describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterCall {
    /// Call id.
    pub call_id: Uuid,
    /// Participant ids.
    pub participants: Vec<u64>,
}

/// `{"calls": [...]}`, both in `POST /v1/routers` responses and in the router's `GET /v1/calls`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RouterCalls {
    /// Calls.
    pub calls: Vec<RouterCall>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, load: f64) -> RouterRegistration {
        RouterRegistration {
            id: id.into(),
            address: format!("{id}:1"),
            cores: 2,
            load,
            admin: format!("http://{id}:2"),
            workers: vec![],
        }
    }

    #[test]
    fn clients_are_sent_to_the_worker_that_owns_the_call() {
        let d = RouterRef { id: "default".into(), address: "d:1".into(), admin: "http://d:2".into() };
        let r = RouterRegistry::new(d.clone(), Duration::from_secs(5));
        let mut multi = reg("m", 0.0);
        multi.workers = vec!["m:1".into(), "m:2".into()];
        r.heartbeat(multi);
        let placed = r.place();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let call = uuid::Uuid::new_v4();
            let a = r.media_address(&placed, call);
            let w = corecast_proto::placement::worker_for(&corecast_proto::token::CallId(*call.as_bytes()), 2);
            assert_eq!(a, format!("m:{}", w + 1));
            seen.insert(a);
        }
        assert_eq!(seen.len(), 2, "calls land on both workers");
        assert_eq!(r.media_address(&d, uuid::Uuid::new_v4()), "d:1", "single-address routers unchanged");
    }

    #[test]
    fn placement_prefers_least_loaded_live_router() {
        let d = RouterRef { id: "default".into(), address: "d:1".into(), admin: "http://d:2".into() };
        let r = RouterRegistry::new(d.clone(), Duration::from_millis(50));
        assert_eq!(r.place(), d);
        assert!(r.heartbeat(reg("a", 0.5)));
        assert!(r.heartbeat(reg("b", 0.1)));
        assert!(!r.heartbeat(reg("b", 0.1)));
        assert_eq!(r.place().id, "b");
        std::thread::sleep(Duration::from_millis(160));
        assert_eq!(r.place(), d, "silent routers are not chosen");
        assert!(r.heartbeat(reg("a", 0.5)), "expired router counts as fresh");
        assert_eq!(r.place().id, "a");
    }
}

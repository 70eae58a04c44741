//! Router registry (placement) and the calls → router admin client.
//!
//! Routers register and heart-beat with `POST /v1/routers`; a router not heard from for
//! 3× the heartbeat interval is not chosen for new calls. Without any live router the
//! statically configured default router is used. The registry lives in a [`RouterStore`]
//! (Tarantool when configured): every calls instance over the same store sees the same
//! routers, whichever instance a router's heartbeat reached, and places calls consistently.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::stores::RouterRegistration;
use crate::stores::{CallError, NewCall, Placement, RouterRef, RouterStatus, RouterStore, StoreError};

/// The registry as one calls instance uses it: the shared store plus this instance's
/// fallback router, region and time-to-live.
#[derive(Debug)]
pub struct RouterRegistry {
    store: Arc<dyn RouterStore>,
    default: RouterRef,
    region: String,
    ttl: Duration,
    reserve_on: f64,
    reserve_off: f64,
}

impl RouterRegistry {
    /// A registry over `store` with a fallback router, this instance's region and the
    /// heartbeat interval (a router silent for 3 intervals is not live).
    pub fn new(store: Arc<dyn RouterStore>, default: RouterRef, region: String, heartbeat: Duration) -> Self {
        Self::with_ttl(store, default, region, heartbeat * 3)
    }

    /// A registry whose routers are dead (not chosen, their calls moved) after `ttl` of silence.
    pub fn with_ttl(store: Arc<dyn RouterStore>, default: RouterRef, region: String, ttl: Duration) -> Self {
        RouterRegistry { store, default, region, ttl, reserve_on: 0.8, reserve_off: 0.6 }
    }

    /// The same registry with its store's failures counted in `metrics` (store `routers`).
    pub(crate) fn counted(mut self, metrics: &Arc<crate::metrics::ServiceMetrics>) -> Self {
        self.store = crate::stores::counted::Counted::new(self.store, "routers", metrics);
        self
    }

    /// Reserve routers come into use when the regular pool's load passes `on` and go out of
    /// use when it falls below `off` (defaults 0.8 and 0.6; see [`Placement::reserve_on`]).
    pub fn with_reserve_thresholds(mut self, on: f64, off: f64) -> Self {
        self.reserve_on = on;
        self.reserve_off = off;
        self
    }

    /// Whether this instance's region has its reserve routers in use.
    pub async fn reserves_in_use(&self) -> Result<bool, StoreError> {
        self.store.reserves_in_use(&self.region).await
    }

    /// Records a registration or heartbeat; returns true when the router was not live
    /// (new, restarted, or previously expired).
    pub async fn heartbeat(&self, reg: &RouterRegistration) -> Result<bool, StoreError> {
        self.store.heartbeat(reg, self.ttl).await
    }

    /// Starts a call on the least-loaded live router of this instance's region (or the
    /// default router when none is live) in one store operation; returns where it went and
    /// the router's status (`None`: the default router).
    pub async fn start_call(&self, call: &NewCall) -> Result<(RouterRef, Option<RouterStatus>), CallError> {
        self.start_call_in(call, None).await
    }

    /// [`Self::start_call`] in `region` when it has a live router that takes calls (not
    /// draining), else in this instance's region. Whether it has one is read first, so a
    /// region whose last router died since falls back at the next start.
    pub async fn start_call_in(
        &self,
        call: &NewCall,
        region: Option<&str>,
    ) -> Result<(RouterRef, Option<RouterStatus>), CallError> {
        let mut chosen_region = self.region.clone();
        if let Some(r) = region.filter(|r| *r != self.region) {
            let live = self.store.list(self.ttl).await?;
            if live.iter().any(|s| s.reg.region == r && s.live && !s.draining) {
                chosen_region = r.to_owned();
            }
        }
        let placement = Placement {
            region: chosen_region,
            ttl: self.ttl,
            fallback: self.default.clone(),
            reserve_on: self.reserve_on,
            reserve_off: self.reserve_off,
        };
        let chosen = self.store.place_call(call, &placement).await?;
        let r = match &chosen {
            Some(s) => RouterRef { id: s.reg.id.clone(), address: s.reg.address.clone(), admin: s.reg.admin.clone() },
            None => self.default.clone(),
        };
        Ok((r, chosen))
    }

    /// The router's status in the store, if registered; a store failure reads as unknown
    /// (the caller falls back to what the call records).
    pub(crate) async fn status_of(&self, r: &RouterRef) -> Option<RouterStatus> {
        match self.store.get(&r.id, self.ttl).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(router = %r.id, error = %e, "router registry unreadable; using the call's record");
                None
            }
        }
    }

    /// The admin URL now known for a router id (it may have moved since the call started).
    pub async fn admin_of(&self, r: &RouterRef) -> String {
        match self.status_of(r).await {
            Some(s) => s.reg.admin,
            None => r.admin.clone(),
        }
    }

    /// The media address a client should join `call` on: the owning worker's
    /// when the router has several (it would redirect there anyway), else the
    /// router's address.
    pub async fn media_address(&self, r: &RouterRef, call: Uuid) -> String {
        media_address(r, self.status_of(r).await.as_ref(), call)
    }

    /// Every registered router (live or not).
    pub async fn list(&self) -> Result<Vec<RouterStatus>, StoreError> {
        self.store.list(self.ttl).await
    }

    /// Sets a router's draining flag and drain deadline (`deadline` from now; cleared when
    /// undrained); `Ok(None)` when it is not registered.
    pub async fn set_draining(
        &self,
        id: &str,
        draining: bool,
        deadline: Option<Duration>,
    ) -> Result<Option<RouterStatus>, StoreError> {
        self.store.set_draining(id, draining, deadline, self.ttl).await
    }

    /// The router's status in the store (`Ok(None)`: not registered).
    pub async fn get(&self, id: &str) -> Result<Option<RouterStatus>, StoreError> {
        self.store.get(id, self.ttl).await
    }

    /// Moves call `id` off router `from` onto a live router of `region` (see
    /// [`RouterStore::move_call`]).
    pub async fn move_call(&self, id: Uuid, from: &str, region: &str) -> Result<crate::stores::Moved, CallError> {
        self.store.move_call(id, from, region, self.ttl).await
    }

    /// How long a router may be silent before it is dead.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The default router.
    pub fn default_router(&self) -> &RouterRef {
        &self.default
    }

    /// This instance's region.
    pub fn region(&self) -> &str {
        &self.region
    }
}

/// The media address for `call` on router `r` whose registry status is `status`.
pub fn media_address(r: &RouterRef, status: Option<&RouterStatus>, call: Uuid) -> String {
    if let Some(s) = status {
        let n = s.reg.workers.len();
        if n > 1 {
            let w = corecast_proto::placement::worker_for(&corecast_proto::token::CallId(*call.as_bytes()), n);
            return s.reg.workers[w].clone();
        }
    }
    r.address.clone()
}

/// Tells routers about ended calls: `DELETE {admin}/v1/calls/{id}`, best effort with retries.
#[derive(Debug, Clone)]
pub struct RouterClient {
    pub(crate) http: reqwest::Client,
    pub(crate) secret: String,
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

    /// A WHEP leg's new preferences (`{"max_height", "max_fps", "last_n"}`, as the router's
    /// admin API takes them): `PATCH {admin}/v1/calls/{call_id}/webrtc/{session}`, `204`.
    pub async fn set_webrtc_preferences(
        &self,
        admin: &str,
        call_id: Uuid,
        session: &str,
        preferences: &serde_json::Value,
    ) -> Result<(), RouterReply> {
        let session: String = session.bytes().map(|b| format!("%{b:02X}")).collect();
        let url = format!("{}/v1/calls/{call_id}/webrtc/{session}", admin.trim_end_matches('/'));
        let body = serde_json::json!({ "preferences": preferences });
        let r = self.webrtc_request(self.http.patch(url).json(&body)).await?;
        match r.status() {
            reqwest::StatusCode::NO_CONTENT => Ok(()),
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

/// The `POST /v1/routers` answer: the calls placed on the router and, when the registry had
/// it as not live (new, restarted, or declared dead after its heartbeats stopped arriving:
/// a partition), `"fenced": true`: its calls may have moved, so it must end every call it
/// holds that is not listed (fencing on heal; routers that do not know the field end them
/// anyway, all but their shares of calls homed elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RouterBeatReply {
    /// The calls placed on the router and their participants.
    pub calls: Vec<RouterCall>,
    /// The router was not live in the registry until this heartbeat.
    #[serde(default)]
    pub fenced: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::memory::MemoryCallStore;
    use crate::stores::memory_routers::MemoryRouterStore;
    use crate::stores::CallStore;

    fn reg(id: &str, load: f64) -> RouterRegistration {
        RouterRegistration {
            id: id.into(),
            address: format!("{id}:1"),
            cores: 2,
            load,
            admin: format!("http://{id}:2"),
            workers: vec![],
            region: String::new(),
            reserve: false,
        }
    }

    fn registry(ttl: Duration) -> (RouterRegistry, Arc<MemoryCallStore>, RouterRef) {
        let d = RouterRef { id: "default".into(), address: "d:1".into(), admin: "http://d:2".into() };
        let calls = Arc::new(MemoryCallStore::new());
        let store = Arc::new(MemoryRouterStore::new(calls.clone()));
        (RouterRegistry::new(store, d.clone(), String::new(), ttl / 3), calls, d)
    }

    fn new_call() -> NewCall {
        NewCall { id: Uuid::new_v4(), owner: 1, created_at: 1 }
    }

    #[tokio::test]
    async fn clients_are_sent_to_the_worker_that_owns_the_call() {
        let (r, _, d) = registry(Duration::from_secs(15));
        let mut multi = reg("m", 0.0);
        multi.workers = vec!["m:1".into(), "m:2".into()];
        r.heartbeat(&multi).await.unwrap();
        let (placed, _) = r.start_call(&new_call()).await.unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let call = uuid::Uuid::new_v4();
            let a = r.media_address(&placed, call).await;
            let w = corecast_proto::placement::worker_for(&corecast_proto::token::CallId(*call.as_bytes()), 2);
            assert_eq!(a, format!("m:{}", w + 1));
            seen.insert(a);
        }
        assert_eq!(seen.len(), 2, "calls land on both workers");
        assert_eq!(r.media_address(&d, uuid::Uuid::new_v4()).await, "d:1", "single-address routers unchanged");
    }

    #[tokio::test]
    async fn placement_prefers_least_loaded_live_router() {
        let (r, calls, d) = registry(Duration::from_millis(150));
        let c = new_call();
        assert_eq!(r.start_call(&c).await.unwrap(), (d.clone(), None));
        assert_eq!(calls.get(c.id).await.unwrap().unwrap().router, d, "the call is stored where it was placed");
        assert!(r.heartbeat(&reg("a", 0.5)).await.unwrap());
        assert!(r.heartbeat(&reg("b", 0.1)).await.unwrap());
        assert!(!r.heartbeat(&reg("b", 0.1)).await.unwrap());
        assert_eq!(r.start_call(&new_call()).await.unwrap().0.id, "b");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(r.start_call(&new_call()).await.unwrap().0, d, "silent routers are not chosen");
        assert!(r.heartbeat(&reg("a", 0.5)).await.unwrap(), "expired router counts as fresh");
        assert_eq!(r.start_call(&new_call()).await.unwrap().0.id, "a");
        // Draining: no new calls; the flag survives heartbeats.
        assert!(r.set_draining("a", true, None).await.unwrap().unwrap().draining);
        assert!(!r.heartbeat(&reg("a", 0.5)).await.unwrap());
        assert_eq!(r.start_call(&new_call()).await.unwrap().0, d);
        assert_eq!(r.set_draining("nobody", true, None).await.unwrap(), None);
    }
}

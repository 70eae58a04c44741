//! Stores that count their failed calls in a service's metrics
//! (`corecast_store_errors_total{store, op, kind}`, see [`crate::metrics`]).
//!
//! [`Counted`] wraps any backend and passes every call through; the services wrap the stores
//! they are given, so every backend is counted the same way.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    Call, CallError, CallStore, FailureStore, Moved, MuteChange, NewCall, NewUser, Participant, Placement, RouterRef,
    RouterRegistration, RouterStatus, RouterStore, SessionStore, StoreError, User, UserStore,
};
use crate::metrics::ServiceMetrics;

/// A store whose failed calls are counted under `store`.
#[derive(Debug)]
pub struct Counted<S: ?Sized> {
    inner: Arc<S>,
    store: &'static str,
    metrics: Arc<ServiceMetrics>,
}

impl<S: ?Sized> Counted<S> {
    /// Wraps `inner`, counting its failures as `store` (`users`, `sessions`, `failures`, `calls`, `routers`).
    pub fn new(inner: Arc<S>, store: &'static str, metrics: &Arc<ServiceMetrics>) -> Arc<Self> {
        Arc::new(Counted { inner, store, metrics: metrics.clone() })
    }

    fn count<T>(&self, op: &'static str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            if let Some(kind) = kind_of(e) {
                self.metrics.store_error(self.store, op, kind);
            }
        }
        r
    }

    fn count_call<T>(&self, op: &'static str, r: Result<T, CallError>) -> Result<T, CallError> {
        if let Err(CallError::Store(e)) = &r {
            if let Some(kind) = kind_of(e) {
                self.metrics.store_error(self.store, op, kind);
            }
        }
        r
    }
}

/// The `kind` label of a store error; `None` for what is not a failure (a conflict).
fn kind_of(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::Unavailable(_) => Some("unavailable"),
        StoreError::Internal(_) => Some("internal"),
        StoreError::Conflict(_) => None,
    }
}

#[async_trait]
impl UserStore for Counted<dyn UserStore> {
    async fn create(&self, user: NewUser) -> Result<i32, StoreError> {
        self.count("create", self.inner.create(user).await)
    }
    async fn by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        self.count("by_login", self.inner.by_login(login).await)
    }
    async fn by_id(&self, id: i32) -> Result<Option<User>, StoreError> {
        self.count("by_id", self.inner.by_id(id).await)
    }
}

#[async_trait]
impl SessionStore for Counted<dyn SessionStore> {
    async fn put(&self, token: &str, user_id: i32, ttl: Duration) -> Result<(), StoreError> {
        self.count("put", self.inner.put(token, user_id, ttl).await)
    }
    async fn touch(&self, token: &str, ttl: Duration) -> Result<Option<i32>, StoreError> {
        self.count("touch", self.inner.touch(token, ttl).await)
    }
    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        self.count("delete", self.inner.delete(token).await)
    }
}

#[async_trait]
impl FailureStore for Counted<dyn FailureStore> {
    async fn bump(&self, key: &str, window: Duration) -> Result<(), StoreError> {
        self.count("bump", self.inner.bump(key, window).await)
    }
    async fn count(&self, key: &str) -> Result<Option<(u32, Duration)>, StoreError> {
        Counted::count(self, "count", self.inner.count(key).await)
    }
    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.count("clear", self.inner.clear(key).await)
    }
}

#[async_trait]
impl CallStore for Counted<dyn CallStore> {
    async fn start(&self, id: Uuid, owner: i32, created_at: u64, router: &RouterRef) -> Result<(), CallError> {
        self.count_call("start", self.inner.start(id, owner, created_at, router).await)
    }
    async fn join(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError> {
        self.count_call("join", self.inner.join(id, p, cap).await)
    }
    async fn join_leg(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError> {
        self.count_call("join_leg", self.inner.join_leg(id, p, cap).await)
    }
    async fn leave(&self, id: Uuid, user_id: i32) -> Result<u64, CallError> {
        self.count_call("leave", self.inner.leave(id, user_id).await)
    }
    async fn drop_participant(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError> {
        self.count_call("drop_participant", self.inner.drop_participant(id, participant_id).await)
    }
    async fn set_dominant_speaker(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError> {
        self.count_call("set_dominant_speaker", self.inner.set_dominant_speaker(id, participant_id).await)
    }
    async fn set_muted(
        &self,
        id: Uuid,
        participant_id: u64,
        user_id: i32,
        change: MuteChange,
    ) -> Result<Participant, CallError> {
        self.count_call("set_muted", self.inner.set_muted(id, participant_id, user_id, change).await)
    }
    async fn end(&self, id: Uuid, user_id: i32) -> Result<Call, CallError> {
        self.count_call("end", self.inner.end(id, user_id).await)
    }
    async fn get(&self, id: Uuid) -> Result<Option<Call>, CallError> {
        self.count_call("get", self.inner.get(id).await)
    }
    async fn by_router(&self, router_id: &str) -> Result<Vec<Call>, CallError> {
        self.count_call("by_router", self.inner.by_router(router_id).await)
    }
    async fn held_on(&self, router_id: &str) -> Result<Vec<(Uuid, u64)>, CallError> {
        self.count_call("held_on", self.inner.held_on(router_id).await)
    }
    async fn set_router(&self, id: Uuid, participant_id: u64, router: Option<&str>) -> Result<bool, CallError> {
        self.count_call("set_router", self.inner.set_router(id, participant_id, router).await)
    }
}

#[async_trait]
impl RouterStore for Counted<dyn RouterStore> {
    async fn heartbeat(&self, reg: &RouterRegistration, ttl: Duration) -> Result<bool, StoreError> {
        self.count("heartbeat", self.inner.heartbeat(reg, ttl).await)
    }
    async fn place_call(&self, call: &NewCall, placement: &Placement) -> Result<Option<RouterStatus>, CallError> {
        self.count_call("place_call", self.inner.place_call(call, placement).await)
    }
    async fn reserves_in_use(&self, region: &str) -> Result<bool, StoreError> {
        self.count("reserves_in_use", self.inner.reserves_in_use(region).await)
    }
    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<RouterStatus>, StoreError> {
        self.count("get", self.inner.get(id, ttl).await)
    }
    async fn list(&self, ttl: Duration) -> Result<Vec<RouterStatus>, StoreError> {
        self.count("list", self.inner.list(ttl).await)
    }
    async fn set_draining(
        &self,
        id: &str,
        draining: bool,
        deadline: Option<Duration>,
        ttl: Duration,
    ) -> Result<Option<RouterStatus>, StoreError> {
        self.count("set_draining", self.inner.set_draining(id, draining, deadline, ttl).await)
    }
    async fn move_call(&self, id: Uuid, from: &str, region: &str, ttl: Duration) -> Result<Moved, CallError> {
        self.count_call("move_call", self.inner.move_call(id, from, region, ttl).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Down;

    #[async_trait]
    impl UserStore for Down {
        async fn create(&self, _: NewUser) -> Result<i32, StoreError> {
            Err(StoreError::Conflict("login"))
        }
        async fn by_login(&self, _: &str) -> Result<Option<User>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn by_id(&self, _: i32) -> Result<Option<User>, StoreError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn failures_are_counted_conflicts_and_successes_are_not() {
        let m = ServiceMetrics::new("auth");
        let users: Arc<dyn UserStore> = Counted::<dyn UserStore>::new(Arc::new(Down), "users", &m);
        let new = NewUser { login: "a".into(), email: "a@x".into(), name: "A".into(), password_hash: "h".into() };
        assert_eq!(users.create(new).await, Err(StoreError::Conflict("login")));
        for _ in 0..3 {
            assert!(users.by_login("a").await.is_err());
        }
        assert_eq!(users.by_id(1).await, Ok(None));
        let text = m.render();
        let line =
            "corecast_store_errors_total{service=\"auth\",store=\"users\",op=\"by_login\",kind=\"unavailable\"} 3";
        assert!(text.contains(line), "{text}");
        assert_eq!(text.matches("corecast_store_errors_total{").count(), 1, "{text}");
    }
}

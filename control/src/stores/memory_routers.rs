//! The in-memory router registry (the embedded default: one calls process, lost on restart;
//! routers re-register every heartbeat, so a restarted calls service learns them again within
//! one interval).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::memory::MemoryCallStore;
use super::{
    CallError, Moved, NewCall, Placement, RouterRef, RouterRegistration, RouterStatus, RouterStore, StoreError,
};

#[derive(Debug, Clone)]
struct Entry {
    reg: RouterRegistration,
    last_seen: Instant,
    placed: u32,
    draining: bool,
    /// Unix ms (this process's clock: the memory store serves one process).
    drain_deadline: Option<u64>,
}

impl Entry {
    fn live(&self, ttl: Duration) -> bool {
        self.last_seen.elapsed() < ttl
    }

    fn status(&self, ttl: Duration) -> RouterStatus {
        RouterStatus {
            reg: self.reg.clone(),
            placed: self.placed,
            draining: self.draining,
            drain_deadline: self.drain_deadline,
            drain_due: self.drain_deadline.is_some_and(|d| crate::util::now_ms() >= d),
            last_seen_ms_ago: u64::try_from(self.last_seen.elapsed().as_millis()).unwrap_or(u64::MAX),
            live: self.live(ttl),
        }
    }
}

/// The placement score of a router: its reported load plus 0.01 per call placed since its
/// last report, per core (the same rule as `corecast_start_placed` in Tarantool).
pub fn score(load: f64, placed: u32, cores: u32) -> f64 {
    load.max(0.0) + f64::from(placed) * 0.01 / f64::from(cores.max(1))
}

#[derive(Debug, Default)]
struct State {
    routers: HashMap<String, Entry>,
    /// Regions whose reserve routers are in use.
    reserves_in_use: HashSet<String>,
}

/// Routers in a hash map; placement stores the call in the given [`MemoryCallStore`] while
/// holding the registry's lock, so placing and storing are one step.
#[derive(Debug)]
pub struct MemoryRouterStore {
    state: Mutex<State>,
    calls: Arc<MemoryCallStore>,
}

impl MemoryRouterStore {
    /// An empty registry placing calls into `calls`.
    pub fn new(calls: Arc<MemoryCallStore>) -> Self {
        MemoryRouterStore { state: Mutex::new(State::default()), calls }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Internal("lock poisoned".into()))
    }
}

fn entry_score(e: &Entry) -> f64 {
    score(e.reg.load, e.placed, e.reg.cores)
}

/// The lowest-scored of `it` (ties by id).
fn least<'a>(it: impl Iterator<Item = &'a Entry>) -> Option<&'a Entry> {
    it.min_by(|a, b| entry_score(a).total_cmp(&entry_score(b)).then_with(|| a.reg.id.cmp(&b.reg.id)))
}

/// Whether a region's reserves are in use after a placement that found the regular pool at
/// `pool` (the same hysteresis as `corecast_start_placed` in Tarantool).
fn reserves_in_use_after(was: bool, pool: Option<f64>, p: &Placement) -> bool {
    match pool {
        None => true,
        Some(load) if was => load >= p.reserve_off,
        Some(load) => load > p.reserve_on,
    }
}

#[async_trait]
impl RouterStore for MemoryRouterStore {
    async fn heartbeat(&self, reg: &RouterRegistration, ttl: Duration) -> Result<bool, StoreError> {
        let mut st = self.lock()?;
        let old = st.routers.get(&reg.id);
        let fresh = old.is_none_or(|e| !e.live(ttl));
        let (draining, drain_deadline) = old.map_or((false, None), |e| (e.draining, e.drain_deadline));
        let e = Entry { reg: reg.clone(), last_seen: Instant::now(), placed: 0, draining, drain_deadline };
        st.routers.insert(reg.id.clone(), e);
        Ok(fresh)
    }

    async fn place_call(&self, call: &NewCall, p: &Placement) -> Result<Option<RouterStatus>, CallError> {
        let mut st = self.lock()?;
        let st = &mut *st;
        let candidates = || st.routers.values().filter(|e| e.reg.region == p.region && !e.draining && e.live(p.ttl));
        let regular = least(candidates().filter(|e| !e.reg.reserve));
        let reserve = least(candidates().filter(|e| e.reg.reserve));
        let was = st.reserves_in_use.contains(&p.region);
        let in_use = reserves_in_use_after(was, regular.map(entry_score), p);
        let best = match (regular, reserve) {
            (Some(g), Some(r)) if in_use => least([g, r].into_iter()),
            (None, r) => r,
            (g, _) => g,
        };
        let chosen = best.map(|e| e.reg.id.clone()).and_then(|id| st.routers.get_mut(&id));
        let placed = match chosen {
            Some(e) => {
                let r = RouterRef { id: e.reg.id.clone(), address: e.reg.address.clone(), admin: e.reg.admin.clone() };
                self.calls.insert(call.id, call.owner, call.created_at, &r)?;
                e.placed = e.placed.saturating_add(1);
                Some(e.status(p.ttl))
            }
            None => {
                self.calls.insert(call.id, call.owner, call.created_at, &p.fallback)?;
                None
            }
        };
        if in_use {
            st.reserves_in_use.insert(p.region.clone());
        } else {
            st.reserves_in_use.remove(&p.region);
        }
        Ok(placed)
    }

    async fn reserves_in_use(&self, region: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.reserves_in_use.contains(region))
    }

    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<RouterStatus>, StoreError> {
        Ok(self.lock()?.routers.get(id).map(|e| e.status(ttl)))
    }

    async fn list(&self, ttl: Duration) -> Result<Vec<RouterStatus>, StoreError> {
        let mut v: Vec<RouterStatus> = self.lock()?.routers.values().map(|e| e.status(ttl)).collect();
        v.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
        Ok(v)
    }

    async fn set_draining(
        &self,
        id: &str,
        draining: bool,
        deadline: Option<Duration>,
        ttl: Duration,
    ) -> Result<Option<RouterStatus>, StoreError> {
        let mut st = self.lock()?;
        Ok(st.routers.get_mut(id).map(|e| {
            e.draining = draining;
            e.drain_deadline = deadline
                .filter(|_| draining)
                .map(|d| crate::util::now_ms().saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
            e.status(ttl)
        }))
    }

    async fn move_call(&self, id: uuid::Uuid, from: &str, region: &str, ttl: Duration) -> Result<Moved, CallError> {
        let mut st = self.lock()?;
        let candidates =
            || st.routers.values().filter(|e| e.reg.region == region && e.reg.id != from && !e.draining && e.live(ttl));
        let best = least(candidates().filter(|e| !e.reg.reserve))
            .or_else(|| least(candidates().filter(|e| e.reg.reserve)))
            .map(|e| RouterRef { id: e.reg.id.clone(), address: e.reg.address.clone(), admin: e.reg.admin.clone() });
        let (r, moved) = self.calls.move_if_on(id, from, || best)?;
        if !moved {
            return Ok(if r.id == from { Moved::Nowhere } else { Moved::Already(r) });
        }
        if let Some(e) = st.routers.get_mut(&r.id) {
            e.placed = e.placed.saturating_add(1);
        }
        Ok(Moved::Moved(r))
    }
}

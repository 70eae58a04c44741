//! The in-memory router registry (the embedded default: one calls process, lost on restart;
//! routers re-register every heartbeat, so a restarted calls service learns them again within
//! one interval).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::memory::MemoryCallStore;
use super::{CallError, NewCall, Placement, RouterRef, RouterRegistration, RouterStatus, RouterStore, StoreError};

#[derive(Debug, Clone)]
struct Entry {
    reg: RouterRegistration,
    last_seen: Instant,
    placed: u32,
    draining: bool,
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

/// Routers in a hash map; placement stores the call in the given [`MemoryCallStore`] while
/// holding the registry's lock, so placing and storing are one step.
#[derive(Debug)]
pub struct MemoryRouterStore {
    routers: Mutex<HashMap<String, Entry>>,
    calls: Arc<MemoryCallStore>,
}

impl MemoryRouterStore {
    /// An empty registry placing calls into `calls`.
    pub fn new(calls: Arc<MemoryCallStore>) -> Self {
        MemoryRouterStore { routers: Mutex::new(HashMap::new()), calls }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, StoreError> {
        self.routers.lock().map_err(|_| StoreError::Internal("lock poisoned".into()))
    }
}

#[async_trait]
impl RouterStore for MemoryRouterStore {
    async fn heartbeat(&self, reg: &RouterRegistration, ttl: Duration) -> Result<bool, StoreError> {
        let mut m = self.lock()?;
        let old = m.get(&reg.id);
        let fresh = old.is_none_or(|e| !e.live(ttl));
        let draining = old.is_some_and(|e| e.draining);
        m.insert(reg.id.clone(), Entry { reg: reg.clone(), last_seen: Instant::now(), placed: 0, draining });
        Ok(fresh)
    }

    async fn place_call(&self, call: &NewCall, p: &Placement) -> Result<Option<RouterStatus>, CallError> {
        let mut m = self.lock()?;
        let best =
            m.values_mut().filter(|e| e.reg.region == p.region && !e.draining && e.live(p.ttl)).min_by(|a, b| {
                score(a.reg.load, a.placed, a.reg.cores)
                    .total_cmp(&score(b.reg.load, b.placed, b.reg.cores))
                    .then_with(|| a.reg.id.cmp(&b.reg.id))
            });
        match best {
            Some(e) => {
                let r = RouterRef { id: e.reg.id.clone(), address: e.reg.address.clone(), admin: e.reg.admin.clone() };
                self.calls.insert(call.id, call.owner, call.created_at, &r)?;
                e.placed = e.placed.saturating_add(1);
                Ok(Some(e.status(p.ttl)))
            }
            None => {
                self.calls.insert(call.id, call.owner, call.created_at, &p.fallback)?;
                Ok(None)
            }
        }
    }

    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<RouterStatus>, StoreError> {
        Ok(self.lock()?.get(id).map(|e| e.status(ttl)))
    }

    async fn list(&self, ttl: Duration) -> Result<Vec<RouterStatus>, StoreError> {
        let mut v: Vec<RouterStatus> = self.lock()?.values().map(|e| e.status(ttl)).collect();
        v.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
        Ok(v)
    }

    async fn set_draining(&self, id: &str, draining: bool, ttl: Duration) -> Result<Option<RouterStatus>, StoreError> {
        let mut m = self.lock()?;
        Ok(m.get_mut(id).map(|e| {
            e.draining = draining;
            e.status(ttl)
        }))
    }
}

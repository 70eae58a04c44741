//! In-memory session and call stores (the embedded default; lost on restart).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Call, CallError, CallStore, FailureStore, MuteChange, Participant, RouterRef, SessionStore, StoreError};

fn poisoned() -> StoreError {
    StoreError::Internal("lock poisoned".into())
}

/// Sessions in a hash map with expiry instants.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    map: Mutex<HashMap<String, (i32, Instant)>>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn put(&self, token: &str, user_id: i32, ttl: Duration) -> Result<(), StoreError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        if m.len() > 1024 {
            m.retain(|_, (_, exp)| *exp > now);
        }
        m.insert(token.to_owned(), (user_id, now + ttl));
        Ok(())
    }

    async fn touch(&self, token: &str, ttl: Duration) -> Result<Option<i32>, StoreError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        match m.get_mut(token) {
            Some((uid, exp)) if *exp > now => {
                *exp = now + ttl;
                Ok(Some(*uid))
            }
            Some(_) => {
                m.remove(token);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn delete(&self, token: &str) -> Result<(), StoreError> {
        self.map.lock().map_err(|_| poisoned())?.remove(token);
        Ok(())
    }
}

/// Failed-login counters in a hash map: key → (failures, window end).
#[derive(Debug, Default)]
pub struct MemoryFailureStore {
    map: Mutex<HashMap<String, (u32, Instant)>>,
}

impl MemoryFailureStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl FailureStore for MemoryFailureStore {
    async fn bump(&self, key: &str, window: Duration) -> Result<(), StoreError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        if m.len() > 100_000 {
            m.retain(|_, (_, end)| *end > now);
        }
        let e = m.entry(key.to_owned()).or_insert((0, now + window));
        if e.1 <= now {
            *e = (0, now + window);
        }
        e.0 = e.0.saturating_add(1);
        Ok(())
    }

    async fn count(&self, key: &str) -> Result<Option<(u32, Duration)>, StoreError> {
        let m = self.map.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        Ok(m.get(key).filter(|(_, end)| *end > now).map(|(n, end)| (*n, *end - now)))
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.map.lock().map_err(|_| poisoned())?.remove(key);
        Ok(())
    }
}

/// How many people (distinct users) the participants are.
fn distinct_users(ps: &[Participant]) -> usize {
    ps.iter().enumerate().filter(|(i, p)| !ps[..*i].iter().any(|q| q.user_id == p.user_id)).count()
}

/// Calls in a hash map under one mutex (each operation is atomic).
#[derive(Debug, Default)]
pub struct MemoryCallStore {
    map: Mutex<HashMap<Uuid, Call>>,
}

impl MemoryCallStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, id: Uuid, p: &Participant, cap: u32, same_user_ok: bool) -> Result<Call, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let call = m.get_mut(&id).ok_or(CallError::NotFound)?;
        let present = call.participants.iter().any(|q| q.user_id == p.user_id);
        if present && !same_user_ok {
            return Err(CallError::AlreadyJoined);
        }
        // The cap counts people: another leg of a user already in the call is free.
        if !present && distinct_users(&call.participants) >= cap as usize {
            return Err(CallError::Full(cap));
        }
        call.participants.push(p.clone());
        Ok(call.clone())
    }

    /// Re-places a call: if it is on router `from`, `to(call)` may name its new router, which
    /// is then stored. Returns the router the call is on afterwards and whether it moved.
    pub(crate) fn move_if_on(
        &self,
        id: Uuid,
        from: &str,
        to: impl FnOnce() -> Option<RouterRef>,
    ) -> Result<(RouterRef, bool), CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let call = m.get_mut(&id).ok_or(CallError::NotFound)?;
        if call.router.id != from {
            return Ok((call.router.clone(), false));
        }
        match to() {
            Some(r) => {
                call.router = r.clone();
                Ok((r, true))
            }
            None => Ok((call.router.clone(), false)),
        }
    }

    /// Stores a new call (no other call may have its id).
    pub(crate) fn insert(&self, id: Uuid, owner: i32, created_at: u64, router: &RouterRef) -> Result<(), CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        if m.contains_key(&id) {
            return Err(StoreError::Internal("duplicate call id".into()).into());
        }
        let call =
            Call { id, owner, created_at, router: router.clone(), participants: Vec::new(), dominant_speaker: None };
        m.insert(id, call);
        Ok(())
    }
}

#[async_trait]
impl CallStore for MemoryCallStore {
    async fn start(&self, id: Uuid, owner: i32, created_at: u64, router: &RouterRef) -> Result<(), CallError> {
        self.insert(id, owner, created_at, router)
    }

    async fn join(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError> {
        self.add(id, p, cap, false)
    }

    async fn join_leg(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError> {
        self.add(id, p, cap, true)
    }

    async fn leave(&self, id: Uuid, user_id: i32) -> Result<u64, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let call = m.get_mut(&id).ok_or(CallError::NotFound)?;
        let pos = call.participants.iter().position(|q| q.user_id == user_id).ok_or(CallError::NotJoined)?;
        Ok(call.participants.remove(pos).participant_id)
    }

    async fn drop_participant(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let Some(call) = m.get_mut(&id) else { return Ok(false) };
        let before = call.participants.len();
        call.participants.retain(|q| q.participant_id != participant_id);
        Ok(call.participants.len() != before)
    }

    async fn set_dominant_speaker(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let Some(call) = m.get_mut(&id) else { return Ok(false) };
        if !call.participants.iter().any(|q| q.participant_id == participant_id) {
            return Ok(false);
        }
        call.dominant_speaker = Some(participant_id);
        Ok(true)
    }

    async fn set_muted(
        &self,
        id: Uuid,
        participant_id: u64,
        user_id: i32,
        change: MuteChange,
    ) -> Result<Participant, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let call = m.get_mut(&id).ok_or(CallError::NotFound)?;
        let p = call
            .participants
            .iter_mut()
            .find(|q| q.participant_id == participant_id)
            .ok_or(CallError::NoParticipant)?;
        if p.user_id != user_id {
            return Err(CallError::NotYours);
        }
        if p.role != "publisher" {
            return Err(CallError::NotPublisher);
        }
        if let Some(a) = change.audio_muted {
            p.audio_muted = a;
        }
        if let Some(v) = change.video_muted {
            p.video_muted = v;
        }
        Ok(p.clone())
    }

    async fn end(&self, id: Uuid, user_id: i32) -> Result<Call, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let call = m.get(&id).ok_or(CallError::NotFound)?;
        if call.owner != user_id {
            return Err(CallError::NotOwner);
        }
        m.remove(&id).ok_or(CallError::NotFound)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Call>, CallError> {
        Ok(self.map.lock().map_err(|_| poisoned())?.get(&id).cloned())
    }

    async fn by_router(&self, router_id: &str) -> Result<Vec<Call>, CallError> {
        let m = self.map.lock().map_err(|_| poisoned())?;
        Ok(m.values().filter(|c| c.router.id == router_id).cloned().collect())
    }

    async fn held_on(&self, router_id: &str) -> Result<Vec<(Uuid, u64)>, CallError> {
        let m = self.map.lock().map_err(|_| poisoned())?;
        let on = |c: &Call, p: &Participant| c.router.id != router_id && p.router.as_deref() == Some(router_id);
        Ok(m.values()
            .flat_map(|c| c.participants.iter().filter(|p| on(c, p)).map(|p| (c.id, p.participant_id)))
            .collect())
    }

    async fn set_router(&self, id: Uuid, participant_id: u64, router: Option<&str>) -> Result<bool, CallError> {
        let mut m = self.map.lock().map_err(|_| poisoned())?;
        let Some(call) = m.get_mut(&id) else { return Ok(false) };
        let Some(p) = call.participants.iter_mut().find(|q| q.participant_id == participant_id) else {
            return Ok(false);
        };
        p.router = router.map(str::to_owned);
        Ok(true)
    }
}

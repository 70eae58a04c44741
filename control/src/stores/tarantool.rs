//! Tarantool call store: every operation is one stored procedure of
//! `control/tarantool/init.lua`, so each is atomic on the server.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::{Call, CallError, CallStore, MuteChange, Participant, RouterRef, StoreError};
use crate::tarantool::Tarantool;

/// Active calls in the Tarantool space `calls`.
#[derive(Debug, Clone)]
pub struct TarantoolCallStore {
    tt: Tarantool,
}

fn deadline() -> u64 {
    crate::util::now_ms() + crate::stores::OP_TIMEOUT.as_millis() as u64 - 500
}

fn status(v: &[Value]) -> &str {
    v.first().and_then(Value::as_str).unwrap_or("")
}

fn decode_call(v: Option<&Value>) -> Result<Call, CallError> {
    let v = v.cloned().ok_or_else(|| StoreError::Internal("tarantool: missing call in reply".into()))?;
    serde_json::from_value(v).map_err(|e| StoreError::Internal(format!("tarantool: bad call record: {e}")).into())
}

fn unexpected(func: &str, s: &str) -> CallError {
    match s {
        "late" => StoreError::Unavailable(format!("tarantool {func}: request reached the server too late")).into(),
        _ => StoreError::Internal(format!("tarantool {func}: unexpected status {s:?}")).into(),
    }
}

impl TarantoolCallStore {
    /// Wraps a client.
    pub fn new(tt: Tarantool) -> Self {
        TarantoolCallStore { tt }
    }

    /// `corecast_join`; `same_user_ok` for WebRTC legs (an older init.lua ignores the extra
    /// argument and refuses a second participant of the user as before), and the router
    /// holding the participant when it is not the call's home (an older init.lua ignores it).
    async fn add(&self, id: Uuid, p: &Participant, cap: u32, same_user_ok: bool) -> Result<Call, CallError> {
        let args = (
            id.to_string(),
            p.participant_id,
            p.user_id,
            &p.role,
            cap,
            deadline(),
            p.joined_at,
            same_user_ok,
            p.router.as_deref(),
        );
        let r = self.tt.call("corecast_join", &args).await?;
        match status(&r) {
            "ok" => decode_call(r.get(1)),
            "not_found" => Err(CallError::NotFound),
            "already_joined" => Err(CallError::AlreadyJoined),
            "full" => Err(CallError::Full(cap)),
            s => Err(unexpected("join", s)),
        }
    }

    /// Deletes every call (tests only).
    pub async fn truncate_for_tests(&self) -> Result<(), StoreError> {
        self.tt.call("corecast_truncate", &crate::tarantool::NO_ARGS).await.map(|_| ())
    }
}

#[async_trait]
impl CallStore for TarantoolCallStore {
    async fn start(&self, id: Uuid, owner: i32, created_at: u64, router: &RouterRef) -> Result<(), CallError> {
        // A map (not rmp's default struct-as-array) so Lua sees `router.id`.
        let map: std::collections::BTreeMap<&str, &str> =
            [("id", router.id.as_str()), ("address", router.address.as_str()), ("admin", router.admin.as_str())]
                .into_iter()
                .collect();
        let r = self.tt.call("corecast_start", &(id.to_string(), owner, created_at, map, deadline())).await?;
        match status(&r) {
            "ok" => Ok(()),
            s => Err(unexpected("start", s)),
        }
    }

    async fn join(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError> {
        self.add(id, p, cap, false).await
    }

    async fn join_leg(&self, id: Uuid, p: &Participant, cap: u32) -> Result<Call, CallError> {
        self.add(id, p, cap, true).await
    }

    async fn leave(&self, id: Uuid, user_id: i32) -> Result<u64, CallError> {
        let r = self.tt.call("corecast_leave", &(id.to_string(), user_id, deadline())).await?;
        match status(&r) {
            "ok" => r
                .get(1)
                .and_then(Value::as_u64)
                .ok_or_else(|| StoreError::Internal("tarantool leave: missing participant id".into()).into()),
            "not_found" => Err(CallError::NotFound),
            "not_joined" => Err(CallError::NotJoined),
            s => Err(unexpected("leave", s)),
        }
    }

    async fn drop_participant(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError> {
        let r = self.tt.call("corecast_drop", &(id.to_string(), participant_id, deadline())).await?;
        match status(&r) {
            "ok" => Ok(r.get(1).and_then(Value::as_bool).unwrap_or(false)),
            s => Err(unexpected("drop", s)),
        }
    }

    async fn set_dominant_speaker(&self, id: Uuid, participant_id: u64) -> Result<bool, CallError> {
        let r = self.tt.call("corecast_speaker", &(id.to_string(), participant_id, deadline())).await?;
        match status(&r) {
            "ok" => Ok(r.get(1).and_then(Value::as_bool).unwrap_or(false)),
            s => Err(unexpected("speaker", s)),
        }
    }

    async fn set_muted(
        &self,
        id: Uuid,
        participant_id: u64,
        user_id: i32,
        change: MuteChange,
    ) -> Result<Participant, CallError> {
        let args = (id.to_string(), participant_id, user_id, change.audio_muted, change.video_muted, deadline());
        let r = self.tt.call("corecast_mute", &args).await?;
        match status(&r) {
            "ok" => {
                let v = r
                    .get(1)
                    .cloned()
                    .ok_or_else(|| StoreError::Internal("tarantool mute: missing participant".into()))?;
                serde_json::from_value(v)
                    .map_err(|e| StoreError::Internal(format!("tarantool mute: bad participant record: {e}")).into())
            }
            "not_found" => Err(CallError::NotFound),
            "no_participant" => Err(CallError::NoParticipant),
            "not_yours" => Err(CallError::NotYours),
            "not_publisher" => Err(CallError::NotPublisher),
            s => Err(unexpected("mute", s)),
        }
    }

    async fn end(&self, id: Uuid, user_id: i32) -> Result<Call, CallError> {
        let r = self.tt.call("corecast_end", &(id.to_string(), user_id, deadline())).await?;
        match status(&r) {
            "ok" => decode_call(r.get(1)),
            "not_found" => Err(CallError::NotFound),
            "not_owner" => Err(CallError::NotOwner),
            s => Err(unexpected("end", s)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<Call>, CallError> {
        let r = self.tt.call("corecast_get", &(id.to_string(),)).await?;
        match status(&r) {
            "ok" => decode_call(r.get(1)).map(Some),
            "not_found" => Ok(None),
            s => Err(unexpected("get", s)),
        }
    }

    async fn by_router(&self, router_id: &str) -> Result<Vec<Call>, CallError> {
        let r = self.tt.call("corecast_by_router", &(router_id,)).await?;
        match status(&r) {
            "ok" => match r.get(1) {
                Some(Value::Array(a)) => a.iter().map(|v| decode_call(Some(v))).collect(),
                _ => Ok(Vec::new()),
            },
            s => Err(unexpected("by_router", s)),
        }
    }

    async fn held_on(&self, router_id: &str) -> Result<Vec<(Uuid, u64)>, CallError> {
        let r = self.tt.call("corecast_held_on", &(router_id,)).await?;
        let bad = || CallError::from(StoreError::Internal("tarantool held_on: bad entry".into()));
        match status(&r) {
            "ok" => match r.get(1) {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        let call = v.get(0).and_then(Value::as_str).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                        Ok((call, v.get(1).and_then(Value::as_u64).ok_or_else(bad)?))
                    })
                    .collect(),
                _ => Ok(Vec::new()),
            },
            s => Err(unexpected("held_on", s)),
        }
    }

    async fn set_router(&self, id: Uuid, participant_id: u64, router: Option<&str>) -> Result<bool, CallError> {
        let r = self.tt.call("corecast_set_router", &(id.to_string(), participant_id, router, deadline())).await?;
        match status(&r) {
            "ok" => Ok(r.get(1).and_then(Value::as_bool).unwrap_or(false)),
            s => Err(unexpected("set_router", s)),
        }
    }
}

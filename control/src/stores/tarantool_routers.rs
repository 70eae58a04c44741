//! The router registry in Tarantool (space `routers`), shared by every calls instance over the
//! same server: each operation is one stored procedure of `control/tarantool/init.lua`
//! (`corecast_router_beat`, `corecast_start_placed`, `corecast_router_get`,
//! `corecast_router_list`, `corecast_router_drain`, `corecast_reserves_in_use`, `corecast_move_call`), so a placement chosen by one instance
//! is counted before any other instance places the next call.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    CallError, Moved, NewCall, Placement, RouterRef, RouterRegistration, RouterStatus, RouterStore, StoreError,
};
use crate::tarantool::Tarantool;

/// The router registry in the Tarantool space `routers`.
#[derive(Debug, Clone)]
pub struct TarantoolRouterStore {
    tt: Tarantool,
}

fn deadline() -> u64 {
    crate::util::now_ms() + crate::stores::OP_TIMEOUT.as_millis() as u64 - 500
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn status(v: &[Value]) -> &str {
    v.first().and_then(Value::as_str).unwrap_or("")
}

fn unexpected(func: &str, s: &str) -> StoreError {
    match s {
        "late" => StoreError::Unavailable(format!("tarantool {func}: request reached the server too late")),
        _ => StoreError::Internal(format!("tarantool {func}: unexpected status {s:?}")),
    }
}

fn decode(func: &str, v: Option<&Value>) -> Result<Option<RouterStatus>, StoreError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| StoreError::Internal(format!("tarantool {func}: bad router record: {e}"))),
    }
}

impl TarantoolRouterStore {
    /// Wraps a client (the same server as the call store: placement writes both spaces).
    pub fn new(tt: Tarantool) -> Self {
        TarantoolRouterStore { tt }
    }
}

#[async_trait]
impl RouterStore for TarantoolRouterStore {
    async fn heartbeat(&self, reg: &RouterRegistration, ttl: Duration) -> Result<bool, StoreError> {
        let args = (
            &reg.id,
            &reg.region,
            &reg.address,
            &reg.admin,
            reg.cores,
            reg.load,
            &reg.workers,
            ttl_ms(ttl),
            deadline(),
            reg.reserve,
        );
        let r = self.tt.call("corecast_router_beat", &args).await?;
        match status(&r) {
            "ok" => Ok(r.get(1).and_then(Value::as_bool).unwrap_or(false)),
            s => Err(unexpected("router_beat", s)),
        }
    }

    async fn place_call(&self, call: &NewCall, p: &Placement) -> Result<Option<RouterStatus>, CallError> {
        // A map (not rmp's default struct-as-array) so Lua stores `router.id` as the call store does.
        let fallback: std::collections::BTreeMap<&str, &str> = [
            ("id", p.fallback.id.as_str()),
            ("address", p.fallback.address.as_str()),
            ("admin", p.fallback.admin.as_str()),
        ]
        .into_iter()
        .collect();
        let args = (
            call.id.to_string(),
            call.owner,
            call.created_at,
            &p.region,
            ttl_ms(p.ttl),
            fallback,
            deadline(),
            p.reserve_on,
            p.reserve_off,
        );
        let r = self.tt.call("corecast_start_placed", &args).await?;
        match status(&r) {
            "ok" => Ok(decode("start_placed", r.get(1))?),
            s => Err(unexpected("start_placed", s).into()),
        }
    }

    async fn reserves_in_use(&self, region: &str) -> Result<bool, StoreError> {
        let r = self.tt.call("corecast_reserves_in_use", &(region,)).await?;
        match status(&r) {
            "ok" => Ok(r.get(1).and_then(Value::as_bool).unwrap_or(false)),
            s => Err(unexpected("reserves_in_use", s)),
        }
    }

    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<RouterStatus>, StoreError> {
        let r = self.tt.call("corecast_router_get", &(id, ttl_ms(ttl))).await?;
        match status(&r) {
            "ok" => decode("router_get", r.get(1)),
            "not_found" => Ok(None),
            s => Err(unexpected("router_get", s)),
        }
    }

    async fn list(&self, ttl: Duration) -> Result<Vec<RouterStatus>, StoreError> {
        let r = self.tt.call("corecast_router_list", &(ttl_ms(ttl),)).await?;
        match status(&r) {
            "ok" => {
                let mut v = match r.get(1) {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|x| decode("router_list", Some(x)).transpose())
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => Vec::new(),
                };
                v.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
                Ok(v)
            }
            s => Err(unexpected("router_list", s)),
        }
    }

    async fn set_draining(
        &self,
        id: &str,
        draining: bool,
        drain_deadline: Option<Duration>,
        ttl: Duration,
    ) -> Result<Option<RouterStatus>, StoreError> {
        // The deadline travels as milliseconds from now: the server adds its own clock.
        let after_ms = drain_deadline.filter(|_| draining).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let r = self.tt.call("corecast_router_drain", &(id, draining, ttl_ms(ttl), deadline(), after_ms)).await?;
        match status(&r) {
            "ok" => decode("router_drain", r.get(1)),
            "not_found" => Ok(None),
            s => Err(unexpected("router_drain", s)),
        }
    }

    async fn move_call(&self, id: uuid::Uuid, from: &str, region: &str, ttl: Duration) -> Result<Moved, CallError> {
        let args = (id.to_string(), from, region, ttl_ms(ttl), deadline());
        let r = self.tt.call("corecast_move_call", &args).await?;
        let router = |v: Option<&Value>| -> Result<RouterRef, CallError> {
            v.cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| StoreError::Internal("tarantool move_call: bad router".into()).into())
        };
        match (status(&r), r.get(1).and_then(Value::as_str)) {
            ("ok", Some("moved")) => Ok(Moved::Moved(router(r.get(2))?)),
            ("ok", Some("already")) => Ok(Moved::Already(router(r.get(2))?)),
            ("ok", Some("none")) => Ok(Moved::Nowhere),
            ("not_found", _) => Err(CallError::NotFound),
            (s, _) => Err(unexpected("move_call", s).into()),
        }
    }
}
